"""Defect: a single recv() is trusted to return a whole header or body.

Like the notes' first file receiver, it calls recv(4) once for the header and
recv(length) once for the body, as if TCP kept message boundaries. Split
segments and large messages are then read short and the stream falls out of
step. Everything else is done right (a thread per client, a size limit, clean
exit when the client leaves). trama-check fails it on byte-at-a-time and
large-message.

Usage: single_recv.py [--port PORT]
"""

import struct

from common import LIMIT, listen, send_frame, serve_threads


def handle(conn):
    while True:
        header = conn.recv(4)  # the defect: maybe fewer than 4 bytes
        if not header:
            return
        length = int.from_bytes(header, byteorder="big")
        if length > LIMIT:
            return
        payload = conn.recv(length) if length else b""  # the defect again
        if length and not payload:
            return
        send_frame(conn, payload)


if __name__ == "__main__":
    serve_threads(listen(), handle)
