#!/usr/bin/env python3
"""What N idle clients cost a server: its threads and resident memory.

Starts the server command given after `--` (it must print
"listening on HOST:PORT" on stderr, as every trama server does), reads its
thread count and resident memory (RSS) from /proc, connects N clients that
each exchange one message and then stay connected without a word, and reads
the same figures again. Then it closes the clients and stops the server.

Each client's one exchange proves the server is really serving it (a
thread-per-client server has started that client's thread by then), so the
figures do not depend on timing.

Linux only (/proc/PID/status). The server must be the process the command
starts: `cargo run` replaces itself with the program, and so does `exec`.

Usage:
  idle_clients.py [--clients N] [--raw] -- SERVER COMMAND...

  --clients N   clients to connect (default 100)
  --raw         the notes' unframed dialect: send b"hola", expect any reply;
                by default a frame (4-byte big-endian length, then "hola")
                is sent and the echoed frame awaited.
"""

import argparse
import resource
import signal
import socket
import subprocess
import threading

READY = "listening on "
PAYLOAD = b"hola"


def status(pid):
    """(threads, rss_kib) of a live process, from /proc/PID/status."""
    threads = rss = None
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Threads:"):
                threads = int(line.split()[1])
            elif line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return threads, rss


def show(label, pid):
    threads, rss = status(pid)
    print("%s: %d threads, RSS %.1f MiB" % (label, threads, rss / 1024), flush=True)


def recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("server closed after %d of %d bytes" % (len(data), n))
        data += chunk
    return data


def connect(host, port, raw):
    sock = socket.create_connection((host, port), timeout=30)
    if raw:
        sock.sendall(PAYLOAD)
        if not sock.recv(4096):
            raise ConnectionError("server closed without answering")
    else:
        sock.sendall(len(PAYLOAD).to_bytes(4, "big") + PAYLOAD)
        header = recv_exactly(sock, 4)
        recv_exactly(sock, int.from_bytes(header, "big"))
    return sock


def wait_ready(proc, timeout):
    """The server's address, from its `listening on` line on stderr."""
    found = []
    done = threading.Event()

    def drain():
        # Keeps reading after the ready line, so the server never blocks on stderr.
        for raw_line in proc.stderr:
            line = raw_line.decode("utf-8", "replace").strip()
            if not found and line.startswith(READY):
                found.append(line[len(READY):])
                done.set()
        done.set()

    threading.Thread(target=drain, daemon=True).start()
    done.wait(timeout)
    if not found:
        raise SystemExit("the server did not print '%sADDR' within %ds" % (READY, timeout))
    host, port = found[0].rsplit(":", 1)
    return host, int(port)


def main():
    parser = argparse.ArgumentParser(description="Threads and memory of a server with N idle clients.")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--raw", action="store_true")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the server command after --")

    # One descriptor per client on this side too.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, args.clients + 64))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    clients = []
    try:
        host, port = wait_ready(proc, 120)
        show("0 clients", proc.pid)
        for _ in range(args.clients):
            clients.append(connect(host, port, args.raw))
        show("%d idle clients" % args.clients, proc.pid)
    finally:
        for sock in clients:
            sock.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
