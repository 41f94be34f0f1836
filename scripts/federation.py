#!/usr/bin/env python3
"""The federated chatter's benchmark: the same chat load on one chatter, then split over two
chatters federated through one Redis (all on this machine).

  scripts/federation.py [--clients 1000] [--rate 1] [--secs 20] [--warmup 3]

Each run is loadgen's `chat` scenario (C clients, each saying R lines a second, every
client reading everything): deliveries per second, latency p50/p99 (over two nodes also
between clients of different nodes, "cross"), lines missing or out of order, and the CPU
(cores) of each chatter and of redis-server in the measured window. Every process is ours,
started here and stopped by PID; every run is bounded (loadgen stops by itself, and a
timeout stops loadgen). Build first: cargo build --release --examples && cargo build
--release -p fibra-bench (FIBRA_BUILD=debug: the debug builds, to check the script only)."""
import argparse, json, os, shutil, signal, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serverlib import free_port, program, wait_listening  # noqa: E402


def start(cmd, env=None):
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, **(env or {})))


def stop(proc, sig=signal.SIGINT):
    """Stops our own child by its PID: `sig`, then SIGKILL after 5 s."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def loadgen(a, addrs, pids, timeout):
    cmd = [program("loadgen"), "chat", "--addr", addrs[0], "--clients", str(a.clients),
           "--rate", str(a.rate), "--secs", str(a.secs), "--warmup", str(a.warmup),
           "--pid", str(pids[0])]
    for addr in addrs[1:]:
        cmd += ["--also-addr", addr]
    for pid in pids[1:]:
        cmd += ["--also-pid", str(pid)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    lines = out.stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"loadgen printed nothing: {out.stderr.strip()[-500:]}")
    return json.loads(lines[-1])


def chatter(port, extra=()):
    return start([program("chatter"), "--addr", f"127.0.0.1:{port}", "--no-web", *extra],
                 env={"RUST_LOG": "warn"})


def one_node(a, timeout):
    port = free_port()
    node = chatter(port)
    try:
        wait_listening(port)
        time.sleep(0.2)
        return loadgen(a, [f"127.0.0.1:{port}"], [node.pid], timeout)
    finally:
        stop(node)


def two_nodes(a, timeout):
    rport = free_port()
    redis = start(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no"])
    nodes = []
    try:
        wait_listening(rport)
        url = f"redis://127.0.0.1:{rport}"
        ports = [free_port(), free_port()]
        for name, port in zip("ab", ports):
            nodes.append(chatter(port, ["--redis", url, "--node", name]))
        for port in ports:
            wait_listening(port)
        time.sleep(0.5)  # each node's hello in Redis
        addrs = [f"127.0.0.1:{p}" for p in ports]
        return loadgen(a, addrs, [n.pid for n in nodes] + [redis.pid], timeout)
    finally:
        for n in nodes:
            stop(n)
        stop(redis, signal.SIGTERM)


def ms(us):
    return f"{us / 1000:.1f}"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--rate", type=float, default=1.0)
    p.add_argument("--secs", type=float, default=20.0)
    p.add_argument("--warmup", type=float, default=3.0)
    a = p.parse_args()
    if not shutil.which("redis-server"):
        sys.exit("redis-server is not installed (Debian: apt install redis-server)")
    timeout = 120 + a.warmup + a.secs
    one = one_node(a, timeout)
    two = two_nodes(a, timeout)
    also = two.get("also_cpu") or [None, None]
    print(f"{a.clients} clients x {a.rate} lines/s, {a.secs} s measured, on "
          f"{os.cpu_count()} CPUs ({os.environ.get('FIBRA_BUILD', 'release')} build)")
    print("| | deliveries/s | p50 ms | p99 ms | cross-node p99 ms | missing | out of order "
          "| CPU node a | CPU node b | CPU redis |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(f"| one chatter | {one['deliveries_per_s']:.0f} | {ms(one['p50_us'])} | "
          f"{ms(one['p99_us'])} | - | {one['missing']} | {one['out_of_order']} | "
          f"{one['server_cpu']} | - | - |")
    print(f"| two chatters + Redis | {two['deliveries_per_s']:.0f} | {ms(two['p50_us'])} | "
          f"{ms(two['p99_us'])} | {ms(two['cross_p99_us'])} | {two['missing']} | "
          f"{two['out_of_order']} | {two['server_cpu']} | {also[0]} | {also[1]} |")
    print(json.dumps({"one": one, "two": two}))
    bad = [f"{name}: {r['missing']} missing, {r['out_of_order']} out of order, "
           f"{r['logged_in']} of {a.clients} logged in"
           for name, r in (("one chatter", one), ("two chatters", two))
           if r["missing"] or r["out_of_order"] or r["logged_in"] != a.clients]
    if bad:
        sys.exit("federation.py: " + "; ".join(bad))


if __name__ == "__main__":
    main()
