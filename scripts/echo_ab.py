#!/usr/bin/env python3
"""Echo at one core: fibra's echo (written through, and queued) against tokio_echo, the
servers alternating round by round; prints each run and the medians of msgs per server
CPU-second. Bounded: each run is SECS (default 4) + 1 s of warm-up, every wait times out.

    cargo build --release --example echo && cargo build --release -p fibra-bench
    python3 scripts/echo_ab.py [ROUNDS=6] [CONNS=1000]      # env: SECS=2, DROP=queued

The server runs on CPU 0 (taskset), the load generator on CPU 1.
"""
import json, os, signal, socket, subprocess, sys, time, statistics
ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "target", "release")
if any(a in ("-h", "--help") for a in sys.argv[1:]):
    print(__doc__)
    sys.exit(0)
for binary in ("examples/echo", "tokio_echo", "loadgen"):
    if not os.path.exists(os.path.join(ROOT, binary)):
        sys.exit(f"echo_ab: {ROOT}/{binary} is missing: build the release binaries first (see --help)")
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 6
CONNS = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
SERVERS = {
    "fibra": [f"{ROOT}/examples/echo", "--addr", "127.0.0.1:{port}"],
    "tokio": [f"{ROOT}/tokio_echo", "--addr", "127.0.0.1:{port}"],
    "queued": [f"{ROOT}/examples/echo", "--addr", "127.0.0.1:{port}", "--write-through", "no"],
}
for drop in os.environ.get("DROP", "").split(","):
    SERVERS.pop(drop, None)
extra = os.environ.get("EXTRA")  # name=path of a third binary (fibra variant)
if extra:
    n, p = extra.split("=")
    SERVERS[n] = [p, "--addr", "127.0.0.1:{port}"]
def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
def wait_port(port, t=10):
    end = time.time() + t
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close(); return True
        except OSError: time.sleep(0.05)
    return False
res = {k: [] for k in SERVERS}
for r in range(ROUNDS):
    for name, cmd in SERVERS.items():
        port = free_port()
        srv = subprocess.Popen(["taskset", "-c", "0"] + [c.format(port=port) for c in cmd],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=dict(os.environ, RUST_LOG="warn"))
        try:
            assert wait_port(port), name
            time.sleep(0.2)
            out = subprocess.run(["taskset", "-c", "1", f"{ROOT}/loadgen", "echo", "--addr", f"127.0.0.1:{port}",
                                  "--conns", str(CONNS), "--secs", os.environ.get("SECS", "4"), "--warmup", "1", "--pid", str(srv.pid)],
                                 capture_output=True, text=True, timeout=60).stdout
            j = json.loads(out.strip().splitlines()[-1])
            res[name].append(j)
            print(r, name, j["msgs_per_s"], j["server_cpu"], j["msgs_per_cpu_s"], flush=True)
        finally:
            srv.send_signal(signal.SIGINT)
            try: srv.wait(5)
            except subprocess.TimeoutExpired: srv.kill(); srv.wait()
print("medians msgs_per_cpu_s:", {k: statistics.median(x["msgs_per_cpu_s"] for x in v) for k, v in res.items()})
print("medians msgs_per_s:", {k: statistics.median(x["msgs_per_s"] for x in v) for k, v in res.items()})
ratios = [a["msgs_per_cpu_s"] / b["msgs_per_cpu_s"] for a, b in zip(res["fibra"], res["tokio"])]
print("fibra/tokio cpu-s ratio of sums:", round(sum(x["messages"] for x in res["fibra"]) / sum(x["server_cpu"] * x["secs"] for x in res["fibra"]) / (sum(x["messages"] for x in res["tokio"]) / sum(x["server_cpu"] * x["secs"] for x in res["tokio"])), 3))
print("rounds' fibra/tokio per cpu-s:", [round(x, 3) for x in ratios], "median", round(statistics.median(ratios), 3))
