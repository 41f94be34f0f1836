"""What the bench and soak scripts share: where the programs are, free ports, CPU pinning,
and waiting for a server to listen."""
import os, shutil, socket, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# FIBRA_BUILD=debug runs the debug builds (a check of a script, as .ci/run does; never for
# figures).
PROFILE = os.environ.get("FIBRA_BUILD", "release")
RELEASE = os.path.join(ROOT, "target", PROFILE)
# The benchmark tools (the bench/ member's binaries); every other program is fibra's example.
TOOLS = {"loadgen", "tokio_echo", "tokio_chat", "tokio_abchat", "tokio_ws_chat",
         "tokio_tls_chat", "gencert"}
BUILD = ("cargo build --release --examples && cargo build --release -p fibra-bench"
         if PROFILE == "release" else "cargo build --examples && cargo build -p fibra-bench")


def program(name, root=None):
    """The path of `name`'s release build (FIBRA_BUILD=debug: its debug build): fibra's
    examples are in target/release/examples, the benchmark tools (bench/) in target/release;
    of this checkout, or of the checkout at `root`. Exits, saying how to build it, when it
    is not there."""
    release = RELEASE if root is None else os.path.join(root, "target", PROFILE)
    path = os.path.join(release, name) if name in TOOLS else os.path.join(release, "examples", name)
    if not os.access(path, os.X_OK):
        sys.exit(f"{path} is not built; run: {BUILD}")
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pin(cpu):
    """taskset's prefix pinning a command to `cpu`, when taskset and a second CPU exist."""
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and os.cpu_count() > 1 else []


def wait_listening(port, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not start")
