#!/usr/bin/env python3
"""BENCHMARKS.md's plots, as SVG files written by hand (no third-party packages):

    python3 scripts/plot.py            # writes the docs/bench-*.svg below

The figures below are BENCHMARKS.md's (each with the date and the command that measured
it); after a new run, put its medians here and run the script again.

- docs/bench-chat-sweep.svg: ABChat's benchmark, 1,000 clients each saying R lines a second
  to everyone (R million deliveries a second offered): deliveries/s, p99 and server CPU
  against the offered load, abchat (fibra) and tokio_abchat measured in the same run.
- docs/bench-echo-cores.svg: the echo server's messages/s on N cores, `echo --threads N`
  against `tokio_echo --threads N`, measured in the same run.
- docs/bench-idle-memory.svg: server user-space RSS per silent connection, 19,000 of them,
  with a tasklet stack each (stackful) and without one while silent (stackless).
- docs/bench-echo-instructions.svg: user-space instructions per echoed message at one core,
  fibra's echo through each pass of issue 31 and the stackless echo, against tokio_echo's,
  measured in the same sessions; beside them, each side-by-side run's messages per
  CPU-second against tokio_echo's.
"""
import argparse, math, os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# `python3 scripts/bench.py --only abchat --rounds 1 --rates ...`, 2026-12-01, 2-core VM,
# server on CPU 0, generator on CPU 1. Offered load in M deliveries/s: 1,000 clients each
# saying R lines a second, each line delivered to all 1,000, is R M/s. At R = 60 the
# generator falls behind (fibra 9.2 M/s delivered at 2.2 s p99; tokio nothing): left out.
CHAT_SWEEP = {
    "offered": [1, 2, 5, 10, 15, 20, 30, 40],
    "fibra": {"delivered": [1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0],
              "p99_ms": [9.9, 10.5, 10.5, 10.6, 11.9, 25.0, 54.7, 95.0],
              "cpu": [0.48, 0.48, 0.64, 0.75, 0.71, 0.72, 0.53, 0.34]},
    "tokio": {"delivered": [1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0],
              "p99_ms": [7.4, 11.9, 16.4, 16.1, 21.5, 37.6, 66.4, 1156.0],
              "cpu": [1.00, 0.99, 1.00, 1.00, 1.00, 0.99, 0.98, 1.00]},
}

# `python3 scripts/scale.py --threads 1,2 --quick`, 2026-12-01, 2-core VM: at N = 2 the
# generator shared a CPU with the server ("starved"). N = 4 and 8 need more cores.
ECHO_CORES = {
    "n": [1, 2],
    "fibra": [220_414, 141_392],
    "tokio": [219_838, 201_172],
    "starved": [2],
}

# `python3 scripts/idle.py` (19,000 connections from two `loadgen idle` processes), 2026-12-05,
# 2-core VM, release builds: KiB of server RSS growth per connection, each at the prompt.
IDLE_MEMORY = {
    "groups": ["WebSocket", "telnet"],
    "stackful": [10.73, 5.39],
    "stackless": [1.68, 1.24],
    "goal": 2.0,
}

# `valgrind --tool=callgrind` on the server, one `loadgen echo --conns 1000 --secs 8
# --warmup 0`, 2026-12-05 (BENCHMARKS.md, "Echo per message"): user-space instructions per
# message, fibra after each pass (pass 4: the answer written through,
# `ConnOptions::with_write_through`), tokio_echo (current-thread) in the same sessions.
ECHO_INSTRUCTIONS = {
    "passes": ["before", "pass 1", "pass 2", "pass 3", "pass 4"],
    "fibra": [2_034, 1_892, 1_584, 1_399, 1_084],
    # tokio_echo measured 954, 905 and 896 beside passes 1 to 3, 828 beside pass 4 (a
    # 10 s run less a 4 s one, as pass 4's figure): the latest is drawn.
    "tokio": 828,
    # The stackless echo (`gnet_echo --stackless`, a Protocol without a tasklet while idle),
    # 2026-12-06 (BENCHMARKS.md, "Echo: a stackless message without a yield"): each figure
    # divided by the exact count of `send`s, tokio_echo 828 by the same count.
    "stackless": [("stackless, yields", 1_449), ("stackless, calls", 772)],
}

# `python3 scripts/echo_corun.py ROUNDS A tokio`, 2026-12-06: A and tokio_echo side by side on
# CPU 0, msgs per server CPU-second (user and kernel), ratio of sums against tokio_echo's, each
# run drawn (BENCHMARKS.md, "Echo: a stackless message without a yield" and "Echo: what did
# not show", stop 40).
ECHO_CORUN = {
    "tasklet echo": [0.998, 0.990, 0.995],
    "stackless echo": [0.990, 0.997, 0.985, 1.004],
}

