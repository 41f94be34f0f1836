#!/usr/bin/env python3
"""Soak: the chatter under 1,000 clients saying 1 line/s each, plus connects/drops, for a
bounded time; then checks that nothing was lost or leaked.

    cargo build --release --examples && cargo build --release -p fibra-bench
    python3 scripts/soak-chat.py [--clients 1000] [--rate 1] [--churn 50] [--secs 600]

Pass criteria (exit status 0 only if all hold):
  - 0 deliveries missing and 0 out of order (per sender sequence numbers), no client lost;
  - server RSS at the end within 5% of the RSS after warm-up;
  - server descriptors at the end = live connections + the idle server's descriptors.
The chatter is pinned to CPU 0 and the load generator to CPU 1 when taskset exists. Both
stop by themselves (the generator after warm-up + secs + drain; the server is then
stopped with SIGINT, by PID).
"""
import argparse, json, os, signal, subprocess, sys, time

from serverlib import program, free_port, pin, wait_listening


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--rate", type=float, default=1.0)
    p.add_argument("--churn", type=float, default=50.0)
    p.add_argument("--secs", type=float, default=600.0)
    p.add_argument("--warmup", type=float, default=30.0)
    p.add_argument("--report", type=float, default=10.0)
    p.add_argument("--log", default="soak-chat.log")
    a = p.parse_args()
    if not 0 < a.secs <= 3600:
        sys.exit("--secs must be in (0, 3600]")

    port = free_port()
    addr = f"127.0.0.1:{port}"
    env = dict(os.environ, RUST_LOG="warn")
    srv = subprocess.Popen(pin(0) + [program("chatter"), "--addr", addr],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)
    try:
        wait_listening(port)
        time.sleep(0.2)  # the probe connection's session ends
        cmd = pin(1) + [program("loadgen"), "chat", "--addr", addr,
                        "--clients", str(a.clients), "--rate", str(a.rate),
                        "--churn", str(a.churn), "--secs", str(a.secs),
                        "--warmup", str(a.warmup), "--report", str(a.report),
                        "--pid", str(srv.pid)]
        print("running:", " ".join(cmd), flush=True)
        with open(a.log, "w") as log:
            out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=log, text=True,
                                 timeout=a.secs + a.warmup + 300)
        if out.returncode != 0:
            sys.exit(f"loadgen failed ({out.returncode}); see {a.log}")
        r = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        srv.send_signal(signal.SIGINT)  # our own child, by PID: a clean stop
        try:
            srv.wait(timeout=10)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()
    print(json.dumps(r))
    growth = (r["rss_end_kib"] - r["rss_start_kib"]) / r["rss_start_kib"]
    fd_constant = r["fds_idle"]
    checks = [
        ("deliveries missing", r["missing"], r["missing"] == 0),
        ("out of order", r["out_of_order"], r["out_of_order"] == 0),
        ("clients lost", r["receivers_lost"] + r["failed"], r["receivers_lost"] + r["failed"] == 0),
        ("churn logins failed", r["churn_failed"], r["churn_failed"] == 0),
        ("RSS after warm-up -> end (KiB)",
         f'{r["rss_start_kib"]} -> {r["rss_end_kib"]} ({growth:+.1%}), max {r["rss_max_kib"]}',
         growth < 0.05),
        ("fds at end = connections + idle fds",
         f'{r["fds_end"]} = {r["connected_end"]} + {fd_constant}',
         r["fds_end"] == r["connected_end"] + fd_constant),
    ]
    print(f'deliveries/s {r["deliveries_per_s"]}, p50 {r["p50_us"]} us, p99 {r["p99_us"]} us, '
          f'max {r["max_us"]} us, server CPU {r["server_cpu"]}, churn {r["churn_ok"]} logins')
    ok = True
    for name, value, good in checks:
        print(f'{"PASS" if good else "FAIL"}  {name}: {value}')
        ok &= good
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
