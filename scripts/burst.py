#!/usr/bin/env python3
"""A burst of logins against a chat server that is busy: how many clients are greeted.

While --members clients chat (`loadgen chat`, one line a second each), --procs processes
connect --clients clients in all, at once, and count those that get the server's first line
(the handle prompt) within --wait seconds. The kernel's listen-queue overflows and drops
(`nstat -az TcpExtListenOverflows TcpExtListenDrops`) are read before and after; they are
system-wide, so other traffic on the machine counts too.

    cargo build --release --example chatter && cargo build --release -p fibra-bench --bins
    python3 scripts/burst.py                            # chatter --threads 2, 500 + 2,000
    python3 scripts/burst.py --server /tmp/chatter-old  # another build of the chatter

Measured on 2 shared cores (release builds, 500 members chatting, 2,000 clients from 4
processes): before the hand-off passed over full channels and listened with the kernel's
backlog (2a3dd86, std's 128), 819 and 1,524 greeted, 3,073 and 2,182 listen overflows;
after, 2,000 of 2,000 greeted twice, 0 overflows.

Every run is bounded: the members chat for at most --wait + 20 s, each burst process gives
up after --wait seconds, and the server and the generator are stopped by PID at the end.
Prints one JSON line.
"""
import argparse, json, multiprocessing, os, resource, selectors, signal, socket, subprocess
import sys, time

from serverlib import free_port, program, wait_listening


def listen_counters():
    """TcpExtListenOverflows and TcpExtListenDrops, absolute, or None without nstat."""
    try:
        out = subprocess.run(["nstat", "-az", "TcpExtListenOverflows", "TcpExtListenDrops"],
                             capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    counters = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith("TcpExt"):
            counters[parts[0]] = int(parts[1])
    return counters


def burst(args):
    """One process's share: connect `n` clients at once; count those greeted in `wait` s."""
    port, n, wait, start_at = args
    raise_fd_limit()
    while time.time() < start_at:
        time.sleep(0.001)
    sel = selectors.DefaultSelector()
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect_ex(("127.0.0.1", port))
        except OSError:
            s.close()
            continue
        sel.register(s, selectors.EVENT_READ)
        socks.append(s)
    greeted, closed = 0, 0
    deadline = time.time() + wait
    while greeted + closed < len(socks):
        left = deadline - time.time()
        if left <= 0:
            break
        for key, _ in sel.select(timeout=min(left, 0.5)):
            s = key.fileobj
            try:
                data = s.recv(4096)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            sel.unregister(s)
            if data:
                greeted += 1
            else:
                closed += 1
    for s in socks:
        s.close()
    return greeted, closed


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", help="the chatter binary (default: the release build)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--members", type=int, default=500)
    p.add_argument("--clients", type=int, default=2000)
    p.add_argument("--procs", type=int, default=4)
    p.add_argument("--wait", type=float, default=10.0)
    args = p.parse_args()
    limit = raise_fd_limit()
    server_bin = args.server or program("chatter")
    port = free_port()
    server = subprocess.Popen([server_bin, "--addr", f"127.0.0.1:{port}",
                               "--web-addr", "127.0.0.1:0", "--threads", str(args.threads)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    members = None
    try:
        wait_listening(port)
        members = subprocess.Popen(
            [program("loadgen"), "chat", "--addr", f"127.0.0.1:{port}", "--clients",
             str(args.members), "--rate", "1", "--warmup", "2",
             "--secs", str(int(args.wait) + 15)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(5)  # the members log in and chat
        before = listen_counters()
        share = args.clients // args.procs
        start_at = time.time() + 1.0
        with multiprocessing.Pool(args.procs) as pool:
            results = pool.map(burst, [(port, share, args.wait, start_at)] * args.procs)
        after = listen_counters()
        greeted = sum(g for g, _ in results)
        closed = sum(c for _, c in results)
        delta = None
        if before is not None and after is not None:
            delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        print(json.dumps({
            "server": server_bin, "threads": args.threads, "members": args.members,
            "clients": share * args.procs, "procs": args.procs, "wait_s": args.wait,
            "greeted": greeted, "closed": closed,
            "not_greeted": share * args.procs - greeted, "fd_limit": limit,
            "listen": delta,
        }))
    finally:
        for proc in (members, server):
            if proc is not None and proc.poll() is None:
                os.kill(proc.pid, signal.SIGINT)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()


if __name__ == "__main__":
    sys.exit(main())
