"""Defect: the header is trusted; memory is committed before the bytes arrive.

On the word of the length header it allocates (and zeroes) a buffer for the
whole payload, then fills it. A header of 0xFFFFFFFF would ask for 4 GiB; so
that a test cannot exhaust the machine, the allocation is capped at 128 MiB,
still far above what any message of the test needs. Reads are exact and a
thread serves each client. trama-check fails it on memory-bounded.

Usage: trusting.py [--port PORT]
"""

import struct

from common import listen, send_frame, serve_threads

CAP = 128 * 1024 * 1024  # only to protect the test machine; see above


def handle(conn):
    while True:
        header = b""
        while len(header) < 4:
            part = conn.recv(4 - len(header))
            if not part:
                return
            header += part
        (length,) = struct.unpack(">I", header)
        buffer = bytearray(min(length, CAP))  # the defect: sized by the header
        view = memoryview(buffer)
        got = 0
        while got < length:
            n = conn.recv_into(view[got:], min(65536, len(buffer) - got))
            if n == 0:
                return
            got += n
        send_frame(conn, bytes(buffer[:length]))


if __name__ == "__main__":
    serve_threads(listen(), handle)
