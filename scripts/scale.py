#!/usr/bin/env python3
"""One schedule per core against tokio's multi-thread runtime, at N = 1, 2, 4, 8 threads:
the chatter's deliveries per second at saturation (`chatter --threads N` against
`tokio_chat --threads N`) and the echo server's messages per second (`echo --threads N`
against `tokio_echo --threads N`), side by side, in one run that stops by itself.

    cargo build --release --examples && cargo build --release -p fibra-bench
    python3 scripts/scale.py                         # N = 1,2,4,8 where the cores allow
    python3 scripts/scale.py --threads 1,2 --quick   # a short check of the script itself
    python3 scripts/scale.py --quick --threads 1 --gens 2   # two generators in one room
    python3 scripts/scale.py --secs 3 --warmup 1     # within a 10-minute limit (about 8 min)
    python3 scripts/scale.py --scenario rooms        # 100 rooms x 100 members, N = 1,2
    python3 scripts/scale.py --scenario rooms --quick   # 10 x 10, a check of the script

At the defaults a full run takes up to about 13 minutes (at most 20 runs of about 10 s for
each N, fewer as each server stops at its first untracked rate); every run stops by itself
and stops its server by PID. On 8 generators the top rate offers 320 M deliveries/s, 40 M
to each generator, about what one generator core reads.

The server gets CPUs 0..N-1 (taskset), the load generators one CPU each from N on (as many
as the machine has left, at most 8; --gens G: exactly G, sharing CPUs when short). Several
generators share one chat room: each logs in its own clients (`loadgen chat --prefix gK_
--id-base ...`) and counts only its own senders' lines, so the server's deliveries are the
generators' sum times their number. Every wait is bounded: a login not completed within
--login-timeout counts as failed (the table's `failed` column), and a generator that has not
ended by its run's deadline is killed (by PID) and named.

Chat: for each N, the offered load (lines a second per client, --rates) rises until a
server stops tracking it (deliveries under 95% of offered, or p99 over 100 ms); its
saturation is the highest rate it tracked. Echo: --echo-conns connections per generator in
a closed loop. Scaling is figure(N) / (N x figure(1)); the goal is >= 0.8 up to 8 threads,
and ahead of tokio at every N. A machine with fewer cores than 2N can only show that the
script works: the table says when the generators had fewer cores than the server.
"""
import argparse, json, os, shutil, signal, subprocess, sys, time

from serverlib import program, free_port, wait_listening


def cpus(first, count):
    return list(range(first, first + count))


def taskset(cpu_list):
    if not shutil.which("taskset") or not cpu_list:
        return []
    return ["taskset", "-c", ",".join(str(c) for c in cpu_list)]


def start_server(cmd, cpu_list, port):
    env = dict(os.environ, RUST_LOG="warn")
    srv = subprocess.Popen(taskset(cpu_list) + cmd, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, env=env)
    wait_listening(port)
    time.sleep(0.3)
    return srv


def stop_server(srv):
    srv.send_signal(signal.SIGINT)  # our own child, by PID
    try:
        srv.wait(timeout=10)
    except subprocess.TimeoutExpired:
        srv.kill()
        srv.wait()


