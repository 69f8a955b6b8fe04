#!/usr/bin/env python3
"""The benchmark suite of docs/PERFORMANCE.md: trama-bench against trama and the
reference servers of ../shared/bench, interleaved round by round, medians of
the rounds, and the check that trama-bench agrees with the references'
`loadgen` on the same server with the same parameters.

Each round runs each test on every server in turn, in an order rotated from
round to round; each measurement gets a freshly started server. What is measured:

  pingpong  trama-bench pingpong --size 64, server pinned with taskset to CPU 0,
            the client to CPU 0 ("same") and to CPU 1 ("cross").
  load      trama-bench load --size 64 at each --clients value (unpinned).
  bulk      trama-bench bulk --frame 64KiB to each echo server (replies read
            back and counted) and to the references' sinks.
  hold      trama-bench hold at each --hold-clients value with --server-pid: the
            server's RSS per idle connection and its threads, from /proc.
  rate      the tail at a fixed offered rate (open loop: latency from when each
            request was due): at each --rate-clients value, refsrv's closed-loop
            capacity is measured first in that round, then every server gets
            trama-bench load --rate at each --rate-fractions of it (--pipeline 4,
            so a late reply does not hold the next request back). p50, p99 and
            p99.9; the table gives each median with the spread of the rounds.
            --rate-placement pins servers and trama-bench for this test (and
            its capacity): `free` (default, unpinned), `shared` (both on CPU 0)
            or `split` (server on CPU 0, trama-bench on CPU 1).

With loadgen on the servers in --agree-servers: pingpong (both placements),
bulk to the sink, hold (answered only), and the agree test:

  agree     server pinned to CPU 0; at each --agree-clients value, loadgen load,
            trama-bench load --blocking (loadgen's shape) and trama-bench load,
            one after the other on that server, the client on CPU 0 for one
            connection and on CPU 1 for more. Each run's CPU time, the tool's
            (from the kernel's accounting of the finished child) and the
            server's (/proc/PID/stat), says which of the two was the limit.
            "python" (tests/python/notes_chat_server.py, a thread per client)
            is a server slow enough to be the limit for every tool.

Builds nothing. Build first (release):
    cargo build --release -p trama-bench -p trama-echo
    CARGO_TARGET_DIR=target/refbench cargo build --release --manifest-path ../shared/bench/Cargo.toml

Then, on a quiet machine:
    python3 scripts/bench_suite.py --rounds 5 --out target/bench_suite.json
    python3 scripts/plot.py target/bench_suite.json --out docs/img

Every raw result (each tool's own JSON or RESULT line, with the command) goes
to --out; the Markdown tables go to stdout; progress goes to stderr.
Linux only (taskset, /proc). `--quick` runs tiny parameters to check that
everything starts (its figures mean nothing).
"""
import argparse
import datetime
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import time

from benchlib import ROOT, free_port


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Paths:
    def __init__(self, trama_dir, ref_dir, baseline=None):
        self.bench = os.path.join(trama_dir, "trama-bench")
        self.echo = os.path.join(trama_dir, "trama-echo")
        # Another build of trama-echo (--baseline-echo): server `trama-base`.
        self.baseline = baseline
        self.loadgen = os.path.join(ref_dir, "loadgen")
        self.refsrv = os.path.join(ref_dir, "refsrv")
        self.tokiosrv = os.path.join(ref_dir, "tokiosrv")
        self.miosrv = os.path.join(ref_dir, "miosrv")


def reference_server(binary, hold):
    """A reference server: its `echo` serves echo and bulk, `sink` sinks; be32."""
    return {
        "echo": lambda a: [binary, "echo", "--addr", a],
        "bulk": lambda a: [binary, "echo", "--addr", a],
        "sink": lambda a: [binary, "sink", "--addr", a],
        "framing": "be32",
        "hold": hold,
    }


