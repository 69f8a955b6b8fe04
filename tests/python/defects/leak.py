"""Defect: the thread of a client that left never ends.

Messages are read exactly and echoed, and the end of a connection is seen
(recv returns b""), but then the thread waits forever for something that
never comes instead of returning: one sleeping thread per departed client.
It does not spin, so the CPU stays idle. trama-check fails it on
threads-released.

Usage: leak.py [--port PORT]
"""

import struct
import threading

from common import LIMIT, listen, recv_exactly, send_frame, serve_threads

NEVER = threading.Event()  # nobody ever sets it


def handle(conn):
    while True:
        header = recv_exactly(conn, 4)
        if header is None:
            break
        (length,) = struct.unpack(">I", header)
        if length > LIMIT:
            break
        payload = recv_exactly(conn, length)
        if payload is None:
            break
        send_frame(conn, payload)
    conn.close()
    NEVER.wait()  # the defect: the thread outlives its client


if __name__ == "__main__":
    serve_threads(listen(), handle)
