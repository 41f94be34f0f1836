#!/usr/bin/env python3
"""Echo at one core, two servers at once: A and B share CPU 0 (taskset), their load
generators share CPU 1, and each server's messages per CPU-second is measured over the same
window, so the machine's drift (a busy neighbour, a slower host) weighs on both alike.
Prints each round and A/B (ratio of sums, and the median of rounds). Bounded: each round is
SECS (default 3) + 1 s of warm-up; every wait times out.

    cargo build --release --example echo && cargo build --release -p fibra-bench
    python3 scripts/echo_corun.py [ROUNDS=5] [A=fibra] [B=tokio]   # env: SECS, CONNS=1000

A and B: `fibra` (examples/echo, a tasklet per connection), `stackless` (examples/gnet_echo
--stackless, a Protocol without a tasklet while idle), `tokio` (tokio_echo), or the path of
another echo binary that takes `--addr HOST:PORT` (a variant build, to compare two versions
of fibra).
The servers share one CPU, so each runs below saturation: the figure is CPU per message at
that load, not the most each can carry (scripts/echo_ab.py runs them one at a time).
"""
import json, os, statistics, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serverlib import free_port, program, wait_listening  # noqa: E402

if any(a in ("-h", "--help") for a in sys.argv[1:]):
    print(__doc__)
    sys.exit(0)
NAMED = {"fibra": ["echo"], "stackless": ["gnet_echo", "--stackless"], "tokio": ["tokio_echo"]}


def server(arg):
    """`fibra`, `stackless`, `tokio` (this checkout's builds), or the path of another echo
    binary: the command, as a list."""
    if arg in NAMED:
        name, *args = NAMED[arg]
        return [program(name), *args]
    if not os.access(arg, os.X_OK):
        sys.exit(f"echo_corun: {arg} is not an executable echo server")
    return [arg]


ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
A = server(sys.argv[2] if len(sys.argv) > 2 else "fibra")
B = server(sys.argv[3] if len(sys.argv) > 3 else "tokio")
LOADGEN = program("loadgen")
SECS, CONNS = os.environ.get("SECS", "3"), os.environ.get("CONNS", "1000")


def per_cpu_s(runs):
    return sum(r["messages"] for r in runs) / sum(r["server_cpu"] * r["secs"] for r in runs)


res = ([], [])
for r in range(ROUNDS):
    ports = (free_port(), free_port())
    servers = [subprocess.Popen(["taskset", "-c", "0", *b, "--addr", f"127.0.0.1:{p}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=dict(os.environ, RUST_LOG="warn"))
               for b, p in zip((A, B), ports)]
    try:
        for p in ports:
            wait_listening(p)
        time.sleep(0.2)
        gens = [subprocess.Popen(["taskset", "-c", "1", LOADGEN, "echo", "--addr", f"127.0.0.1:{p}",
                                  "--conns", CONNS, "--secs", SECS, "--warmup", "1", "--pid", str(s.pid)],
                                 stdout=subprocess.PIPE, text=True)
                for s, p in zip(servers, ports)]
        out = [json.loads(g.communicate(timeout=60)[0].strip().splitlines()[-1]) for g in gens]
        for i in (0, 1):
            res[i].append(out[i])
        a, b = out
        print(r, "A", a["msgs_per_s"], a["server_cpu"], a["msgs_per_cpu_s"],
              "B", b["msgs_per_s"], b["server_cpu"], b["msgs_per_cpu_s"],
              "A/B", round(a["msgs_per_cpu_s"] / b["msgs_per_cpu_s"], 3), flush=True)
    finally:
        for s in servers:
            s.kill()
            s.wait()
ratios = [a["msgs_per_cpu_s"] / b["msgs_per_cpu_s"] for a, b in zip(*res)]
print("A:", " ".join(A), "B:", " ".join(B))
print("A/B msgs per server CPU-s: ratio of sums", round(per_cpu_s(res[0]) / per_cpu_s(res[1]), 3),
      "median of rounds", round(statistics.median(ratios), 3))
