#!/usr/bin/env python3
"""Benchmark trama-files against ../shared/bench's fileref, in the same run.

Each round, interleaved: fileref plain copy, fileref --verify, trama-files
--no-verify, trama-files (verified); a 2 GiB file from tmpfs to tmpfs over
loopback. Before every transfer a scratch file of 1.5 GiB is written and
deleted so every tool writes into equally warm memory (see
../shared/bench/README.md). Peak RSS of trama's sender and receiver comes from
/usr/bin/time-like accounting via os.wait4. Linux only.

Build first:
    cargo build --release -p trama-files
    CARGO_TARGET_DIR=target/refbench cargo build --release --manifest-path ../shared/bench/Cargo.toml

Then:
    python3 scripts/bench_files.py --rounds 5 --gib 2
"""
import argparse
import os
import re
import statistics
import subprocess
import time

from benchlib import ROOT, free_port
REF = os.path.join(ROOT, "target", "refbench", "release", "fileref")
TRAMA = os.path.join(ROOT, "target", "release", "trama-files")
SHM = "/dev/shm/trama-bench"


def warm():
    path = os.path.join(SHM, "warm")
    with open(path, "wb") as f:
        block = b"\0" * (1 << 20)
        for _ in range(1536):
            f.write(block)
    os.remove(path)


def clean_out():
    out = os.path.join(SHM, "out")
    for name in os.listdir(out):
        os.remove(os.path.join(out, name))
    return out


def run_ref(src, verify):
    out = clean_out()
    port = free_port()
    recv = subprocess.Popen([REF, "recv", "--addr", f"127.0.0.1:{port}", "--out",
                             os.path.join(out, "got.bin")], stdout=subprocess.PIPE, text=True)
    time.sleep(0.2)
    args = [REF, "send", "--addr", f"127.0.0.1:{port}", src] + (["--verify"] if verify else [])
    send = subprocess.run(args, capture_output=True, text=True, timeout=600)
    recv.communicate(timeout=60)
    m = re.search(r"mb_per_s=([\d.]+)", send.stdout)
    if not m or "ok=true" not in send.stdout:
        raise SystemExit(f"fileref failed: {send.stdout} {send.stderr}")
    return float(m.group(1)), None, None


def wait_rss(proc):
    """Wait for a child; return (exit status, peak RSS in KiB)."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss


def run_trama(src, verify):
    out = clean_out()
    recv = subprocess.Popen([TRAMA, "receive", "--addr", "127.0.0.1:0", "--dir", out, "--once", "--quiet"],
                            stderr=subprocess.PIPE, text=True)
    addr = None
    while addr is None:
        line = recv.stderr.readline()
        if not line:
            raise SystemExit("receiver did not start")
        if line.startswith("listening on "):
            addr = line.split()[-1]
    args = [TRAMA, "send", "--quiet", "--addr", addr, src] + ([] if verify else ["--no-verify"])
    t0 = time.time()
    send = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    code, send_rss = wait_rss(send)
    secs = time.time() - t0
    summary = send.stdout.read()
    rcode, recv_rss = wait_rss(recv)
    if code != 0 or rcode != 0:
        raise SystemExit(f"trama-files failed ({code}, {rcode}): {summary}")
    m = re.search(r"\(([\d.]+) MB/s\)", summary)
    rate = float(m.group(1)) if m else os.path.getsize(src) / 1e6 / secs
    return rate, send_rss, recv_rss


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--gib", type=float, default=2.0)
    a = ap.parse_args()
    os.makedirs(os.path.join(SHM, "out"), exist_ok=True)
    src = os.path.join(SHM, "src.bin")
    size = int(a.gib * (1 << 30))
    if not os.path.exists(src) or os.path.getsize(src) != size:
        with open(src, "wb") as f:
            chunk = os.urandom(1 << 20)
            for _ in range(size >> 20):
                f.write(chunk)
    cases = [("fileref plain", lambda: run_ref(src, False)),
             ("fileref --verify", lambda: run_ref(src, True)),
             ("trama-files --no-verify", lambda: run_trama(src, False)),
             ("trama-files", lambda: run_trama(src, True))]
    results = {name: [] for name, _ in cases}
    rss = {name: [] for name, _ in cases}
    for i in range(a.rounds):
        order = cases[i % len(cases):] + cases[:i % len(cases)]
        for name, fn in order:
            warm()
            rate, srss, rrss = fn()
            results[name].append(rate)
            if srss:
                rss[name].append((srss, rrss))
            print(f"round {i + 1} {name}: {rate:.0f} MB/s"
                  + (f", peak RSS sender {srss / 1024:.1f} MiB, receiver {rrss / 1024:.1f} MiB" if srss else ""),
                  flush=True)
    med = {k: statistics.median(v) for k, v in results.items()}
    print()
    print("| case | median MB/s | runs | peak RSS sender / receiver (MiB, max) |")
    print("|---|---|---|---|")
    for name, _ in cases:
        r = rss[name]
        mem = (f"{max(s for s, _ in r) / 1024:.1f} / {max(x for _, x in r) / 1024:.1f}" if r else "–")
        print(f"| {name} | {med[name]:.0f} | {', '.join(f'{x:.0f}' for x in results[name])} | {mem} |")
    print()
    print(f"trama-files / fileref --verify: {med['trama-files'] / med['fileref --verify']:.2f}x; "
          f"trama-files --no-verify / fileref plain: {med['trama-files --no-verify'] / med['fileref plain']:.2f}x")
    clean_out()


if __name__ == "__main__":
    main()
