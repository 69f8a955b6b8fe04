"""What every server in this folder shares: the command line and the listener.

Each server here is written from the course notes' framed format (a 4-byte
big-endian length, then the payload) and echoes every message back. The
correct one (`correct.py`) does it right; every other one reproduces exactly
one defect the notes' programs have, so `trama-check` can be tested on it.

All of them take `--port PORT` (default 8080, the notes' port; 0 picks a free
one), bind 127.0.0.1, and print "listening on 127.0.0.1:PORT" on stderr once
they accept connections. They run until killed.
"""

import argparse
import socket
import struct
import sys
import threading

LIMIT = 16 * 1024 * 1024  # the largest message a careful server accepts


def listen():
    """Bind and listen as the command line says; announce the address."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", args.port))
    server.listen(128)
    host, port = server.getsockname()
    print(f"listening on {host}:{port}", file=sys.stderr, flush=True)
    return server


def recv_exactly(conn, n):
    """Exactly n bytes, however many recv() calls that takes; None at the end."""
    parts = []
    while n > 0:
        part = conn.recv(min(n, 65536))
        if not part:
            return None
        parts.append(part)
        n -= len(part)
    return b"".join(parts)


def send_frame(conn, payload):
    conn.sendall(struct.pack(">I", len(payload)) + payload)


def echo_frames(conn):
    """Echo every message, read exactly and limited to LIMIT, until the client
    leaves (or sends a header over LIMIT: the stream cannot be trusted any
    more)."""
    while True:
        header = recv_exactly(conn, 4)
        if header is None:
            return
        (length,) = struct.unpack(">I", header)
        if length > LIMIT:
            return
        payload = recv_exactly(conn, length)
        if payload is None:
            return
        send_frame(conn, payload)


def serve_one(conn, handle):
    """handle(conn), then close it; an error ends only this client."""
    with conn:
        try:
            handle(conn)
        except OSError:
            pass


def serve_threads(server, handle):
    """A thread per client, as in the notes; errors end only that client."""
    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve_one, args=(conn, handle), daemon=True).start()
