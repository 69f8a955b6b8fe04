#!/usr/bin/env python3
"""Benchmark `trama-echo serve --framed` against the reference servers.

Runs trama and the references of ../shared/bench in the same run, interleaved
round by round, and prints the median of each figure as a Markdown table (the
raw RESULT lines go to --raw). Linux only (taskset, /proc).

Build first:
    cargo build --release -p trama-echo
    CARGO_TARGET_DIR=target/refbench cargo build --release --manifest-path ../shared/bench/Cargo.toml

Then:
    python3 scripts/bench_echo.py --rounds 5
"""
import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time

from benchlib import ROOT, free_port
REF = os.path.join(ROOT, "target", "refbench", "release")
TRAMA = os.path.join(ROOT, "target", "release", "trama-echo")


def servers():
    """name -> (command builder taking an address, loadgen framing)."""
    return {
        "trama": (lambda a: [TRAMA, "serve", "--framed", "--addr", a], "be32"),
        "refsrv": (lambda a: [os.path.join(REF, "refsrv"), "echo", "--addr", a], "be32"),
        "tokiosrv": (lambda a: [os.path.join(REF, "tokiosrv"), "echo", "--addr", a], "be32"),
        "miosrv": (lambda a: [os.path.join(REF, "miosrv"), "--addr", a], "varint"),
    }


def start(name, cpus=None):
    build, framing = servers()[name]
    addr = f"127.0.0.1:{free_port()}"
    cmd = build(addr)
    if cpus is not None:
        cmd = ["taskset", "-c", cpus] + cmd
    env = dict(os.environ, RUST_LOG="warn")
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", int(addr.rsplit(":", 1)[1])), timeout=1).close()
            return p, addr, framing
        except OSError:
            time.sleep(0.05)
    p.kill()
    raise SystemExit(f"{name} did not start on {addr}")


def loadgen(args, cpus=None, timeout=120):
    cmd = [os.path.join(REF, "loadgen")] + args
    if cpus is not None:
        cmd = ["taskset", "-c", cpus] + cmd
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout).stdout
    line = next((l for l in out.splitlines() if l.startswith("RESULT")), None)
    if line is None:
        raise SystemExit(f"loadgen gave no RESULT: {cmd}\n{out}")
    return line, dict(kv.split("=", 1) for kv in line.split()[1:])


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        m = re.search(r"VmRSS:\s+(\d+)", f.read())
    return int(m.group(1)) if m else 0


def threads(pid):
    return len(os.listdir(f"/proc/{pid}/task"))


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def stop(p):
    p.terminate()
    try:
        p.wait(5)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def run_round(names, tests, raw, results):
    for name in names:
        if "pingpong" in tests:
            for placement, (scpu, ccpu) in {"same": ("0", "0"), "cross": ("1", "0")}.items():
                p, addr, framing = start(name, scpu)
                # miosrv waits a delayed ACK (~44 ms) per reply: fewer round trips.
                count = "200" if name == "miosrv" else "20000"
                line, r = loadgen(["pingpong", "--addr", addr, "--size", "64", "--count", count,
                                   "--framing", framing], ccpu)
                stop(p)
                raw.write(f"{name} pingpong-{placement} {line}\n")
                results.setdefault((name, f"pingpong {placement} p50_us"), []).append(float(r["p50_us"]))
                results.setdefault((name, f"pingpong {placement} p99_us"), []).append(float(r["p99_us"]))
        for c in [c for c in (1, 16, 256, 1000) if f"load{c}" in tests]:
            p, addr, framing = start(name)
            line, r = loadgen(["load", "--addr", addr, "--clients", str(c), "--size", "64",
                               "--secs", "3", "--framing", framing])
            stop(p)
            raw.write(f"{name} load-{c} {line}\n")
            results.setdefault((name, f"load {c} msgs_per_s"), []).append(float(r["msgs_per_s"]))
            results.setdefault((name, f"load {c} p99_us"), []).append(float(r["p99_us"]))
        if "hold" in tests and name != "refsrv":  # refsrv dups each socket: 20k fds
            p, addr, framing = start(name)
            time.sleep(0.3)
            base = rss_kib(p.pid)
            base_fds = fds(p.pid)
            n = 10000
            lg = subprocess.Popen([os.path.join(REF, "loadgen"), "hold", "--addr", addr,
                                   "--clients", str(n), "--secs", "4", "--framing", framing],
                                  stdout=subprocess.PIPE, text=True)
            deadline = time.time() + 60
            while fds(p.pid) < base_fds + n and time.time() < deadline:
                time.sleep(0.1)
            time.sleep(0.5)
            held = rss_kib(p.pid)
            nthreads = threads(p.pid)
            out, _ = lg.communicate(timeout=120)
            stop(p)
            line = next(l for l in out.splitlines() if l.startswith("RESULT"))
            r = dict(kv.split("=", 1) for kv in line.split()[1:])
            raw.write(f"{name} hold {line} base_rss_kib={base} held_rss_kib={held} threads={nthreads}\n")
            results.setdefault((name, "hold bytes_per_conn"), []).append((held - base) * 1024 / n)
            results.setdefault((name, "hold answered"), []).append(float(r["answered"]))
            results.setdefault((name, "hold threads"), []).append(float(nthreads))
        raw.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--servers", default="trama,refsrv,tokiosrv,miosrv")
    ap.add_argument("--tests", default="pingpong,load16,load256,hold")
    ap.add_argument("--raw", default="target/bench_echo_raw.txt")
    ap.add_argument("--json", default="target/bench_echo.json")
    a = ap.parse_args()
    for exe in [TRAMA, os.path.join(REF, "loadgen")]:
        if not os.path.exists(exe):
            raise SystemExit(f"missing {exe}: build first (see --help)")
    names = a.servers.split(",")
    tests = a.tests.split(",")
    results = {}
    os.makedirs(os.path.dirname(os.path.join(ROOT, a.raw)), exist_ok=True)
    with open(os.path.join(ROOT, a.raw), "w") as raw:
        for i in range(a.rounds):
            print(f"round {i + 1}/{a.rounds}", file=sys.stderr)
            # Interleave: rotate the order each round.
            order = names[i % len(names):] + names[:i % len(names)]
            run_round(order, tests, raw, results)
    medians = {f"{k[0]} {k[1]}": statistics.median(v) for k, v in results.items()}
    with open(os.path.join(ROOT, a.json), "w") as f:
        json.dump({"medians": medians, "samples": {f"{k[0]} {k[1]}": v for k, v in results.items()}}, f, indent=1)
    metrics = sorted({k[1] for k in results}, key=lambda m: list(dict.fromkeys(k[1] for k in results)).index(m))
    print("| figure | " + " | ".join(names) + " | trama / refsrv | trama / tokiosrv |")
    print("|---" * (len(names) + 3) + "|")
    for m in metrics:
        row = [results.get((n, m)) for n in names]
        cells = [f"{statistics.median(v):.1f}" if v else "–" for v in row]
        def ratio(other):
            t, o = results.get(("trama", m)), results.get((other, m))
            return f"{statistics.median(t) / statistics.median(o):.2f}x" if t and o and statistics.median(o) else "–"
        print(f"| {m} | " + " | ".join(cells) + f" | {ratio('refsrv')} | {ratio('tokiosrv')} |")


if __name__ == "__main__":
    main()