def run_gens(gen_cmds, gen_cpus, timeout):
    """Runs the generators at once; their JSON results. Each has until one deadline, `timeout`
    seconds from now; one still running then is killed (our own child, by PID)."""
    procs = [subprocess.Popen(taskset([cpu]) + cmd, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for cmd, cpu in zip(gen_cmds, gen_cpus)]
    deadline = time.time() + timeout
    results, hung = [], []
    for g, p in enumerate(procs):
        try:
            out, err = p.communicate(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            hung.append(g)
        lines = out.strip().splitlines()
        if not lines:
            raise RuntimeError(f"generator {g} printed nothing"
                               f"{' (killed: still running at its deadline)' if g in hung else ''}"
                               f": {err.strip()[-400:]}")
        result = json.loads(lines[-1])
        if result.get("failed"):
            print(f"generator {g}: {result['failed']} logins failed "
                  f"({result.get('login_timeouts', 0)} timed out)", file=sys.stderr, flush=True)
        results.append(result)
    if hung:
        raise RuntimeError(f"generators {hung} did not end within {timeout:.0f} s")
    return results


def gen_cpu_list(n, gens, ncpu):
    """One CPU per generator from N on; round-robin over what is left (or every CPU) when
    there are fewer."""
    spare = list(range(n, ncpu)) or list(range(ncpu))
    return [spare[g % len(spare)] for g in range(gens)]


def chat_round(a, server, n, rate, gens, gen_cpus, log, rooms=1):
    port = free_port()
    addr = f"127.0.0.1:{port}"
    if server == "chatter":
        cmd = [program("chatter"), "--addr", addr, "--no-web", "--threads", str(n)]
        if n > 1 and a.pin:
            cmd.append("--pin")
    else:
        cmd = [program("tokio_chat"), "--addr", addr, "--threads", str(n)]
    srv = start_server(cmd, cpus(0, n), port)
    per_gen = a.clients // gens
    try:
        gen_cmds = [[program("loadgen"), "chat", "--addr", addr,
                     "--clients", str(per_gen), "--rate", str(rate), "--prefix", f"g{g}_",
                     "--id-base", str(g * per_gen), "--secs", str(a.secs),
                     "--warmup", str(a.warmup), "--drain", str(a.drain),
                     "--login-timeout", str(a.login_timeout), "--pid", str(srv.pid)]
                    + (["--rooms", str(rooms)] if rooms > 1 else [])
                    for g in range(gens)]
        # Logins (200 at a time, each within --login-timeout), the run, the drain, a margin.
        logins = a.login_timeout * (per_gen // 200 + 2)
        res = run_gens(gen_cmds, gen_cpus, logins + a.secs + a.warmup + a.drain + 30)
    finally:
        stop_server(srv)
    total = sum(r["deliveries_per_s"] for r in res) * gens
    # Each line reaches the members of its room: clients x members of a room x rate.
    offered = (per_gen * gens) ** 2 // rooms * rate
    row = {"kind": "chat", "server": server, "threads": n, "rate": rate, "gens": gens,
           "rooms": rooms,
           "clients": per_gen * gens, "deliveries_per_s": total, "offered": offered,
           "p99_us": max(r["p99_us"] for r in res), "missing": sum(r["missing"] for r in res),
           "failed": sum(r["failed"] for r in res), "server_cpu": res[0]["server_cpu"]}
    log.append(row)
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def echo_round(a, server, n, gens, gen_cpus, log):
    port = free_port()
    addr = f"127.0.0.1:{port}"
    name = "echo" if server == "fibra" else "tokio_echo"
    cmd = [program(name), "--addr", addr, "--threads", str(n)]
    if server == "fibra" and n > 1 and a.pin:
        cmd.append("--pin")
    srv = start_server(cmd, cpus(0, n), port)
    try:
        gen_cmds = [[program("loadgen"), "echo", "--addr", addr,
                     "--conns", str(a.echo_conns), "--secs", str(a.secs),
                     "--warmup", str(a.warmup), "--pid", str(srv.pid)]
                    for _ in range(gens)]
        res = run_gens(gen_cmds, gen_cpus, a.secs + a.warmup + 30)
    finally:
        stop_server(srv)
    row = {"kind": "echo", "server": server, "threads": n, "gens": gens,
           "msgs_per_s": sum(r["msgs_per_s"] for r in res),
           "p99_us": max(r["p99_us"] for r in res), "server_cpu": res[0]["server_cpu"]}
    log.append(row)
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", default="1,2,4,8")
    p.add_argument("--gens", type=int, default=None,
                   help="load generators (default: one per CPU left, at most 8)")
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--rates", default="1,2,5,10,20,40,80,160,320")
    p.add_argument("--echo-conns", type=int, default=200)
    p.add_argument("--secs", type=float, default=5)
    p.add_argument("--warmup", type=float, default=2)
    p.add_argument("--drain", type=float, default=2,
                   help="seconds for the last lines to arrive after the sending stops")
    p.add_argument("--login-timeout", type=float, default=10,
                   help="a login not completed within this counts as failed")
    p.add_argument("--pin", action="store_true", default=True)
    p.add_argument("--quick", action="store_true",
                   help="a check of the script in seconds: 1 s runs, 100 clients, rate 1, "
                        "20 echo connections per generator")
    p.add_argument("--json", help="write every run's result here")
    p.add_argument("--scenario", choices=("scale", "rooms"), default="scale",
                   help="rooms: --rooms rooms of --members members each (client i joins "
                        "room i %% R), both servers at --threads (default 1,2): deliveries/s "
                        "and server CPU per delivery at the highest rate tracked")
    p.add_argument("--rooms", type=int, default=100)
    p.add_argument("--members", type=int, default=100)
    a = p.parse_args()
    if a.scenario == "rooms":
        return rooms_main(p, a)
    if a.quick:
        a.secs, a.warmup, a.drain, a.rates = 1, 0.5, 0.5, "1"
        a.clients, a.echo_conns, a.login_timeout = 100, 20, 5
    if not (0 < a.secs <= 60):
        sys.exit("--secs must be in (0, 60]")
    if a.gens is not None and not (1 <= a.gens <= 64):
        sys.exit("--gens must be in [1, 64]")
    ncpu = os.cpu_count() or 1
    log = []
    chat_rows, echo_rows = [], []
    for n in [int(t) for t in a.threads.split(",")]:
        gens = a.gens if a.gens else max(1, min(8, ncpu - n))
        gen_cpus = gen_cpu_list(n, gens, ncpu)
        starved = gens < n or ncpu - n < gens
        best = {}
        for server in ("chatter", "tokio_chat"):
            best[server] = None
            for rate in [float(r) for r in a.rates.split(",")]:
                row = chat_round(a, server, n, rate, gens, gen_cpus, log)
                if row["deliveries_per_s"] < 0.95 * row["offered"] or row["p99_us"] > 100_000:
                    break
                best[server] = row
        chat_rows.append((n, gens, starved, best["chatter"], best["tokio_chat"]))
        e = {s: echo_round(a, s, n, gens, gen_cpus, log) for s in ("fibra", "tokio")}
        echo_rows.append((n, gens, starved, e["fibra"], e["tokio"]))

    def fmt(v):
        return "-" if v is None else f"{v:,.0f}"

    print(f"\nmachine: {ncpu} CPUs; server on CPUs 0..N-1, generators on the next ones")
    print("\nchat: deliveries/s at saturation (the highest rate tracked), chatter --threads N "
          "vs tokio_chat --threads N")
    print(f"  {'N':>3} {'gens':>5} {'fibra':>14} {'tokio':>14} {'fibra/tokio':>12} "
          f"{'fibra scaling':>14} {'tokio scaling':>14}")
    base = {}
    for n, gens, starved, f, t in chat_rows:
        fv = f and f["deliveries_per_s"]
        tv = t and t["deliveries_per_s"]
        base.setdefault("f", fv)
        base.setdefault("t", tv)
        sc = lambda v, b: "-" if not (v and b) else f"{v / (n * b):.2f}"
        ratio = "-" if not (fv and tv) else f"{fv / tv:.2f}"
        note = "  (generators starved)" if starved else ""
        print(f"  {n:>3} {gens:>5} {fmt(fv):>14} {fmt(tv):>14} {ratio:>12} "
              f"{sc(fv, base['f']):>14} {sc(tv, base['t']):>14}{note}")
    failed = sum(r["failed"] for r in log if r["kind"] == "chat")
    print(f"  logins failed over every chat run: {failed:,}")
    print("\necho: messages/s, echo --threads N vs tokio_echo --threads N, "
          f"{a.echo_conns} connections per generator")
    print(f"  {'N':>3} {'gens':>5} {'fibra':>14} {'tokio':>14} {'fibra/tokio':>12} "
          f"{'fibra scaling':>14} {'tokio scaling':>14}")
    base = {}
    for n, gens, starved, f, t in echo_rows:
        fv, tv = f["msgs_per_s"], t["msgs_per_s"]
        base.setdefault("f", fv)
        base.setdefault("t", tv)
        note = "  (generators starved)" if starved else ""
        print(f"  {n:>3} {gens:>5} {fmt(fv):>14} {fmt(tv):>14} {fv / tv if tv else 0:>12.2f} "
              f"{fv / (n * base['f']):>14.2f} {tv / (n * base['t']):>14.2f}{note}")
    if a.json:
        with open(a.json, "w") as out:
            json.dump(log, out, indent=1)


def rooms_main(p, a):
    """The many-rooms scenario: each line reaches its room's members only, so the threads
    share little (a line crosses once to each other thread with a member in its room, for
    the members there)."""
    if a.threads == p.get_default("threads"):
        a.threads = "1,2"
    if a.rates == p.get_default("rates"):
        a.rates = "1,2,5,10,20,40"
    if a.quick:
        a.secs, a.warmup, a.drain, a.rates = 1, 0.5, 0.5, "1"
        a.rooms, a.members, a.login_timeout = min(a.rooms, 10), min(a.members, 10), 5
    if a.rooms < 1 or a.members < 1:
        sys.exit("--rooms and --members must be at least 1")
    ncpu = os.cpu_count() or 1
    log, rows = [], []
    for n in [int(t) for t in a.threads.split(",")]:
        gens = a.gens if a.gens else max(1, min(8, ncpu - n))
        # Every generator has the same share of every room (its clients' ids are contiguous
        # and room = id % rooms), so each counts its own senders' lines in every room.
        per_gen = -(-a.members // gens) * a.rooms
        a.clients = per_gen * gens
        gen_cpus = gen_cpu_list(n, gens, ncpu)
        starved = gens < n or ncpu - n < gens
        best = {}
        for server in ("chatter", "tokio_chat"):
            best[server] = None
            for rate in [float(r) for r in a.rates.split(",")]:
                row = chat_round(a, server, n, rate, gens, gen_cpus, log, rooms=a.rooms)
                if row["deliveries_per_s"] < 0.95 * row["offered"] or row["p99_us"] > 100_000:
                    break
                best[server] = row
        rows.append((n, gens, starved, best["chatter"], best["tokio_chat"]))

    def dps(r):
        return r and r["deliveries_per_s"]

    def ns_per(r):
        if not r or r["server_cpu"] is None or not r["deliveries_per_s"]:
            return None
        return r["server_cpu"] / r["deliveries_per_s"] * 1e9

    def fmt(v, unit=""):
        return "-" if v is None else f"{v:,.0f}{unit}"

    print(f"\nmachine: {ncpu} CPUs; server on CPUs 0..N-1, generators on the next ones")
    print(f"\nrooms: {a.rooms} rooms x {a.members} members ({a.rooms * a.members:,} "
          "clients); deliveries/s at the highest rate tracked, and the server's CPU per "
          "delivery (ns), chatter --threads N vs tokio_chat --threads N")
    print(f"  {'N':>3} {'gens':>5} {'fibra':>14} {'tokio':>14} {'fibra/tokio':>12} "
          f"{'fibra ns/dlv':>13} {'tokio ns/dlv':>13} {'fibra scaling':>14}")
    base = None
    for n, gens, starved, f, t in rows:
        fv, tv = dps(f), dps(t)
        base = base or fv
        ratio = "-" if not (fv and tv) else f"{fv / tv:.2f}"
        sc = "-" if not (fv and base) else f"{fv / (n * base):.2f}"
        note = "  (generators starved)" if starved else ""
        print(f"  {n:>3} {gens:>5} {fmt(fv):>14} {fmt(tv):>14} {ratio:>12} "
              f"{fmt(ns_per(f)):>13} {fmt(ns_per(t)):>13} {sc:>14}{note}")
    failed = sum(r["failed"] for r in log)
    missing = sum(r["missing"] for r in log)
    print(f"  logins failed over every run: {failed:,}; lines missing: {missing:,}")
    if a.json:
        with open(a.json, "w") as out:
            json.dump(log, out, indent=1)


if __name__ == "__main__":
    main()
