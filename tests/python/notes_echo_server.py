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

import sys

from wire import chunks, listen, read_frame, send_frame


def echo_unframed(conn):
    for data in chunks(conn):
        conn.sendall(data)


def echo_framed(conn):
    while True:
        payload = read_frame(conn, strict=True)
        if payload is None:
            break
        send_frame(conn, payload)


def main():
    args = sys.argv[1:]
    framed = "--framed" in args
    args = [a for a in args if a != "--framed"]
    if len(args) != 1:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    server = listen(int(args[0]), 1)
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
