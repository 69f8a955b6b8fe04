#!/usr/bin/env python3
"""Turn the results of scripts/bench_suite.py (its --out JSON, which holds every
`trama-bench --json` object of the run) into SVG plots for docs/PERFORMANCE.md.

    python3 scripts/plot.py target/bench_suite.json --out docs/img

Writes, each figure the median over the rounds, trama beside the references:
  bench_load_msgs.svg   load: msgs/s against clients
  bench_load_p99.svg    load: p99 latency against clients (log scale)
  bench_hold_rss.svg    hold: server RSS against idle connections
  bench_pingpong.svg    pingpong: p50 latency, same CPU and cross CPU (log scale)
  bench_bulk.svg        bulk: MB/s to echo servers and to sinks

The SVG is written by hand (no plotting library needed).
"""
import argparse
import json
import math
import os
import statistics
from xml.sax.saxutils import escape

COLORS = {"trama": "#d62728", "refsrv": "#1f77b4", "tokiosrv": "#2ca02c", "miosrv": "#9467bd"}
OTHER = ["#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f"]
W, H = 640, 400
LEFT, RIGHT, TOP, BOTTOM = 80, 130, 40, 60


def color(name, i):
    return COLORS.get(name, OTHER[i % len(OTHER)])


def nice_ticks(lo, hi, n=5):
    """About n round ticks covering [lo, hi] on a linear axis."""
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    t = start
    while t <= hi + step * 0.5:
        ticks.append(t)
        t += step
    return ticks


def log_ticks(lo, hi):
    """Powers of ten covering [lo, hi]."""
    a = math.floor(math.log10(max(lo, 1e-12)))
    b = math.ceil(math.log10(max(hi, 1e-12)))
    if a == b:
        b += 1
    return [10.0 ** k for k in range(a, b + 1)]


def label(v):
    if v >= 1e6 and v % 1e6 == 0:
        return f"{v / 1e6:g}M"
    if v >= 1e3 and v % 1e3 == 0:
        return f"{v / 1e3:g}k"
    return f"{v:g}"


class Axis:
    def __init__(self, lo, hi, log, a, b):
        self.log = log
        self.ticks = log_ticks(lo, hi) if log else nice_ticks(min(lo, 0), hi)
        self.lo, self.hi = self.ticks[0], self.ticks[-1]
        self.a, self.b = a, b  # pixel range

    def __call__(self, v):
        if self.log:
            f = (math.log10(v) - math.log10(self.lo)) / (math.log10(self.hi) - math.log10(self.lo))
        else:
            f = (v - self.lo) / (self.hi - self.lo)
        return self.a + f * (self.b - self.a)


def frame(title, xlabel, ylabel):
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="15">{escape(title)}</text>',
           f'<text x="{LEFT + (W - LEFT - RIGHT) / 2}" y="{H - 15}" text-anchor="middle">{escape(xlabel)}</text>',
           f'<text x="18" y="{TOP + (H - TOP - BOTTOM) / 2}" text-anchor="middle" '
           f'transform="rotate(-90 18 {TOP + (H - TOP - BOTTOM) / 2})">{escape(ylabel)}</text>']
    return out