def trama_server(binary, bulk_args):
    """trama-echo serve --framed, from `binary`."""
    serve = lambda a: [binary, "serve", "--framed", "--addr", a]
    return {
        "echo": serve,
        # As shipped: a bulk echo client that lags its replies is slowed
        # by backpressure, not dropped (--trama-bulk-args adds flags).
        "bulk": lambda a: serve(a) + bulk_args,
        "sink": None,
        "framing": "be32",
        "hold": True,
    }


def server_table(p, trama_bulk_args):
    """name -> how to start it (echo, sink), its framing, and what it can do."""
    return {
        "trama": trama_server(p.echo, trama_bulk_args),
        # A reader and a writer handle per socket: 10,000 connections
        # need 20,000 descriptors, the whole limit.
        "refsrv": reference_server(p.refsrv, hold=False),
        # The same server from another build (a commit before a change), in
        # the same run: a before/after that shares the run's conditions.
        "trama-base": trama_server(p.baseline, trama_bulk_args),
        "tokiosrv": reference_server(p.tokiosrv, hold=True),
        "python": {
            # A student's server: the notes' thread per client, be32 frames,
            # a reply per message. Slower than any tool, so the one check
            # where both load generators must measure the server.
            "echo": lambda a: [sys.executable, os.path.join(ROOT, "tests", "python",
                                                            "notes_chat_server.py"),
                               a.rsplit(":", 1)[1]],
            "bulk": None,
            "sink": None,
            "framing": "be32",
            "hold": False,
        },
        "miosrv": {
            "echo": lambda a: [p.miosrv, "--addr", a],
            # Nagle and a delayed ACK per reply: bulk echo is not its use.
            "bulk": None,
            "sink": None,
            "framing": "varint",
            "hold": True,
        },
    }


