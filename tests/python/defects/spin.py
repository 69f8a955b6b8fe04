"""Defect: the thread of a client that left spins at 100% CPU.

The loop of the notes' multi-client server: recv() returns b"" once the
client has gone, which reads as a message of length 0, which is skipped, and
the loop calls recv() again, forever. Messages are read exactly and echoed;
only the end of a connection is mishandled. trama-check fails it on idle-cpu.

Usage: spin.py [--port PORT]
"""

import struct

from common import LIMIT, listen, recv_exactly, send_frame, serve_threads


def handle(conn):
    while True:
        header = conn.recv(4)
        while header and len(header) < 4:
            more = conn.recv(4 - len(header))
            if not more:
                break
            header += more
        if len(header) < 4:
            continue  # the defect: b"" means the client left, not "nothing yet"
        (length,) = struct.unpack(">I", header)
        if length > LIMIT:
            return
        payload = recv_exactly(conn, length)
        if payload is None:
            continue  # the same defect, for a client that left mid-message
        send_frame(conn, payload)


if __name__ == "__main__":
    serve_threads(listen(), handle)
