"""One of the course notes' two servers (servidor_1.py, servidor_2.py), for
the client connected to more than one server.

Wire format: none. The client sends the typed text encoded as UTF-8, with no
header and no newline; every non-empty chunk recv(4096) returns is one
message, and the reply is "Acción del servidor N asociada a " followed by
the decoded chunk, sent back with sendall, also unframed.

Binds 127.0.0.1 on PORT (0 picks a free port), prints
"listening on 127.0.0.1:PORT" on stderr once it accepts connections, and
serves each client on a thread of its own. A client's thread ends when that
client disconnects (recv returns b""). The server runs until it is killed.

Usage: notes_server.py PORT N
"""

import socket
import sys
import threading


class Server:
    """Accept clients and give each one a thread, as in the notes."""

    def __init__(self, port, number):
        self.number = number
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # So the server can be restarted on its port at once.
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
        """Answer every chunk until the client disconnects."""
        try:
            while True:
                data = conn.recv(4096)
                if not data:
                    # The client closed its end: this thread is done.
                    break
                text = data.decode("utf-8", errors="replace")
                reply = "Acción del servidor %d asociada a %s" % (self.number, text)
                conn.sendall(reply.encode("utf-8"))
        except OSError as e:
            print("client %s:%d: %s" % (peer + (e,)), file=sys.stderr, flush=True)
        conn.close()
        print("disconnected: %s:%d" % peer, file=sys.stderr, flush=True)


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    try:
        port, number = int(sys.argv[1]), int(sys.argv[2])
    except ValueError:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    server = Server(port, number)
    host, real_port = server.address()
    print("listening on %s:%d" % (host, real_port), file=sys.stderr, flush=True)
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
