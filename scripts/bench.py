#!/usr/bin/env python3
"""fibra against its tokio peers, side by side: echo, chat broadcast, idle connections,
accept rate.

    cargo build --release --examples && cargo build --release -p fibra-bench
    python3 scripts/bench.py                      # everything, 3 rounds (about 12 minutes)
    python3 scripts/bench.py --only chat --rounds 5
    python3 scripts/bench.py --only sweep --rates 1,5,10,15,20

Every run starts a fresh server (fibra's example or its tokio peer) and the same load
generator (`loadgen`), alternately A B A B ..., the server pinned to one CPU and the
generator to another when `taskset` exists (`--server-cpu`, `--gen-cpu`). Each table row is
a figure's median over the rounds, and the fibra/tokio ratio. Every run ends by itself; the
servers are our own children, stopped by PID. `--json FILE` keeps every run's raw result.

Before and after a change, in one run: `--before DIR` (another checkout of fibra, built with
the same command, e.g. a `git worktree` of the base commit) puts DIR's build of each of
fibra's servers where the tokio peer was, so the echo, chat, sweep, idle and accept tables
read "after / before"; the load generator is this checkout's for both.

    git worktree add /tmp/base BASE && (cd /tmp/base && cargo build --release --examples)
    python3 scripts/bench.py --before /tmp/base --only echo,chat --rounds 5

Scenarios (`--only`, comma-separated):
  echo    C = 1, 100, 1000 connections, 64-byte messages in a closed loop
  chat    1,000 clients × 1 line/s (ABChat's benchmark) and × 10 lines/s
  sweep   1,000 clients, R lines/s each for R in --rates, until deliveries stop tracking
          the offered load or p99 passes 100 ms (--sweep-rounds per R, default 1)
  idle    10,000 idle connections: server RSS per connection (chat: at the prompt)
  accept  50 clients at a time connect, log in and leave: logins/s
  delays  the chatter alone at 1,000 × 1/s for each --flush-delay in --delays: the
          broadcast's CPU against its latency (not part of the default set)
  wschat  1,000 WebSocket clients × 1 line/s in the chatter's /ws against a tokio +
          tokio-tungstenite peer (not part of the default set)
  protocol  the echo server as tasklets, as a Protocol (gnet_echo) and tokio's: echo at
          C = 1, 100, 1000, and 10,000 idle connections (not part of the default set)
  abchat  ABChat's own benchmark against a tokio peer of the same protocol (tokio_abchat):
          1,000 clients each sending one frame a second to all (1 M deliveries/s), then the
          sweep of --rates until the load stops being tracked (not part of the default set)
  tls     the chat over TLS: the chatter's TLS port (--tls-cert, --tls-key) against a tokio +
          tokio-rustls peer (tokio_tls_chat), the same certificates (gencert's, made for the
          run) and loadgen over TLS: 1,000 clients x 1 and x 10 lines/s, then 50 clients at a
          time making new TLS logins (a full handshake each) (not part of the default set)
"""
import argparse, json, os, signal, statistics, subprocess, sys, tempfile, time

from serverlib import ROOT, program, free_port, pin, wait_listening

PEERS = {"echo": ("echo", "tokio_echo"), "chat": ("chatter", "tokio_chat"),
         "abchat": ("abchat", "tokio_abchat")}


def cpu_arg(cpu):
    return pin(cpu) if cpu is not None else []


