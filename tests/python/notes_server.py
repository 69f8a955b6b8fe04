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

import sys

from wire import ThreadedServer, chunks


class Server(ThreadedServer):
    """The notes' Server class: a reply, unframed, to each chunk."""

    def __init__(self, port, number):
        super().__init__(port)
        self.number = number

    def serve(self, conn):
        """Answer every chunk until the client disconnects."""
        for data in chunks(conn):
            text = data.decode("utf-8", errors="replace")
            reply = "Acción del servidor %d asociada a %s" % (self.number, text)
            conn.sendall(reply.encode("utf-8"))


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    try:
        port, number = int(sys.argv[1]), int(sys.argv[2])
    except ValueError:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    Server(port, number).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
