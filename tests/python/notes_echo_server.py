"""Echo server in the style of the course notes.

Binds 127.0.0.1 on PORT (0 picks a free port), prints
"listening on 127.0.0.1:PORT" on stderr once it accepts connections, serves
one client, then exits.

Wire formats:
- default (unframed): loop recv(4096) and sendall the same bytes back, until
  recv returns b"" (the client closed);
- --framed: each message is a 4-byte big-endian unsigned length followed by
  the payload; read exactly the 4 header bytes, then loop on recv until the
  whole payload arrived, and reply with the same frame. Stops when the
  client closes between frames.

Usage: notes_echo_server.py PORT [--framed]
"""

import socket
import struct
import sys


def recv_exactly(conn, n):
    """Read exactly n bytes; None if the peer closed before the first byte."""
    chunks = []
    remaining = n
    while remaining > 0:
        chunk = conn.recv(remaining)
        if not chunk:
            if remaining == n:
                return None
            raise ConnectionError(
                "peer closed with %d of %d bytes missing" % (remaining, n)
            )
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def echo_unframed(conn):
    while True:
        data = conn.recv(4096)
        if not data:
            break
        conn.sendall(data)


def echo_framed(conn):
    while True:
        header = recv_exactly(conn, 4)
        if header is None:
            break
        (length,) = struct.unpack(">I", header)
        payload = recv_exactly(conn, length) if length else b""
        if payload is None:
            raise ConnectionError("peer closed after a header")
        conn.sendall(header + payload)


def main():
    args = sys.argv[1:]
    framed = "--framed" in args
    args = [a for a in args if a != "--framed"]
    if len(args) != 1:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    port = int(args[0])
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(1)
    host, port = server.getsockname()
    print("listening on %s:%d" % (host, port), file=sys.stderr, flush=True)
    conn, peer = server.accept()
    with conn:
        print("connected: %s:%d" % peer, file=sys.stderr, flush=True)
        if framed:
            echo_framed(conn)
        else:
            echo_unframed(conn)
    server.close()
    print("client left; bye", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