def run_one(args, server, gen_args, timeout, server_args=(), addr_flag="--addr"):
    """Starts `server`, runs `loadgen gen_args... --addr --pid`, stops the server; the JSON.
    The load goes to the address given to the server with `addr_flag`."""
    port = free_port()
    addr = f"127.0.0.1:{port}"
    path = (program(server[len(BEFORE):], args.before) if server.startswith(BEFORE)
            else program(server))
    env = dict(os.environ, RUST_LOG="warn")
    srv = subprocess.Popen(cpu_arg(args.server_cpu) + [path, addr_flag, addr, *server_args],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        wait_listening(port)
        time.sleep(0.2)  # the probe connection's session ends
        cmd = cpu_arg(args.gen_cpu) + [program("loadgen")] + gen_args + [
            "--addr", addr, "--pid", str(srv.pid)]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        lines = out.stdout.strip().splitlines()
        if not lines:
            raise RuntimeError(f"loadgen printed nothing: {out.stderr.strip()[-500:]}")
        return json.loads(lines[-1])
    finally:
        srv.send_signal(signal.SIGINT)  # our own child, by PID
        try:
            srv.wait(timeout=5)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()


# A server's name with this prefix is the build of `--before DIR`.
BEFORE = "before:"
# The second column's name in the tables: "tokio", or "before" with --before.
PEER = {"name": "tokio"}


def alternate(args, kind, gen_args, timeout, rounds, label, log):
    """A B A B ...: the runs of fibra's server and of its tokio peer (with --before: of the
    same server built from the other checkout)."""
    fibra, tokio = PEERS[kind]
    if args.before:
        tokio = BEFORE + fibra
    results = {fibra: [], tokio: []}
    for r in range(rounds):
        for server in (fibra, tokio):
            res = run_one(args, server, gen_args, timeout)
            res.update(server=server, round=r, case=label)
            log.append(res)
            print(json.dumps(res), file=sys.stderr, flush=True)
            results[server].append(res)
    return results[fibra], results[tokio]


def alternate_servers(args, servers, gen_args, timeout, rounds, label, log):
    """A B C A B C ...: the runs of each of `servers`, by name."""
    results = {server: [] for server in servers}
    for r in range(rounds):
        for server in servers:
            res = run_one(args, server, gen_args, timeout)
            res.update(server=server, round=r, case=label)
            log.append(res)
            print(json.dumps(res), file=sys.stderr, flush=True)
            results[server].append(res)
    return results


def protocol_table(title, rows):
    print(f"\n{title}")
    print(f"  {'case':<14} {'figure':<18} {'tasklets':>10} {'protocol':>10} {'tokio':>10} "
          f"{'prot/task':>10} {'prot/tokio':>10}")
    fmt = lambda v: "-" if v is None else (f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3f}")
    ratio = lambda a, b: "-" if (a is None or not b) else f"{a / b:.2f}"
    for case, figure, task, prot, tok in rows:
        print(f"  {case:<14} {figure:<18} {fmt(task):>10} {fmt(prot):>10} {fmt(tok):>10} "
              f"{ratio(prot, task):>10} {ratio(prot, tok):>10}", flush=True)


def median(runs, key):
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def table(title, rows):
    print(f"\n{title}")
    peer = PEER["name"]
    print(f"  {'case':<18} {'figure':<22} {'fibra':>12} {peer:>12} {'fibra/' + peer:>12}")
    for case, figure, f, t in rows:
        ratio = f / t if (f is not None and t) else None
        fmt = lambda v: "-" if v is None else (f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3f}")
        print(f"  {case:<18} {figure:<22} {fmt(f):>12} {fmt(t):>12} "
              f"{'-' if ratio is None else f'{ratio:.2f}':>12}", flush=True)


def rows_for(case, fibra, tokio, figures):
    return [(case, label, median(fibra, key), median(tokio, key)) for key, label in figures]


ECHO_FIGURES = [("msgs_per_s", "msgs/s"), ("p50_us", "p50 µs"), ("p99_us", "p99 µs"),
                ("server_cpu", "server CPU"), ("msgs_per_cpu_s", "msgs per CPU-s")]
CHAT_FIGURES = [("deliveries_per_s", "deliveries/s"), ("p50_us", "p50 µs"),
                ("p99_us", "p99 µs"), ("max_us", "max µs"), ("missing", "missing"),
                ("receivers_lost", "clients lost"), ("server_cpu", "server CPU"),
                ("deliveries_per_cpu_s", "deliveries per CPU-s")]


def chat_args(a, clients, rate):
    return ["chat", "--clients", str(clients), "--rate", str(rate), "--secs", str(a.secs),
            "--warmup", str(a.warmup)]


def sweep(a, kind, extra, timeout, log, title):
    """R lines/s per client for R in --rates, until each server stops tracking the offered
    load (deliveries below 95% of it, or p99 over 100 ms)."""
    rows = []
    done = set()
    for rate in [float(r) for r in a.rates.split(",")]:
        offered = a.clients * a.clients * rate
        f, t = alternate(a, kind, chat_args(a, a.clients, rate) + extra, timeout,
                         a.sweep_rounds, f"{title} R={rate:g}", log)
        for name, runs in (("fibra", f), ("tokio", t)):
            d, p99 = median(runs, "deliveries_per_s") or 0, median(runs, "p99_us") or 0
            if d < 0.95 * offered or p99 > 100_000:
                done.add(name)
        rows += rows_for(f"R={rate:g} ({offered / 1e6:g}M/s)", f, t,
                         [("deliveries_per_s", "deliveries/s"), ("p99_us", "p99 µs"),
                          ("server_cpu", "server CPU"),
                          ("deliveries_per_cpu_s", "deliveries per CPU-s")])
        if done == {"fibra", "tokio"}:
            break
    table(f"{title}: offered load up to saturation (deliveries/s below 95% of offered, "
          "or p99 over 100 ms)", rows)


def tls(a, timeout, log):
    """The chat over TLS: the chatter's TLS port against tokio_tls_chat, same certificates."""
    with tempfile.TemporaryDirectory(prefix="fibra-tls-bench-") as certs:
        subprocess.run([program("gencert"), "--dir", certs], check=True,
                       stderr=subprocess.DEVNULL, timeout=60)
        files = ("--tls-cert", os.path.join(certs, "cert.pem"),
                 "--tls-key", os.path.join(certs, "key.pem"))
        # The chatter's telnet port and web pages are out of the way; the load goes to its
        # TLS port.
        servers = (("chatter", ("--addr", "127.0.0.1:0", "--no-web", *files), "--tls-addr"),
                   ("tokio_tls_chat", files, "--addr"))
        ca = ["--tls-ca", os.path.join(certs, "ca.pem")]
        cases = [(f"{a.clients} x {rate}/s", chat_args(a, a.clients, rate) + ca, CHAT_FIGURES)
                 for rate in (1, 10)]
        cases.append(("50 at a time",
                      ["accept", "--conns", "50", "--secs", str(min(a.secs, 5)), "--warmup", "1"]
                      + ca,
                      [("logins_per_s", "TLS logins/s"), ("p50_us", "p50 µs"),
                       ("p99_us", "p99 µs"), ("server_cpu", "server CPU"),
                       ("logins_per_cpu_s", "logins per CPU-s")]))
        rows = []
        for case, gen, figures in cases:
            runs = {name: [] for name, _, _ in servers}
            for r in range(a.rounds):
                for server, extra, flag in servers:
                    res = run_one(a, server, gen, timeout, extra, flag)
                    res.update(server=server, round=r, case=f"tls {case}")
                    log.append(res)
                    print(json.dumps(res), file=sys.stderr, flush=True)
                    runs[server].append(res)
            rows += rows_for(case, runs["chatter"], runs["tokio_tls_chat"], figures)
        table("tls: the chat over TLS, rustls (ring) both (chatter --tls-cert vs tokio_tls_chat, "
              "tokio-rustls); the last case is new TLS logins", rows)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default="echo,chat,sweep,idle,accept")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--secs", type=float, default=10, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=3)
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--rates", default="1,2,5,10,15,20")
    p.add_argument("--sweep-rounds", type=int, default=1)
    p.add_argument("--delays", default="0,2,5,10,20")
    p.add_argument("--idle-conns", type=int, default=10000)
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--gen-cpu", type=int, default=1)
    p.add_argument("--json", help="write every run's result here")
    p.add_argument("--before", metavar="DIR",
                   help="another checkout whose build replaces the tokio peers (after/before)")
    a = p.parse_args()
    if a.before:
        PEER["name"] = "before"
        bad = set(a.only.split(",")) - {"echo", "chat", "sweep", "idle", "accept", "abchat"}
        if bad:
            sys.exit(f"--before measures echo, chat, sweep, idle, accept and abchat, not {','.join(sorted(bad))}")
        print(f"after: {ROOT} (the fibra column); before: {a.before} (in place of tokio)")
    if not (0 < a.secs <= 600 and 1 <= a.rounds <= 20):
        sys.exit("--secs must be in (0, 600], --rounds in [1, 20]")
    only = set(a.only.split(","))
    log = []
    timeout = a.secs + a.warmup + 120

    if "echo" in only:
        rows = []
        for conns in (1, 100, 1000):
            gen = ["echo", "--conns", str(conns), "--secs", str(min(a.secs, 5)), "--warmup", "1"]
            f, t = alternate(a, "echo", gen, timeout, a.rounds, f"echo C={conns}", log)
            rows += rows_for(f"C={conns}", f, t, ECHO_FIGURES)
        table("echo: 64-byte messages, closed loop (echo vs tokio_echo)", rows)

    if "chat" in only:
        rows = []
        for rate in (1, 10):
            f, t = alternate(a, "chat", chat_args(a, a.clients, rate), timeout, a.rounds,
                             f"chat {a.clients}x{rate}", log)
            rows += rows_for(f"{a.clients} x {rate}/s", f, t, CHAT_FIGURES)
        table("chat: every line to every client (chatter vs tokio_chat)", rows)

    if "sweep" in only:
        sweep(a, "chat", [], timeout, log, "sweep")

    if "abchat" in only:
        gen = chat_args(a, a.clients, 1) + ["--abchat", "yes"]
        f, t = alternate(a, "abchat", gen, timeout, a.rounds, f"abchat {a.clients}x1", log)
        table("abchat: ABChat's benchmark, every client one frame a second to all "
              "(abchat vs tokio_abchat)", rows_for(f"{a.clients} x 1/s", f, t, CHAT_FIGURES))
        sweep(a, "abchat", ["--abchat", "yes"], timeout, log, "abchat sweep")

    if "idle" in only:
        rows = []
        for kind, prompt in (("chat", "yes"), ("echo", "no")):
            gen = ["idle", "--conns", str(a.idle_conns), "--prompt", prompt, "--secs", "2",
                   "--warmup", "1"]
            f, t = alternate(a, kind, gen, timeout, a.rounds, f"idle {kind}", log)
            rows += rows_for(f"{kind} x {a.idle_conns}", f, t,
                             [("kib_per_conn", "KiB RSS per conn"),
                              ("rss_with_kib", "RSS KiB")])
        table("idle connections: server memory", rows)

    if "protocol" in only:
        servers = ("echo", "gnet_echo", "tokio_echo")
        rows = []
        for conns in (1, 100, 1000):
            gen = ["echo", "--conns", str(conns), "--secs", str(min(a.secs, 5)), "--warmup", "1"]
            res = alternate_servers(a, servers, gen, timeout, a.rounds, f"protocol C={conns}", log)
            for key, label in (("msgs_per_s", "msgs/s"), ("p99_us", "p99 µs"),
                               ("server_cpu", "server CPU"), ("msgs_per_cpu_s", "msgs per CPU-s")):
                rows.append((f"C={conns}", label, *(median(res[s], key) for s in servers)))
        gen = ["idle", "--conns", str(a.idle_conns), "--prompt", "no", "--secs", "2",
               "--warmup", "1"]
        res = alternate_servers(a, servers, gen, timeout, a.rounds, "protocol idle", log)
        for key, label in (("kib_per_conn", "KiB RSS per conn"), ("rss_with_kib", "RSS KiB")):
            rows.append((f"idle x {a.idle_conns}", label, *(median(res[s], key) for s in servers)))
        protocol_table("protocol: the echo server as tasklets (echo), as a Protocol (gnet_echo), "
                       "and tokio's", rows)

    if "wschat" in only:
        rows = []
        for rate in (1,):
            gen = chat_args(a, a.clients, rate) + ["--ws", "yes"]
            runs = {"chatter": [], "tokio_ws_chat": []}
            for r in range(a.rounds):
                for server, extra, flag in (("chatter", ("--addr", "127.0.0.1:0"), "--web-addr"),
                                            ("tokio_ws_chat", (), "--addr")):
                    res = run_one(a, server, gen, timeout, extra, flag)
                    res.update(server=server, round=r, case=f"wschat {a.clients}x{rate}")
                    log.append(res)
                    print(json.dumps(res), file=sys.stderr, flush=True)
                    runs[server].append(res)
            rows += rows_for(f"{a.clients} x {rate}/s", runs["chatter"], runs["tokio_ws_chat"],
                             CHAT_FIGURES)
        table("wschat: every line to every WebSocket client (chatter's /ws vs tokio_ws_chat, "
              "tokio-tungstenite)", rows)

    if "accept" in only:
        gen = ["accept", "--conns", "50", "--secs", str(min(a.secs, 5)), "--warmup", "1"]
        f, t = alternate(a, "chat", gen, timeout, a.rounds, "accept", log)
        table("accept: 50 at a time connect, log in, leave (chatter vs tokio_chat)",
              rows_for("50 at a time", f, t,
                       [("logins_per_s", "logins/s"), ("p50_us", "p50 µs"),
                        ("p99_us", "p99 µs"), ("server_cpu", "server CPU"),
                        ("logins_per_cpu_s", "logins per CPU-s")]))

    if "tls" in only:
        tls(a, timeout, log)

    if "delays" in only:
        print("\nchatter alone, 1,000 clients × 1 line/s, by flush delay (medians)")
        print(f"  {'delay ms':>8} {'deliveries/s':>13} {'p50 µs':>8} {'p99 µs':>8} "
              f"{'max µs':>8} {'missing':>8} {'server CPU':>10}")
        for delay in a.delays.split(","):
            runs = []
            for r in range(a.rounds):
                res = run_one(a, "chatter", chat_args(a, a.clients, 1), timeout,
                              ("--flush-delay", delay))
                res.update(server="chatter", round=r, case=f"delay {delay}")
                log.append(res)
                print(json.dumps(res), file=sys.stderr, flush=True)
                runs.append(res)
            m = lambda k: median(runs, k)
            print(f"  {delay:>8} {m('deliveries_per_s'):>13,.0f} {m('p50_us'):>8,.0f} "
                  f"{m('p99_us'):>8,.0f} {m('max_us'):>8,.0f} {m('missing'):>8,.0f} "
                  f"{m('server_cpu'):>10.3f}", flush=True)

    if a.json:
        with open(a.json, "w") as out:
            json.dump(log, out, indent=1)


if __name__ == "__main__":
    main()
