#!/usr/bin/env python3
"""Idle connections against the chatter: as many as this machine allows (19,000 here, where
every process may hold 20,000 descriptors), held silent at the prompt (or logged in), over
telnet or the chatter's WebSocket, for each way the chatter keeps a silent connection
(`--idle-members stackful`: a tasklet and its stack each; `stackless`: no tasklet while
silent). Prints, per mode, the server's user-space memory per connection (its RSS growth
divided by the connections) and the kernel's TCP buffer memory (/proc/net/sockstat's `mem`,
pages, both ends of every connection counted, since the generators run here too).

  python3 scripts/idle.py                       # 19,000 WebSockets at the prompt, both modes
  python3 scripts/idle.py --conns 5000 --wire telnet --login yes
  python3 scripts/idle.py --conns 1000000 --modes stackless   # where the limits allow it

The generators are `loadgen idle` children: 18,000 connections per process at most, and
127.0.0.2, 127.0.0.3, ... as source addresses (25,000 each; every address pair has about
28,000 ports). Each run is bounded (its --secs, a connect deadline, a 15-minute cap) and
stops its own processes, by PID.

A million idle connections on one machine: what to raise (root, before the run)
  fs.nr_open                 sysctl -w fs.nr_open=2000000       (the most one process may
                             open; 1,048,576 by default: just short of a million plus the
                             server's own)
  fs.file-max                sysctl -w fs.file-max=4000000      (all processes together: the
                             server's million and the generators' million)
  nofile                     ulimit -n 2000000 in the shell that runs this (hard limit first:
                             /etc/security/limits.conf `* hard nofile 2000000`, or systemd's
                             LimitNOFILE=); these machines cap every process at 20,000, hard,
                             which is why 19,000 is the most here
  ip_local_port_range        sysctl -w net.ipv4.ip_local_port_range="1024 65535" (64,000
                             ports per source address instead of 28,000); with --sources 40
                             a million connections need no more than 25,000 each anyway
  vm.max_map_count           only for --idle-members stackful: every tasklet stack is two
                             kernel maps, so a million tasklets need 2,000,000+ (default
                             65,530 stops a process near 32,000 tasklets);
                             sysctl -w vm.max_map_count=2100000. Stackless needs none.
  net.core.somaxconn         sysctl -w net.core.somaxconn=65535, and the accept backlog,
                             against bursts of connects (the generators open 200 at a time
                             per process)
  memory                     about 1.2-1.7 KiB (stackless) or 5-11 KiB (stackful) of the
                             server's user space per connection (measured here at 19,000),
                             plus the kernel's ~3.7 KiB per socket end at rest (slab: TCP,
                             sock_inode_cache, dentry, filp, eventpoll_epi): a million
                             connections with their generators on the same machine need about
                             2 GB of user space for the server and 7.5 GB of kernel slab.
Then: python3 scripts/idle.py --conns 1000000 --procs 56 --sources 40 --modes stackless
"""
import argparse, json, os, signal, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serverlib import free_port, program, wait_listening  # noqa: E402


def start_chatter(mode, port, web_port):
    cmd = [program("chatter"), "--addr", f"127.0.0.1:{port}", "--web-addr",
           f"127.0.0.1:{web_port}", "--login-timeout", "0", "--idle-members", mode]
    env = dict(os.environ, RUST_LOG="warn")
    srv = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    wait_listening(port)
    wait_listening(web_port)
    time.sleep(0.5)
    return srv


def stop(srv):
    srv.send_signal(signal.SIGINT)  # our own child, by PID
    try:
        srv.wait(timeout=30)
    except subprocess.TimeoutExpired:
        srv.kill()
        srv.wait()


def one_run(a, mode):
    port, web_port = free_port(), free_port()
    srv = start_chatter(mode, port, web_port)
    try:
        ws = a.wire == "ws"
        gen = [program("loadgen"), "idle", "--addr", f"127.0.0.1:{web_port if ws else port}",
               "--conns", str(a.conns), "--ws", "yes" if ws else "no",
               "--prompt", "yes", "--login", a.login, "--secs", str(a.secs),
               "--warmup", str(a.warmup), "--pid", str(srv.pid),
               "--login-timeout", "60", "--prefix", f"{mode[:2]}"]
        if a.procs:
            gen += ["--procs", str(a.procs)]
        if a.sources:
            gen += ["--sources", str(a.sources)]
        out = subprocess.run(gen, capture_output=True, text=True, timeout=900)
        if out.returncode != 0:
            sys.stderr.write(out.stderr[-2000:])
            sys.exit(f"loadgen failed ({mode}): {out.stdout[-500:]}")
        lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
        if not lines:
            sys.exit(f"loadgen gave no result: {out.stderr[-2000:]}")
        return json.loads(lines[-1])
    finally:
        stop(srv)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--conns", type=int, default=19000)
    p.add_argument("--wire", choices=["ws", "telnet"], default="ws")
    p.add_argument("--login", choices=["yes", "no"], default="no",
                   help="log in before falling silent (every join is said to every member: "
                        "O(n^2) lines while they come; default: silent at the prompt)")
    p.add_argument("--modes", default="stackful,stackless")
    p.add_argument("--rounds", type=int, default=1, help="alternating rounds per mode")
    p.add_argument("--procs", type=int, default=0, help="generator processes (default: 18,000 each)")
    p.add_argument("--sources", type=int, default=0, help="source addresses (default: 25,000 each)")
    p.add_argument("--secs", type=float, default=3)
    p.add_argument("--warmup", type=float, default=2)
    a = p.parse_args()
    modes = a.modes.split(",")
    results = {m: [] for m in modes}
    for _ in range(a.rounds):
        for mode in modes:
            r = one_run(a, mode)
            results[mode].append(r)
            print(json.dumps(dict(r, mode=mode)), flush=True)
    print()
    print(f"{a.conns} idle {a.wire} connections (login: {a.login}), medians of {a.rounds}:")
    print("| idle members | open | server RSS growth | user space per conn | "
          "kernel TCP buffers per conn |")
    print("|---|---|---|---|---|")
    for mode in modes:
        rs = results[mode]
        med = lambda key: sorted(r.get(key) or 0 for r in rs)[len(rs) // 2]
        growth = (med("rss_with_kib") or 0) - (med("rss_before_kib") or 0)
        print(f"| {mode} | {med('open')} | {growth / 1024:.1f} MiB | "
              f"{med('bytes_per_conn') / 1024:.2f} KiB | "
              f"{med('kernel_buffer_bytes_per_conn')} B |")


if __name__ == "__main__":
    main()
