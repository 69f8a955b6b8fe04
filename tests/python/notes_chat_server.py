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

import sys

from wire import ThreadedServer, read_frame, send_frame


class Server(ThreadedServer):
    """The notes' Server class: a framed reply to each non-empty message."""

    def serve(self, conn):
        """Serve one client until it disconnects."""
        while True:
            payload = read_frame(conn)
            if payload is None:
                break
            if not payload:
                continue
            message = payload.decode("utf-8", errors="replace")
            send_frame(conn, ("Acción asociada a " + message).encode("utf-8"))


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    Server(int(sys.argv[1])).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