def y_grid(out, y):
    for t in y.ticks:
        py = y(t)
        out.append(f'<line x1="{LEFT}" y1="{py:.1f}" x2="{W - RIGHT}" y2="{py:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{LEFT - 6}" y="{py + 4:.1f}" text-anchor="end">{label(t)}</text>')
    out.append(f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{H - BOTTOM}" stroke="black"/>')
    out.append(f'<line x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - RIGHT}" y2="{H - BOTTOM}" stroke="black"/>')


def legend(out, names):
    for i, name in enumerate(names):
        y = TOP + 10 + i * 20
        out.append(f'<rect x="{W - RIGHT + 15}" y="{y - 9}" width="12" height="12" fill="{color(name, i)}"/>')
        out.append(f'<text x="{W - RIGHT + 32}" y="{y + 1}">{escape(name)}</text>')


def line_chart(title, xlabel, ylabel, series, xlog=False, ylog=False):
    """series: {name: [(x, y), ...]}."""
    pts = [p for s in series.values() for p in s if p[1] is not None]
    if not pts:
        return None
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x = Axis(min(xs), max(xs), xlog, LEFT, W - RIGHT)
    y = Axis(min(ys) if ylog else 0, max(ys), ylog, H - BOTTOM, TOP)
    out = frame(title, xlabel, ylabel)
    y_grid(out, y)
    xt = sorted(set(xs)) if xlog else x.ticks
    for t in xt:
        px = x(t)
        out.append(f'<line x1="{px:.1f}" y1="{H - BOTTOM}" x2="{px:.1f}" y2="{H - BOTTOM + 5}" stroke="black"/>')
        out.append(f'<text x="{px:.1f}" y="{H - BOTTOM + 18}" text-anchor="middle">{label(t)}</text>')
    for i, (name, s) in enumerate(series.items()):
        s = sorted(p for p in s if p[1] is not None and (not ylog or p[1] > 0))
        if not s:
            continue
        c = color(name, i)
        path = " ".join(f"{'M' if j == 0 else 'L'}{x(px):.1f},{y(py):.1f}" for j, (px, py) in enumerate(s))
        out.append(f'<path d="{path}" fill="none" stroke="{c}" stroke-width="2"/>')
        for px, py in s:
            out.append(f'<circle cx="{x(px):.1f}" cy="{y(py):.1f}" r="3.5" fill="{c}">'
                       f'<title>{escape(name)}: {py:g} at {px:g}</title></circle>')
    legend(out, list(series))
    out.append("</svg>")
    return "\n".join(out)


def bar_chart(title, ylabel, groups, series, ylog=False):
    """groups: x categories; series: {name: {group: value}}."""
    vals = [v for s in series.values() for v in s.values() if v is not None and (not ylog or v > 0)]
    if not vals:
        return None
    y = Axis(min(vals) if ylog else 0, max(vals), ylog, H - BOTTOM, TOP)
    out = frame(title, "", ylabel)
    y_grid(out, y)
    gw = (W - LEFT - RIGHT) / len(groups)
    bw = gw * 0.8 / max(1, len(series))
    base = H - BOTTOM
    for gi, g in enumerate(groups):
        gx = LEFT + gi * gw + gw * 0.1
        out.append(f'<text x="{LEFT + gi * gw + gw / 2:.1f}" y="{H - BOTTOM + 18}" '
                   f'text-anchor="middle">{escape(g)}</text>')
        for si, (name, s) in enumerate(series.items()):
            v = s.get(g)
            if v is None or (ylog and v <= 0):
                continue
            top = y(v)
            bottom = base if not ylog else y(y.lo)
            out.append(f'<rect x="{gx + si * bw:.1f}" y="{top:.1f}" width="{bw * 0.92:.1f}" '
                       f'height="{max(0.5, bottom - top):.1f}" fill="{color(name, si)}">'
                       f'<title>{escape(name)} {escape(g)}: {v:g}</title></rect>')
    legend(out, list(series))
    out.append("</svg>")
    return "\n".join(out)


def medians(runs, test, key, by, tool="trama-bench", where=None):
    """{server: {by-value: median of result[key]}} over the rounds."""
    acc = {}
    for r in runs:
        if r["tool"] != tool or r["test"] != test or r["result"] is None:
            continue
        if where and not where(r):
            continue
        v = r["result"].get(key)
        if v is None:
            continue
        acc.setdefault(r["server"], {}).setdefault(by(r), []).append(float(v))
    return {s: {k: statistics.median(v) for k, v in d.items()} for s, d in acc.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", help="the --out file of scripts/bench_suite.py")
    ap.add_argument("--out", default="docs/img", help="directory for the SVG files")
    a = ap.parse_args()
    with open(a.results) as f:
        doc = json.load(f)
    runs = doc["runs"]
    order = doc.get("params", {}).get("servers") or sorted({r["server"] for r in runs})
    cores = doc.get("machine", {}).get("cores", "?")

    def ordered(d):
        return {s: d[s] for s in order if s in d}

    plots = {}
    msgs = ordered(medians(runs, "load", "msgs_per_s", lambda r: r["clients"]))
    plots["bench_load_msgs.svg"] = line_chart(
        f"load, 64 B requests: throughput ({cores} cores)", "concurrent clients (log scale)",
        "replies per second", {s: sorted(d.items()) for s, d in msgs.items()}, xlog=True)
    p99 = ordered(medians(runs, "load", "p99_us", lambda r: r["clients"]))
    plots["bench_load_p99.svg"] = line_chart(
        f"load, 64 B requests: p99 latency ({cores} cores)", "concurrent clients (log scale)",
        "p99 latency, µs (log scale)", {s: sorted(d.items()) for s, d in p99.items()},
        xlog=True, ylog=True)
    rss = ordered(medians(runs, "hold", "server_rss_held_kib", lambda r: r["clients"]))
    plots["bench_hold_rss.svg"] = line_chart(
        "hold: server memory with idle connections open", "idle connections",
        "server RSS, MiB", {s: sorted((k, v / 1024) for k, v in d.items()) for s, d in rss.items()})
    pp = ordered(medians(runs, "pingpong", "p50_us", lambda r: r["placement"]))
    plots["bench_pingpong.svg"] = bar_chart(
        "pingpong, 64 B: median round trip (pinned)", "p50 latency, µs (log scale)",
        ["same", "cross"], pp, ylog=True)
    bulk = ordered(medians(runs, "bulk", "mb_per_s", lambda r: r["target"]))
    plots["bench_bulk.svg"] = bar_chart(
        "bulk, 64 KiB frames: one-way throughput", "MB/s", ["echo", "sink"], bulk)
    # The fixed-rate tail: p99 against the offered rate, a chart per client count.
    placement = doc.get("params", {}).get("rate_placement", "free")
    suffix = "" if placement == "free" else f"_{placement}"
    rate_clients = sorted({r["clients"] for r in runs if r["test"] == "rate"})
    for c in rate_clients:
        p99 = ordered(medians(runs, "rate", "p99_us", lambda r: round(100 * r["fraction"]),
                              where=lambda r, c=c: r["clients"] == c))
        plots[f"bench_rate_p99_{c}{suffix}.svg"] = line_chart(
            f"fixed rate, {c} clients: p99 latency ({cores} cores, {placement})",
            "offered rate, % of refsrv's closed-loop capacity", "p99 latency, µs (log scale)",
            {s: sorted(d.items()) for s, d in p99.items()}, ylog=True)
    os.makedirs(a.out, exist_ok=True)
    for name, svg in plots.items():
        if svg is None:
            print(f"{name}: no data, not written")
            continue
        path = os.path.join(a.out, name)
        with open(path, "w") as f:
            f.write(svg + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