class Server:
    """A server process on a free port, stopped by its own pid."""

    def __init__(self, cmd, cpus=None):
        self.addr = f"127.0.0.1:{free_port()}"
        full = cmd(self.addr)
        if cpus is not None:
            full = ["taskset", "-c", cpus] + full
        env = dict(os.environ, RUST_LOG="warn")
        self.proc = subprocess.Popen(full, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, env=env)
        port = int(self.addr.rsplit(":", 1)[1])
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{full} exited with {self.proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                time.sleep(0.1)  # let it settle after our probe
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{full} did not start on {self.addr}")

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def cpu_seconds(pid):
    """User + system CPU time of a live process, from /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def with_cpu(run, server_pid):
    """Run `run()` (a tool as a child process); its result and command, and
    the CPU each of the tool and the server used meanwhile, in percent of
    one CPU over the tool's wall time."""
    tool0, srv0, t0 = children_cpu(), cpu_seconds(server_pid), time.monotonic()
    res, cmd = run()
    wall = max(time.monotonic() - t0, 1e-9)
    tool, srv = children_cpu() - tool0, cpu_seconds(server_pid)
    cpu = {"tool_cpu_pct": round(100 * tool / wall, 1)}
    if srv0 is not None and srv is not None:
        cpu["server_cpu_pct"] = round(100 * (srv - srv0) / wall, 1)
    return res, cmd, cpu


def pinned(cmd, cpus):
    return (["taskset", "-c", cpus] if cpus is not None else []) + cmd


def run_bench(paths, args, cpus=None, timeout=600):
    """trama-bench --json ARGS: (its JSON object or None, the command)."""
    cmd = pinned([paths.bench, "--json", "--quiet"] + args, cpus)
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        log(f"  timed out: {' '.join(cmd)}")
        return None, cmd
    if out.returncode != 0:
        log(f"  failed ({out.returncode}): {' '.join(cmd)}\n  {out.stderr.strip()[-500:]}")
        return None, cmd
    return json.loads(out.stdout), cmd


def run_loadgen(paths, args, cpus=None, timeout=600):
    """loadgen ARGS: (its RESULT line as a dict of numbers, the command)."""
    cmd = pinned([paths.loadgen] + args, cpus)
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        log(f"  timed out: {' '.join(cmd)}")
        return None, cmd
    line = next((l for l in out.stdout.splitlines() if l.startswith("RESULT")), None)
    if line is None:
        log(f"  no RESULT: {' '.join(cmd)}\n  {out.stderr.strip()[-500:]}")
        return None, cmd
    r = {}
    for kv in line.split()[1:]:
        k, v = kv.split("=", 1)
        try:
            r[k] = float(v)
        except ValueError:
            r[k] = v
    return r, cmd


class Suite:
    def __init__(self, a, paths):
        self.a = a
        self.p = paths
        self.servers = server_table(paths, a.trama_bulk_args.split())
        self.runs = []
        self.capacities = {}

    def record(self, rnd, server, test, tool, result, cmd, **extra):
        self.runs.append(dict(round=rnd, server=server, test=test, tool=tool,
                              result=result, command=cmd, **extra))
        self.flush()

    def flush(self):
        with open(self.a.out_path, "w") as f:
            json.dump(self.document(), f, indent=1)

    def document(self):
        return {
            "machine": machine(),
            "started": self.started,
            "params": vars(self.a),
            "runs": self.runs,
        }

    def threads(self, clients):
        """trama-bench --threads for `clients` connections, if --bench-threads says."""
        t = self.a.bench_threads
        if t is None:
            return []
        return ["--threads", str(clients if t == "clients" else int(t))]

    def both(self, rnd, bench, loadgen):
        """Run trama-bench and loadgen in alternating order by round."""
        if rnd % 2:
            return bench(), loadgen()
        lg = loadgen()
        return bench(), lg

    # --- the tests -------------------------------------------------------

    def pingpong(self, rnd, name, agree):
        s = self.servers[name]
        slow = name == "miosrv"  # a delayed ACK (~44 ms) per reply
        count = self.a.pingpong_count if not slow else max(50, self.a.pingpong_count // 500)
        for placement, client_cpu in (("same", "0"), ("cross", "1")):
            if placement == "cross" and os.cpu_count() < 2:
                continue
            srv = Server(s["echo"], "0")
            try:
                args = ["pingpong", "--addr", srv.addr, "--framing", s["framing"],
                        "--size", "64", "--count", str(count)]
                lg_args = ["pingpong", "--addr", srv.addr, "--framing", s["framing"],
                           "--size", "64", "--count", str(count)]
                bench = lambda: run_bench(self.p, args, client_cpu)
                if agree:
                    (b, bc), (l, lc) = self.both(rnd, bench, lambda: run_loadgen(self.p, lg_args, client_cpu))
                    self.record(rnd, name, "pingpong", "loadgen", l, lc, placement=placement)
                else:
                    b, bc = bench()
                self.record(rnd, name, "pingpong", "trama-bench", b, bc, placement=placement)
            finally:
                srv.stop()

    def load(self, rnd, name, agree):
        s = self.servers[name]
        secs = self.a.duration
        for c in self.a.clients:
            srv = Server(s["echo"])
            try:
                args = ["load", "--addr", srv.addr, "--framing", s["framing"], "--size", "64",
                        "--clients", str(c), "--duration", f"{secs}s",
                        "--warmup", f"{self.a.warmup}s", "--pipeline", "1"] + self.threads(c)
                b, bc = run_bench(self.p, args)
                self.record(rnd, name, "load", "trama-bench", b, bc, clients=c)
            finally:
                srv.stop()

    def placement(self):
        """(server CPUs, trama-bench CPUs) of the rate test, None = unpinned."""
        return {"free": (None, None), "shared": ("0", "0"),
                "split": ("0", "1")}[self.a.rate_placement]

    def capacity(self, rnd, clients):
        """refsrv's closed-loop msgs/s with `clients` connections, once a round."""
        key = (rnd, clients)
        if key not in self.capacities:
            s = self.servers["refsrv"]
            srv_cpus, bench_cpus = self.placement()
            srv = Server(s["echo"], srv_cpus)
            try:
                args = ["load", "--addr", srv.addr, "--framing", s["framing"], "--size", "64",
                        "--clients", str(clients), "--duration", f"{self.a.duration}s",
                        "--warmup", f"{self.a.warmup}s", "--pipeline", "1"]
                b, bc = run_bench(self.p, args, bench_cpus)
                self.record(rnd, "refsrv", "capacity", "trama-bench", b, bc, clients=clients)
            finally:
                srv.stop()
            if not b or not b.get("msgs_per_s"):
                raise RuntimeError(f"no capacity measured for {clients} clients")
            self.capacities[key] = float(b["msgs_per_s"])
        return self.capacities[key]

    def rate(self, rnd, name, agree):
        s = self.servers[name]
        for c in self.a.rate_clients:
            cap = self.capacity(rnd, c)
            for frac in self.a.rate_fractions:
                offered = max(1.0, cap * frac)
                srv_cpus, bench_cpus = self.placement()
                srv = Server(s["echo"], srv_cpus)
                try:
                    args = ["load", "--addr", srv.addr, "--framing", s["framing"], "--size", "64",
                            "--clients", str(c), "--duration", f"{self.a.duration}s",
                            "--warmup", f"{self.a.warmup}s", "--pipeline", "4",
                            "--rate", f"{offered:.0f}"] + self.threads(c)
                    b, bc = run_bench(self.p, args, bench_cpus)
                    self.record(rnd, name, "rate", "trama-bench", b, bc, clients=c,
                                fraction=frac, offered=offered)
                finally:
                    srv.stop()

    def agree(self, rnd, name, agree):
        """loadgen and both shapes of trama-bench on one pinned server."""
        if not agree:
            return
        s = self.servers[name]
        secs = self.a.duration
        for c in self.a.agree_clients:
            client_cpu = "0" if c == 1 or len(os.sched_getaffinity(0)) < 2 else "1"
            srv = Server(s["echo"], "0")
            try:
                args = ["load", "--addr", srv.addr, "--framing", s["framing"], "--size", "64",
                        "--clients", str(c), "--duration", f"{secs}s",
                        "--warmup", f"{self.a.warmup}s", "--pipeline", "1"]
                lg_args = ["load", "--addr", srv.addr, "--framing", s["framing"], "--size", "64",
                           "--clients", str(c), "--secs", str(secs)]
                tools = [
                    ("loadgen", lambda: run_loadgen(self.p, lg_args, client_cpu)),
                    ("trama-bench-blocking",
                     lambda: run_bench(self.p, args + ["--blocking"], client_cpu)),
                    ("trama-bench", lambda: run_bench(self.p, args, client_cpu)),
                ]
                k = rnd % len(tools)
                for tool, run in tools[k:] + tools[:k]:
                    res, cmd, cpu = with_cpu(run, srv.pid)
                    self.record(rnd, name, "agree", tool, res, cmd, clients=c,
                                client_cpu=client_cpu, **cpu)
            finally:
                srv.stop()

    def bulk(self, rnd, name, agree):
        s = self.servers[name]
        mib = self.a.bulk_mib
        args = lambda addr: ["bulk", "--addr", addr, "--bytes", f"{mib}MiB", "--frame", "64KiB",
                             "--timeout", "30s"]
        if s["bulk"]:
            srv = Server(s["bulk"])
            try:
                b, bc = run_bench(self.p, args(srv.addr))
                self.record(rnd, name, "bulk", "trama-bench", b, bc, target="echo")
            finally:
                srv.stop()
        if s["sink"]:
            srv = Server(s["sink"])
            try:
                bench = lambda: run_bench(self.p, args(srv.addr))
                if agree:
                    lg = lambda: run_loadgen(self.p, ["bulk", "--addr", srv.addr, "--mib", str(mib),
                                                      "--frame", "65536"])
                    (b, bc), (l, lc) = self.both(rnd, bench, lg)
                    self.record(rnd, name, "bulk", "loadgen", l, lc, target="sink")
                else:
                    b, bc = bench()
                self.record(rnd, name, "bulk", "trama-bench", b, bc, target="sink")
            finally:
                srv.stop()

    def hold(self, rnd, name, agree):
        s = self.servers[name]
        if not s["hold"]:
            return
        for n in self.a.hold_clients:
            srv = Server(s["echo"])
            try:
                time.sleep(0.3)
                b, bc = run_bench(self.p, ["hold", "--addr", srv.addr, "--framing", s["framing"],
                                           "--clients", str(n), "--duration", f"{self.a.hold_secs}s",
                                           "--server-pid", str(srv.pid)] + self.threads(n))
                self.record(rnd, name, "hold", "trama-bench", b, bc, clients=n)
            finally:
                srv.stop()
            if agree and n == max(self.a.hold_clients):
                srv = Server(s["echo"])
                try:
                    l, lc = run_loadgen(self.p, ["hold", "--addr", srv.addr, "--framing", s["framing"],
                                                 "--clients", str(n), "--secs", str(self.a.hold_secs)])
                    self.record(rnd, name, "hold", "loadgen", l, lc, clients=n)
                finally:
                    srv.stop()

    def run(self):
        self.started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        names = self.a.servers + [n for n in self.a.agree_servers if n not in self.a.servers]
        for rnd in range(1, self.a.rounds + 1):
            k = (rnd - 1) % len(names)
            order = names[k:] + names[:k]
            # Test by test, every server in turn: the runs a ratio compares
            # are minutes apart at most, not a whole round (this machine's
            # speed drifts over a run of the suite).
            for test in self.a.tests:
                for name in order:
                    agree = name in self.a.agree_servers
                    if name not in self.a.servers and test != "agree":
                        continue  # measured for the agreement only
                    log(f"round {rnd}/{self.a.rounds}: {name} {test}")
                    try:
                        getattr(self, test)(rnd, name, agree)
                    except RuntimeError as e:
                        log(f"  skipped: {e}")
        self.flush()


def machine():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "python": platform.python_version()}


# --- summary ------------------------------------------------------------

def figures(runs):
    """(server, figure, tool) -> list of values over the rounds."""
    out = {}

    def add(server, fig, tool, v):
        if v is not None:
            out.setdefault((server, fig, tool), []).append(float(v))

    for r in runs:
        res, tool, srv, test = r["result"], r["tool"], r["server"], r["test"]
        if res is None:
            continue
        if test == "pingpong":
            for k in ("p50_us", "p99_us"):
                add(srv, f"pingpong {r['placement']} CPU, {k}", tool, res.get(k))
        elif test == "load":
            c = r["clients"]
            add(srv, f"load {c} clients, msgs_per_s", tool, res.get("msgs_per_s"))
            add(srv, f"load {c} clients, p99_us", tool, res.get("p99_us"))
        elif test == "agree":
            c = r["clients"]
            fig = f"pinned load {c} clients, msgs_per_s"
            add(srv, fig, tool, res.get("msgs_per_s"))
            add(srv, fig + " / tool_cpu_pct", tool, r.get("tool_cpu_pct"))
            add(srv, fig + " / server_cpu_pct", tool, r.get("server_cpu_pct"))
        elif test == "bulk":
            add(srv, f"bulk to {r['target']}, mb_per_s", tool, res.get("mb_per_s"))
        elif test == "rate":
            c, pct = r["clients"], round(r["fraction"] * 100)
            for k in ("p50_us", "p99_us", "p999_us"):
                add(srv, f"rate {pct}% x {c} clients, {k}", tool, res.get(k))
            add(srv, f"rate {pct}% x {c} clients, behind", tool, res.get("behind"))
        elif test == "hold":
            n = r["clients"]
            add(srv, f"hold {n}, answered", tool, res.get("answered"))
            add(srv, f"hold {n}, server_bytes_per_conn", tool, res.get("server_bytes_per_conn"))
            add(srv, f"hold {n}, server_threads", tool, res.get("server_threads"))
            add(srv, f"hold {n}, answer_all_ms", tool, res.get("answer_all_ms"))
    return out


def med(v):
    return statistics.median(v) if v else None


def fmt(v):
    if v is None:
        return "–"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.1f}"


