#!/usr/bin/env python3
"""What a CPU ran just before each of a server's threads got it.

Reads `perf script` output of a `perf sched record` (from stdin, or runs
`perf script -i FILE`) and counts, for every switch to a thread whose name
starts with one of --server's prefixes, what the CPU ran before: nothing
(`idle`: the thread woke a sleeping CPU, on a VM the slow path), a client
thread (--client prefixes), another server thread, or something else.

    perf sched record -o sched.data -- sleep 1     # while the server is loaded
    python3 scripts/sched_after.py --server trama-io,trama-echo --client bench sched.data
    python3 scripts/sched_after.py --server refsrv --client bench sched.data

Prints one line: the switches counted and each kind's share.
"""

import argparse
import collections
import re
import subprocess
import sys

SWITCH = re.compile(r"sched_switch:.*prev_comm=(\S+) .*next_comm=(\S+)")


def tally(lines, servers, clients):
    counts = collections.Counter()
    for line in lines:
        m = SWITCH.search(line)
        if not m:
            continue
        prev, nxt = m.groups()
        if not nxt.startswith(servers):
            continue
        if prev.startswith("swapper"):
            kind = "idle"
        elif prev.startswith(servers):
            kind = "server"
        elif prev.startswith(clients):
            kind = "client"
        else:
            kind = "other"
        counts[kind] += 1
    return counts


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", required=True, help="comma-separated thread name prefixes")
    ap.add_argument("--client", default="bench", help="comma-separated thread name prefixes")
    ap.add_argument("data", nargs="?", help="a perf.data of `perf sched record` (default: stdin)")
    a = ap.parse_args()
    servers = tuple(p for p in a.server.split(",") if p)
    clients = tuple(p for p in a.client.split(",") if p)
    if a.data:
        out = subprocess.run(["perf", "script", "-i", a.data], capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"perf script -i {a.data} failed: {out.stderr.strip()}")
        lines = out.stdout.splitlines()
    else:
        lines = sys.stdin
    counts = tally(lines, servers, clients)
    total = sum(counts.values())
    if total == 0:
        sys.exit(f"no switch to a thread named {', '.join(servers)}*")
    shares = ", ".join(f"{k} {100 * counts[k] / total:.0f} %"
                       for k in ("idle", "client", "server", "other"))
    print(f"{total} switches to the server's threads; before them the CPU ran: {shares}")


if __name__ == "__main__":
    main()
