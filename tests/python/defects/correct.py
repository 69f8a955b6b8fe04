"""A correct echo server: exact reads, a size limit, a thread per client.

Reads exactly 4 header bytes and then exactly the announced payload (however
many recv() calls that takes), refuses headers over 16 MiB by closing the
connection, echoes empty messages, and lets a client's thread end when the
client leaves. trama-check passes it on every check.

Usage: correct.py [--port PORT]
"""

import struct

from common import LIMIT, listen, recv_exactly, send_frame, serve_threads


def handle(conn):
    while True:
        header = recv_exactly(conn, 4)
        if header is None:
            return
        (length,) = struct.unpack(">I", header)
        if length > LIMIT:
            return  # refuse: the stream cannot be trusted any more
        payload = recv_exactly(conn, length)
        if payload is None:
            return
        send_frame(conn, payload)


if __name__ == "__main__":
    serve_threads(listen(), handle)