def target(fig, t, ref, tok, hold_n):
    """The issue's target for a figure, and whether the medians meet it."""
    def verdict(ok):
        return "met" if ok else "**not met**"
    if t is None:
        return ""
    if fig.startswith("pingpong") and fig.endswith("p50_us") and ref:
        return f"≤ 1.10x refsrv: {verdict(t <= 1.10 * ref)}"
    if fig.startswith("load") and fig.endswith("msgs_per_s"):
        parts = []
        if tok:
            parts.append(f"≥ tokiosrv: {verdict(t >= tok)}")
        if ref:
            parts.append(f"≥ 0.85x refsrv: {verdict(t >= 0.85 * ref)}")
        return "; ".join(parts)
    if fig == "load 1000 clients, p99_us":
        return f"< 20 ms: {verdict(t < 20000)}"
    if fig == "bulk to echo, mb_per_s" and ref:
        return f"≥ 0.9x refsrv: {verdict(t >= 0.9 * ref)}"
    if fig.startswith("rate") and fig.endswith(("p99_us", "p999_us")):
        pct = int(fig.split()[1].rstrip("%"))
        if pct <= 75 and ref and tok:
            return f"≤ refsrv and tokiosrv: {verdict(t <= ref and t <= tok)}"
        return ""
    if fig.startswith("hold") and fig.endswith("answered"):
        return f"all: {verdict(t >= hold_n(fig))}"
    if fig.startswith("hold") and fig.endswith("bytes_per_conn"):
        return f"≤ 1 KiB: {verdict(t <= 1024)}"
    return ""


