"""Defect: one client at a time.

Accepts a client and serves it until it leaves before accepting the next,
like the notes' first echo server run in a loop. Reads are exact and the size
is limited; a client that errors only ends its own turn. trama-check fails it
on concurrent-clients (and skips the checks that presume concurrency).

Usage: serial.py [--port PORT]
"""

import struct

from common import LIMIT, listen, recv_exactly, send_frame


def handle(conn):
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


if __name__ == "__main__":
    server = listen()
    while True:
        conn, _ = server.accept()
        with conn:
            try:
                handle(conn)
            except OSError:
                pass
