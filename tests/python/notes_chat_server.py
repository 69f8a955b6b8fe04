"""Multi-client server in the style of the course notes' Server class.

Wire format: each message is a 4-byte big-endian unsigned length followed by
the UTF-8 payload. The receiver reads exactly 4 header bytes, then loops on
recv until the whole payload has arrived.

Binds 127.0.0.1 on PORT (0 picks a free port), prints
"listening on 127.0.0.1:PORT" on stderr once it accepts connections, and
serves each client on a thread of its own: for every non-empty message it
replies with one frame, "Acción asociada a " followed by the message. Like
the notes' server it never closes a client's connection itself; a client's
thread ends when that client disconnects (recv returns b""). The server runs
until it is killed.

Usage: notes_chat_server.py PORT
"""

import socket
import struct
import sys
import threading


def recv_exactly(conn, n):
    """Read exactly n bytes; None if the peer closed (or broke) first."""
    chunks = []
    remaining = n
    while remaining > 0:
        chunk = conn.recv(remaining)
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def send_frame(conn, payload):
    conn.sendall(struct.pack(">I", len(payload)) + payload)


class Server:
    """Accept clients and give each one a thread, as in the notes."""

    def __init__(self, port):
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", port))
        self.socket.listen(16)

    def address(self):
        return self.socket.getsockname()

    def run(self):
        while True:
            conn, peer = self.socket.accept()
            print("connected: %s:%d" % peer, file=sys.stderr, flush=True)
            thread = threading.Thread(
                target=self.handle, args=(conn, peer), daemon=True
            )
            thread.start()

    def handle(self, conn, peer):
        """Serve one client until it disconnects."""
        try:
            while True:
                header = recv_exactly(conn, 4)
                if header is None:
                    break
                (length,) = struct.unpack(">I", header)
                payload = recv_exactly(conn, length) if length else b""
                if payload is None:
                    break
                if not payload:
                    continue
                message = payload.decode("utf-8", errors="replace")
                send_frame(conn, ("Acción asociada a " + message).encode("utf-8"))
        except OSError as e:
            print("client %s:%d: %s" % (peer + (e,)), file=sys.stderr, flush=True)
        # The client left: release our end of its socket.
        conn.close()
        print("disconnected: %s:%d" % peer, file=sys.stderr, flush=True)


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    server = Server(int(sys.argv[1]))
    host, port = server.address()
    print("listening on %s:%d" % (host, port), file=sys.stderr, flush=True)
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
