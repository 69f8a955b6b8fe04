"""Defect: the thread of a client that left never ends.

Messages are read exactly and echoed, and the end of a connection is seen
(recv returns b""), but then the thread waits forever for something that
never comes instead of returning: one sleeping thread per departed client.
It does not spin, so the CPU stays idle. trama-check fails it on
threads-released.

Usage: leak.py [--port PORT]
"""

import threading

from common import echo_frames, listen, serve_threads

NEVER = threading.Event()  # nobody ever sets it


def handle(conn):
    echo_frames(conn)
    conn.close()
    NEVER.wait()  # the defect: the thread outlives its client


if __name__ == "__main__":
    serve_threads(listen(), handle)