STACKLESS = "#e67e22"
FIBRA, TOKIO, GRID, INK = "#c0392b", "#2c6fbb", "#e3e3e3", "#222"
FONT = 'font-family="DejaVu Sans, Helvetica, Arial, sans-serif"'


def esc(text):
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def text(x, y, s, size=12, anchor="middle", weight="normal", color=INK, rotate=None):
    turn = f' transform="rotate({rotate} {x:.1f} {y:.1f})"' if rotate is not None else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" {FONT} font-size="{size}" text-anchor="{anchor}" '
            f'font-weight="{weight}" fill="{color}"{turn}>{esc(s)}</text>')


def line(x1, y1, x2, y2, color=INK, width=1, dash=None):
    d = f' stroke-dasharray="{dash}"' if dash else ""
    return (f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{color}" '
            f'stroke-width="{width}"{d}/>')


def svg(width, height, body):
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}">\n<rect width="100%" height="100%" fill="white"/>\n'
            + "\n".join(body) + "\n</svg>\n")


class Panel:
    """One chart's frame: a linear x axis, a linear or log y axis, ticks and a title."""

    def __init__(self, x, y, w, h, xs, ys, log_y=False):
        self.x, self.y, self.w, self.h = x, y, w, h
        self.xs, self.ys, self.log_y = xs, ys, log_y

    def px(self, v):
        lo, hi = self.xs
        return self.x + (v - lo) / (hi - lo) * self.w

    def py(self, v):
        lo, hi = self.ys
        if self.log_y:
            v, lo, hi = math.log10(v), math.log10(lo), math.log10(hi)
        return self.y + self.h - (v - lo) / (hi - lo) * self.h

    def frame(self, title, xlabel, ylabel, xticks, yticks, yfmt=str):
        out = [text(self.x + self.w / 2, self.y - 10, title, 13, weight="bold")]
        for t in yticks:
            out.append(line(self.x, self.py(t), self.x + self.w, self.py(t), GRID))
            out.append(text(self.x - 6, self.py(t) + 4, yfmt(t), 11, anchor="end"))
        for t in xticks:
            out.append(line(self.px(t), self.y + self.h, self.px(t), self.y + self.h + 4))
            out.append(text(self.px(t), self.y + self.h + 17, t, 11))
        out.append(line(self.x, self.y + self.h, self.x + self.w, self.y + self.h))
        out.append(line(self.x, self.y, self.x, self.y + self.h))
        out.append(text(self.x + self.w / 2, self.y + self.h + 34, xlabel, 12))
        out.append(text(self.x - 44, self.y + self.h / 2, ylabel, 12, rotate=-90))
        return out

    def series(self, xs, ys, color, dash=None):
        points = [(self.px(x), self.py(y)) for x, y in zip(xs, ys) if y is not None]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        d = f' stroke-dasharray="{dash}"' if dash else ""
        out = [f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"{d}/>']
        out += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{color}"/>' for x, y in points]
        return out


def legend(x, y, entries):
    out = []
    for i, (label, color, dash) in enumerate(entries):
        yy = y + i * 18
        out.append(line(x, yy, x + 24, yy, color, 2, dash))
        out.append(text(x + 30, yy + 4, label, 12, anchor="start"))
    return out


def pair_bars(p, labels, series, fmt):
    """Two bars per label in panel `p`: `series` is [(values, color), (values, color)], each
    bar topped with its value written with `fmt`."""
    out = []
    bar = p.w / len(labels) / 3
    for i, label in enumerate(labels):
        left = p.x + i * p.w / len(labels) + bar / 2
        for j, (values, color) in enumerate(series):
            v = values[i]
            x0 = left + j * bar
            out.append(f'<rect x="{x0:.1f}" y="{p.py(v):.1f}" width="{bar - 6:.1f}" '
                       f'height="{p.py(0) - p.py(v):.1f}" fill="{color}"/>')
            out.append(text(x0 + (bar - 6) / 2, p.py(v) - 5, fmt.format(v), 10))
        out.append(text(left + bar, p.y + p.h + 17, label, 12))
    return out


def chat_sweep():
    d = CHAT_SWEEP
    xs = d["offered"]
    body = [text(560, 24, "ABChat's benchmark: 1,000 clients, R lines/s each to everyone "
                 "(R M deliveries/s offered)", 15, weight="bold"),
            text(560, 42, "abchat (fibra) and tokio_abchat, same run, 2-core VM, 2026-12-01; "
                 "server on CPU 0, load generator on CPU 1", 11, color="#555")]
    xticks = [1, 10, 20, 30, 40]
    p = Panel(70, 80, 270, 240, (0, 42), (0, 42))
    body += p.frame("Deliveries/s", "offered (M/s)", "delivered (M/s)", xticks,
                    [0, 10, 20, 30, 40])
    body.append(line(p.px(0), p.py(0), p.px(42), p.py(42), "#999", 1, "4 3"))
    body += p.series(xs, d["tokio"]["delivered"], TOKIO, "6 3")
    body += p.series(xs, d["fibra"]["delivered"], FIBRA)
    q = Panel(440, 80, 270, 240, (0, 42), (5, 2000), log_y=True)
    body += q.frame("p99 delivery latency", "offered (M/s)", "p99 (ms, log scale)", xticks,
                    [5, 10, 20, 50, 100, 200, 500, 1000, 2000])
    body.append(line(q.x, q.py(100), q.x + q.w, q.py(100), "#888", 1, "2 3"))
    body.append(text(q.x + 4, q.py(100) - 5, "100 ms: no longer tracked", 10, anchor="start",
                     color="#666"))
    body += q.series(xs, d["tokio"]["p99_ms"], TOKIO, "6 3")
    body += q.series(xs, d["fibra"]["p99_ms"], FIBRA)
    r = Panel(810, 80, 270, 240, (0, 42), (0, 1.1))
    body += r.frame("Server CPU", "offered (M/s)", "cores", xticks, [0, 0.25, 0.5, 0.75, 1.0])
    body += r.series(xs, d["tokio"]["cpu"], TOKIO, "6 3")
    body += r.series(xs, d["fibra"]["cpu"], FIBRA)
    body += legend(80, 385, [("abchat (fibra)", FIBRA, None), ("tokio_abchat", TOKIO, "6 3"),
                             ("delivered = offered", "#999", "4 3")])
    body.append(text(300, 389, "Both deliver every line offered up to 40 M/s (their lines "
                     "coincide in the first chart).", 11, anchor="start", color="#555"))
    body.append(text(300, 407, "Past 40 M/s the one-core load generator falls behind: the "
                     "servers' own limit needs more cores.", 11, anchor="start", color="#555"))
    return svg(1120, 450, body)


def echo_cores():
    d = ECHO_CORES
    top = max(d["fibra"] + d["tokio"])
    scale = 250_000 if top <= 250_000 else top * 1.1
    body = [text(300, 24, "Echo on N cores: messages/s, 64 B, closed loop", 15, weight="bold"),
            text(300, 42, "echo --threads N and tokio_echo --threads N, same run, 2-core VM, "
                 "2026-12-01", 11, color="#555")]
    p = Panel(90, 70, 440, 260, (0, len(d["n"])), (0, scale))
    yticks = [0, 50_000, 100_000, 150_000, 200_000, 250_000]
    body += p.frame("", "N (server threads)", "messages/s", [], yticks,
                    lambda v: f"{v // 1000:,}k" if v else "0")
    labels = [f"N = {n}" + ("*" if n in d["starved"] else "") for n in d["n"]]
    body += pair_bars(p, labels, [(d["fibra"], FIBRA), (d["tokio"], TOKIO)], "{:,}")
    body += legend(100, 395, [("fibra echo", FIBRA, None), ("tokio_echo", TOKIO, None)])
    body.append(text(250, 392, "* starved: the load generator shared a CPU with the server", 11,
                     anchor="start", color="#555"))
    body.append(text(250, 410, "N = 4, 8: not measured (2N cores needed; scripts/scale.py)", 11,
                     anchor="start", color="#555"))
    return svg(600, 430, body)


def idle_memory():
    d = IDLE_MEMORY
    body = [text(300, 24, "Idle connections: server memory per connection", 15, weight="bold"),
            text(300, 42, "chatter, 19,000 silent connections at the prompt (scripts/idle.py), "
                 "2-core VM, 2026-12-05", 11, color="#555")]
    p = Panel(90, 70, 440, 260, (0, len(d["groups"])), (0, 12))
    body += p.frame("", "", "KiB of server RSS per connection", [], [0, 2, 4, 6, 8, 10, 12])
    body.append(line(p.x, p.py(d["goal"]), p.x + p.w, p.py(d["goal"]), "#888", 1, "2 3"))
    body.append(text(p.x + p.w - 4, p.py(d["goal"]) - 5, "issue 31's goal: 2 KiB", 10,
                     anchor="end", color="#666"))
    body += pair_bars(p, d["groups"], [(d["stackful"], FIBRA), (d["stackless"], STACKLESS)],
                      "{:.2f}")
    body += legend(100, 380, [("a tasklet stack each (--idle-members stackful)", FIBRA, None),
                              ("no stack while silent (stackless, the default)", STACKLESS,
                               None)])
    body.append(text(100, 420, "The kernel's share is ~3.7 KiB per socket end either way "
                     "(/proc/slabinfo).", 11, anchor="start", color="#555"))
    return svg(600, 440, body)


def echo_instructions():
    d = ECHO_INSTRUCTIONS
    bars = [(label, v, FIBRA) for label, v in zip(d["passes"], d["fibra"])]
    bars += [(label, v, STACKLESS) for label, v in d["stackless"]]
    n = len(bars)
    body = [text(400, 24, "Echo at one core: user-space instructions per message", 15,
                 weight="bold"),
            text(400, 42, "callgrind, 1,000 connections, 64 B, 2-core VM, 2026-12-05/06", 11,
                 color="#555")]
    p = Panel(90, 70, 470, 260, (0, n), (0, 2_500))
    body += p.frame("", "", "instructions per message", [],
                    [0, 500, 1_000, 1_500, 2_000, 2_500], lambda v: f"{v:,}")
    body.append(text(p.x + p.w / 2, p.y + p.h + 50, "fibra's echoes, issue 31's passes", 12))
    body.append(line(p.x, p.py(d["tokio"]), p.x + p.w, p.py(d["tokio"]), TOKIO, 2, "6 3"))
    body.append(text(p.x + p.w + 4, p.py(d["tokio"]) + 4, f"{d['tokio']:,}", 11,
                     anchor="start", color=TOKIO))
    bar = p.w / n
    for i, (label, v, color) in enumerate(bars):
        x0 = p.x + i * bar + bar * 0.2
        body.append(f'<rect x="{x0:.1f}" y="{p.py(v):.1f}" width="{bar * 0.6:.1f}" '
                    f'height="{p.py(0) - p.py(v):.1f}" fill="{color}"/>')
        body.append(text(x0 + bar * 0.3, p.py(v) - 5, f"{v:,}", 10))
        for k, word in enumerate(label.split(", ")):
            body.append(text(x0 + bar * 0.3, p.y + p.h + 15 + 13 * k, word, 10))
    # The proof's figure: CPU per message side by side with tokio_echo, each run a dot.
    q = Panel(640, 70, 130, 260, (0, 2), (0.9, 1.1))
    body += q.frame("", "", "msgs per CPU-s / tokio's", [], [0.9, 0.95, 1.0, 1.05, 1.1],
                    lambda v: f"{v:.2f}")
    body.append(line(q.x, q.py(1.0), q.x + q.w, q.py(1.0), TOKIO, 2, "6 3"))
    for i, (name, runs) in enumerate(ECHO_CORUN.items()):
        cx = q.x + (i + 0.5) * q.w / 2
        color = FIBRA if i == 0 else STACKLESS
        for r in runs:
            body.append(f'<circle cx="{cx:.1f}" cy="{q.py(r):.1f}" r="4" fill="{color}" '
                        f'fill-opacity="0.7"/>')
        for k, word in enumerate(name.split(" ")):
            body.append(text(cx, q.y + q.h + 15 + 13 * k, word, 10))
    body.append(text(q.x + q.w / 2, 62, "side by side, wall clock", 11, color="#555"))
    body += legend(100, 400, [("fibra echo", FIBRA, None), ("stackless echo", STACKLESS, None),
                              ("tokio_echo", TOKIO, "6 3")])
    body.append(text(330, 404, "The server's CPU is ~92% kernel (TCP), alike for both;",
                     11, anchor="start", color="#555"))
    body.append(text(330, 422, "side by side, fibra is level with tokio (0.985-1.004), not ahead.",
                     11, anchor="start", color="#555"))
    return svg(820, 450, body)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.path.join(ROOT, "docs"), help="where to write (docs/)")
    a = p.parse_args()
    for name, make in (("bench-chat-sweep.svg", chat_sweep), ("bench-echo-cores.svg", echo_cores),
                       ("bench-idle-memory.svg", idle_memory),
                       ("bench-echo-instructions.svg", echo_instructions)):
        path = os.path.join(a.out, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(make())
        print(path)


if __name__ == "__main__":
    main()
