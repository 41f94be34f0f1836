#!/usr/bin/env python3
"""Echo side by side: fibra's `echo` example against the tokio peer (`tokio_echo`).

Runs fibra and tokio alternately (A B A B ...) with the same load generator, the server
pinned to CPU 0 and the generator to CPU 1 when `taskset` is available, and prints each
figure's median over the rounds and the fibra/tokio ratio. Every run stops by itself.

    cargo build --release --examples
    python3 scripts/bench-echo.py [--rounds 3] [--secs 5] [--conns 1,100,1000]
"""
import argparse, json, os, statistics, subprocess, sys

from serverlib import BIN, free_port, pin, wait_listening


def run_one(server, conns, secs, warmup):
    port = free_port()
    addr = f"127.0.0.1:{port}"
    env = dict(os.environ, RUST_LOG="warn")
    srv = subprocess.Popen(pin(0) + [os.path.join(BIN, server), "--addr", addr],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        wait_listening(port)
        out = subprocess.run(
            pin(1) + [os.path.join(BIN, "loadgen"), "echo", "--addr", addr, "--conns", str(conns),
                      "--secs", str(secs), "--warmup", str(warmup), "--pid", str(srv.pid)],
            capture_output=True, text=True, timeout=secs + warmup + 60)
        line = out.stdout.strip().splitlines()[-1]
        return json.loads(line)
    finally:
        srv.kill()  # our own child, by PID
        srv.wait()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--secs", type=float, default=5)
    p.add_argument("--warmup", type=float, default=1)
    p.add_argument("--conns", default="1,100,1000")
    a = p.parse_args()
    rows = []
    for conns in [int(c) for c in a.conns.split(",")]:
        results = {"echo": [], "tokio_echo": []}
        for r in range(a.rounds):
            for server in ("echo", "tokio_echo"):
                res = run_one(server, conns, a.secs, a.warmup)
                print(json.dumps({"server": server, "round": r, **res}), file=sys.stderr)
                results[server].append(res)
        for key, label in (("msgs_per_s", "msgs/s"), ("p50_us", "p50 µs"), ("p99_us", "p99 µs"),
                           ("server_cpu", "server CPU"), ("msgs_per_cpu_s", "msgs per CPU-s")):
            f = statistics.median([x[key] or 0 for x in results["echo"]])
            t = statistics.median([x[key] or 0 for x in results["tokio_echo"]])
            rows.append((conns, label, f, t, (f / t) if t else float("nan")))
    print(f"{'C':>5}  {'figure':<15} {'fibra':>12} {'tokio':>12} {'fibra/tokio':>12}")
    for conns, label, f, t, ratio in rows:
        print(f"{conns:>5}  {label:<15} {f:>12.2f} {t:>12.2f} {ratio:>12.2f}")


if __name__ == "__main__":
    main()
