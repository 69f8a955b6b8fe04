"""What the notes' programs here (notes_*.py) share: the listener, the reads.

Not a program: the notes_*.py servers and peers import it from this folder.
The student kit (framed_server.py, framed_client.py, chat_client.py, ...)
does not: each of those stays whole, to be copied alone.

- listen(port, backlog): bind 127.0.0.1 on PORT (0 picks a free port), listen,
  and print "listening on 127.0.0.1:PORT" on stderr;
- chunks(conn): every non-empty recv(4096), the notes' "one recv is one
  message", until the peer closes;
- recv_exactly, read_frame, send_frame: exact reads and whole writes of the
  notes' framed format, a 4-byte big-endian unsigned length followed by the
  payload;
- ThreadedServer: the notes' Server class, a thread per accepted client.
"""

import socket
import struct
import sys
import threading


def warn(text):
    print(text, file=sys.stderr, flush=True)


def listen(port, backlog):
    """A socket listening on 127.0.0.1:port, its address announced on stderr."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # So the program can be restarted on its port at once.
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(backlog)
    warn("listening on %s:%d" % server.getsockname())
    return server


def chunks(conn):
    """Each non-empty recv(4096), until the peer closes (recv returns b"")."""
    while True:
        data = conn.recv(4096)
        if not data:
            return
        yield data


def recv_upto(conn, n):
    """n bytes, or fewer if the peer closed first; recv is looped on."""
    parts = []
    remaining = n
    while remaining > 0:
        part = conn.recv(remaining)
        if not part:
            break
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)


def cut_short(n, data):
    return ConnectionError("peer closed with %d of %d bytes missing" % (n - len(data), n))


def recv_exactly(conn, n):
    """Exactly n bytes, or ConnectionError if the peer closes first."""
    data = recv_upto(conn, n)
    if len(data) < n:
        raise cut_short(n, data)
    return data


def read_frame(conn, strict=False):
    """One frame's payload; None when the peer closed between frames.

    A peer that closes in the middle of a frame ends the frames too (None),
    or, with strict, raises ConnectionError."""
    header = recv_upto(conn, 4)
    if len(header) < 4:
        if header and strict:
            raise cut_short(4, header)
        return None
    (length,) = struct.unpack(">I", header)
    payload = recv_upto(conn, length)
    if len(payload) == length:
        return payload
    if not strict:
        return None
    if not payload:
        raise ConnectionError("peer closed after a header")
    raise cut_short(length, payload)


def send_frame(conn, payload):
    conn.sendall(struct.pack(">I", len(payload)) + payload)


class ThreadedServer:
    """Accept clients and give each one a thread, as in the notes.

    A subclass says what a client gets in serve(conn); its thread then
    reports an error, closes the connection and says the client left."""

    def __init__(self, port):
        self.socket = listen(port, 16)

    def run(self):
        while True:
            conn, peer = self.socket.accept()
            warn("connected: %s:%d" % peer)
            thread = threading.Thread(
                target=self.handle, args=(conn, peer), daemon=True
            )
            thread.start()

    def handle(self, conn, peer):
        try:
            self.serve(conn)
        except OSError as e:
            warn("client %s:%d: %s" % (peer + (e,)))
        # The client left: release our end of its socket.
        conn.close()
        warn("disconnected: %s:%d" % peer)

    def serve(self, conn):
        raise NotImplementedError
