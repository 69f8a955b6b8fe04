"""A framed echo server in the notes' style, done right: copy it.

Wire format: each message is a 4-byte big-endian unsigned length followed by
the payload (the notes' "Envío de muchos datos" format, and trama's).

What it does right that the notes' servers do not:
- reads exactly 4 header bytes, then loops on recv until the whole payload
  has arrived (one recv may return any part of a message);
- refuses a header larger than MAX_MESSAGE instead of trying to allocate it
  (a 0xFFFFFFFF header would ask for 4 GiB);
- ends a client's thread when recv returns b"" (the client left) instead of
  spinning on it, and keeps serving everyone else;
- serves each client on a thread of its own, so a client that never reads
  blocks only its own thread;
- drops a client that starts a message and does not finish it within
  TIMEOUT seconds.

Binds 127.0.0.1 on PORT (0 picks a free port) and prints
"listening on 127.0.0.1:PORT" on stderr once it accepts connections, so
trama-check --spawn can find it. Runs until it is killed (Ctrl-C).

Usage: framed_server.py PORT
"""

import socket
import struct
import sys
import threading

MAX_MESSAGE = 16 * 1024 * 1024
TIMEOUT = 10.0


def recv_exactly(conn, n):
    """Read exactly n bytes; None if the peer closed before the first byte."""
    chunks = []
    remaining = n
    while remaining > 0:
        chunk = conn.recv(min(remaining, 65536))
        if not chunk:
            if remaining == n:
                return None
            raise ConnectionError(
                "peer closed with %d of %d bytes missing" % (remaining, n)
            )
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def recv_message(conn):
    """One message, or None when the client closed between messages."""
    # Between messages a client may stay quiet as long as it likes...
    conn.settimeout(None)
    header = conn.recv(4)
    if not header:
        return None
    # ...but once it has started a message, it must finish it.
    conn.settimeout(TIMEOUT)
    if len(header) < 4:
        header += recv_exactly(conn, 4 - len(header)) or b""
        if len(header) < 4:
            raise ConnectionError("peer closed inside a header")
    (length,) = struct.unpack("!I", header)
    if length > MAX_MESSAGE:
        raise ValueError("a %d-byte message is over the limit of %d" % (length, MAX_MESSAGE))
    if length == 0:
        return b""
    payload = recv_exactly(conn, length)
    if payload is None:
        raise ConnectionError("peer closed before the payload")
    return payload


def send_message(conn, payload):
    """Header and payload in one sendall: never half a message."""
    conn.sendall(struct.pack("!I", len(payload)) + payload)


def serve_client(conn, peer):
    try:
        while True:
            message = recv_message(conn)
            if message is None:
                break
            send_message(conn, message)
    except (OSError, ValueError) as e:
        print("client %s:%d dropped: %s" % (peer + (e,)), file=sys.stderr, flush=True)
    finally:
        conn.close()


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        sys.exit(2)
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", int(sys.argv[1])))
    server.listen(128)
    print("listening on %s:%d" % server.getsockname(), file=sys.stderr, flush=True)
    try:
        while True:
            conn, peer = server.accept()
            threading.Thread(target=serve_client, args=(conn, peer), daemon=True).start()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


if __name__ == "__main__":
    main()
