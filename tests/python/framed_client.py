"""Framed client: one length-prefixed frame per message.

Wire format: each message is a 4-byte big-endian unsigned length followed by
the payload. The receiver reads exactly 4 header bytes, then loops on recv
until the whole payload has arrived.

For each MESSAGE (UTF-8), the client sends one frame, reads one reply frame,
and prints the reply on a line of its own (an empty reply prints an empty
line).

Usage: framed_client.py HOST PORT MESSAGE...
"""

import socket
import struct
import sys


def recv_exactly(sock, n):
    """Read exactly n bytes, or raise if the peer closes first."""
    chunks = []
    remaining = n
    while remaining > 0:
        chunk = sock.recv(remaining)
        if not chunk:
            raise ConnectionError(
                "peer closed with %d of %d bytes missing" % (remaining, n)
            )
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def send_frame(sock, payload):
    sock.sendall(struct.pack(">I", len(payload)) + payload)


def recv_frame(sock):
    (length,) = struct.unpack(">I", recv_exactly(sock, 4))
    return recv_exactly(sock, length)


def main():
    if len(sys.argv) < 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    host, port = sys.argv[1], int(sys.argv[2])
    with socket.create_connection((host, port), timeout=20) as s:
        for message in sys.argv[3:]:
            send_frame(s, message.encode("utf-8"))
            print(recv_frame(s).decode("utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