def markdown(doc):
    runs = doc["runs"]
    f = figures(runs)
    servers = doc["params"]["servers"]
    m = doc["machine"]
    lines = [f"Machine: {m['cores']} cores, {m['cpu']}, Linux {m['kernel']}; "
             f"{doc['params']['rounds']} rounds, medians.", ""]
    figs = list(dict.fromkeys(k[1] for k in f if k[2] == "trama-bench"
                              and not k[1].startswith("pinned")))
    lines.append("| figure | " + " | ".join(servers) + " | trama / refsrv | trama / tokiosrv | target |")
    lines.append("|---" * (len(servers) + 4) + "|")
    for fig in figs:
        vals = {s: med(f.get((s, fig, "trama-bench"), [])) for s in servers}
        t, ref, tok = vals.get("trama"), vals.get("refsrv"), vals.get("tokiosrv")
        ratio = lambda o: f"{t / o:.2f}x" if t is not None and o else "–"
        hold_n = lambda fig: float(fig.split()[1].rstrip(","))
        lines.append(f"| {fig} | " + " | ".join(fmt(vals[s]) for s in servers)
                     + f" | {ratio(ref)} | {ratio(tok)} | {target(fig, t, ref, tok, hold_n)} |")
    # The fixed-rate tail: every round's value, so the spread shows.
    rate_figs = [fig for fig in figs if fig.startswith("rate") and not fig.endswith("behind")]
    if rate_figs:
        caps = [r["result"]["msgs_per_s"] for r in runs
                if r["test"] == "capacity" and r["result"] and r["result"].get("msgs_per_s")]
        lines += ["", "Fixed rate: each server's median, then its lowest and highest round; "
                  f"refsrv's closed-loop capacity per round: {', '.join(fmt(c) for c in caps)} msgs/s.",
                  "", "| figure | " + " | ".join(f"{s} (min–max)" for s in servers) + " |",
                  "|---" * (len(servers) + 1) + "|"]
        for fig in rate_figs:
            cells = []
            for srv in servers:
                v = f.get((srv, fig, "trama-bench"), [])
                cells.append("–" if not v else f"{fmt(med(v))} ({fmt(min(v))}–{fmt(max(v))})")
            lines.append(f"| {fig} | " + " | ".join(cells) + " |")
    # Agreement with loadgen: same server, same parameters, same rounds.
    shapes = {"trama-bench": "trama-bench",
              "trama-bench-blocking": "trama-bench --blocking (a thread per connection)"}
    pairs = [(k[0], k[1], tool) for k in f if k[2] == "loadgen"
             for tool in shapes if (k[0], k[1], tool) in f]
    pairs = [p for p in dict.fromkeys(pairs)
             if p[1].endswith(("msgs_per_s", "p50_us", "mb_per_s", "answered"))]
    if pairs:
        # CPU columns: each tool's own CPU (percent of one CPU) and the
        # server's meanwhile, tool's run / loadgen's run (pinned load only).
        cpu = lambda srv, fig, tool, what: med(f.get((srv, f"{fig} / {what}", tool), []))
        pct = lambda v: "–" if v is None else f"{v:.0f}"
        # Each tool's own spread over the rounds (largest / smallest run):
        # where loadgen's exceeds 1.10, it does not agree with itself.
        spread = lambda v: f"{max(v) / min(v):.2f}" if v and min(v) > 0 else "–"
        lines += ["", "| server | figure | tool | its median | loadgen | ratio to loadgen | within 10 % "
                  "| spread of the runs (it / loadgen) "
                  "| tool CPU % (it / loadgen) | server CPU % (it / loadgen) |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for srv, fig, tool in pairs:
            b, l = med(f[(srv, fig, tool)]), med(f[(srv, fig, "loadgen")])
            r = b / l if l else None
            ok = "yes" if r is not None and abs(r - 1) <= 0.10 else "**no**"
            tc = f"{pct(cpu(srv, fig, tool, 'tool_cpu_pct'))} / {pct(cpu(srv, fig, 'loadgen', 'tool_cpu_pct'))}"
            sc = f"{pct(cpu(srv, fig, tool, 'server_cpu_pct'))} / {pct(cpu(srv, fig, 'loadgen', 'server_cpu_pct'))}"
            if not fig.startswith("pinned"):
                tc = sc = "–"
            sp = f"{spread(f[(srv, fig, tool)])} / {spread(f[(srv, fig, 'loadgen')])}"
            lines.append(f"| {srv} | {fig} | {shapes[tool]} | {fmt(b)} | {fmt(l)} | "
                         f"{f'{r:.2f}' if r is not None else '–'} | {ok} | {sp} | {tc} | {sc} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--servers", default="trama,refsrv,tokiosrv,miosrv")
    ap.add_argument("--tests", default="pingpong,load,bulk,hold,agree")
    ap.add_argument("--clients", default="1,16,256,1000", help="load: connection counts")
    ap.add_argument("--duration", type=float, default=5.0, help="load: measured seconds")
    ap.add_argument("--warmup", type=float, default=1.0, help="load: unmeasured seconds first")
    ap.add_argument("--rate-clients", default="16,256", help="rate: connection counts")
    ap.add_argument("--rate-fractions", default="0.25,0.5,0.75,0.9",
                    help="rate: offered rates, as fractions of refsrv's closed-loop capacity")
    ap.add_argument("--rate-placement", choices=("free", "shared", "split"), default="free",
                    help="rate: unpinned, server and client on CPU 0, or on CPUs 0 and 1")
    ap.add_argument("--pingpong-count", type=int, default=100000)
    ap.add_argument("--bulk-mib", type=int, default=4096)
    ap.add_argument("--hold-clients", default="1000,5000,10000")
    ap.add_argument("--hold-secs", type=float, default=5.0)
    ap.add_argument("--agree-servers", default="trama,refsrv,tokiosrv,python",
                    help="servers also measured with loadgen (python: only in the agree test)")
    ap.add_argument("--agree-clients", default="1,16,256",
                    help="agree: connection counts (loadgen runs a thread per client)")
    ap.add_argument("--bench-threads", default=None,
                    help="trama-bench --threads for load and hold: a number, or 'clients' for "
                         "one thread per connection (default: trama-bench's, one per core)")
    ap.add_argument("--trama-bulk-args", default="",
                    help="extra flags for trama-echo in the bulk test")
    ap.add_argument("--trama-dir", default=os.path.join(ROOT, "target", "release"))
    ap.add_argument("--baseline-echo", metavar="PATH",
                    help="another trama-echo binary (e.g. built at an earlier commit), run as "
                         "server `trama-base` for a before/after in the same run")
    ap.add_argument("--ref-dir", default=os.path.join(ROOT, "target", "refbench", "release"))
    ap.add_argument("--out", default="target/bench_suite.json", help="all raw results (JSON)")
    ap.add_argument("--quick", action="store_true", help="tiny parameters: checks the suite runs")
    ap.add_argument("--summarize", metavar="FILE", help="only print the tables of an earlier --out")
    a = ap.parse_args()
    if a.summarize:
        with open(a.summarize) as fh:
            print(markdown(json.load(fh)))
        return
    if a.quick:
        a.rounds, a.duration, a.warmup = 1, 0.5, 0.2
        a.pingpong_count, a.bulk_mib, a.hold_secs = 2000, 64, 0.5
        a.clients, a.hold_clients, a.agree_clients = "1,16", "200", "16"
        a.rate_clients, a.rate_fractions = "16", "0.5"
    a.servers = a.servers.split(",")
    a.tests = a.tests.split(",")
    a.agree_servers = [s for s in a.agree_servers.split(",") if s]
    a.clients = [int(c) for c in a.clients.split(",")]
    a.rate_clients = [int(c) for c in a.rate_clients.split(",")]
    a.rate_fractions = [float(x) for x in a.rate_fractions.split(",")]
    a.agree_clients = [int(c) for c in a.agree_clients.split(",")]
    a.hold_clients = [int(c) for c in a.hold_clients.split(",")]
    a.out_path = os.path.join(ROOT, a.out)
    paths = Paths(a.trama_dir, a.ref_dir, a.baseline_echo)
    known = server_table(paths, [])
    unknown = [s for s in a.servers + a.agree_servers if s not in known]
    if unknown:
        raise SystemExit(f"unknown server {', '.join(unknown)}: choose from {', '.join(known)}")
    every = a.servers + a.agree_servers
    needed = [paths.bench] + ([paths.echo] if "trama" in every else [])
    if "trama-base" in every and not a.baseline_echo:
        raise SystemExit("server trama-base needs --baseline-echo PATH")
    needed += [getattr(paths, s.replace("trama-base", "baseline")) for s in dict.fromkeys(every)
               if s not in ("trama", "python")]
    if a.agree_servers:
        needed.append(paths.loadgen)
    if "rate" in a.tests:
        needed.append(paths.refsrv)  # the capacity the rates are fractions of
    missing = [x for x in needed if not os.path.exists(x)]
    if missing:
        raise SystemExit("missing " + ", ".join(missing) + ": build first (see --help)")
    for t in a.tests:
        if t not in ("pingpong", "load", "bulk", "hold", "agree", "rate"):
            raise SystemExit(f"unknown test {t}")
    os.makedirs(os.path.dirname(a.out_path), exist_ok=True)
    # The servers and loadgen inherit this: 10,000 connections need more
    # descriptors than the usual soft limit of 1,024.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    suite = Suite(a, paths)
    t0 = time.time()
    suite.run()
    log(f"done in {time.time() - t0:.0f} s; raw results in {a.out}")
    print(markdown(suite.document()))


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, as the apps do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
