"""One of the course notes' two P2P peers (cliente_1.py, cliente_2.py), the
"Interacción entre clientes P2P": each program is server and client at once.

Wire format: none. Typed text goes out encoded as UTF-8, with no header and
no newline; every non-empty chunk recv(4096) returns is one message.

Both roles bind 127.0.0.1 on PORT (0 picks a free port) and listen; once
they accept connections they print "listening on 127.0.0.1:PORT" on stderr.
Every accepted connection gets a thread that loops on recv(4096): each
non-empty chunk is printed, and answered on that same connection with
"Acción del Cliente P2P (N) asociada a " followed by the decoded chunk
(N is the role). The connection this peer dialed gets a thread that prints
whatever comes back on it. Each line typed on stdin is sent, raw, on the
dialed connection.

- Role 1 (cliente_1) accepts one connection, and right after accepting it
  dials --peer once.
- Role 2 (cliente_2) dials --peer right away, once.

Neither role ever retries a dial. Where the notes' program would die of an
exception when its one dial fails, this one says so on stderr and keeps
serving the connection it accepted (lines typed then have nowhere to go and
are reported as dropped on stderr). When stdin ends the program keeps
printing for --wait seconds (default 1), then exits, so tests end.

Usage: notes_peer.py --role 1|2 --listen PORT --peer HOST:PORT [--wait SECONDS]
"""

import argparse
import socket
import sys
import threading
import time

from wire import chunks, listen, warn

PREFIX = "Acción del Cliente P2P (%d) asociada a %s"


def show(text):
    """Print one message at once (tests read stdout as it comes)."""
    print(text, flush=True)


class NotesPeer:
    def __init__(self, role, port, peer):
        self.role = role
        self.peer = peer
        self.dialed = None
        self.dialed_lock = threading.Lock()
        self.server = listen(port, 5)

    def start(self):
        if self.role == 1:
            accepter = threading.Thread(target=self.accept_once, daemon=True)
            accepter.start()
        else:
            accepter = threading.Thread(target=self.accept_forever, daemon=True)
            accepter.start()
            self.dial()

    # --- the server side --------------------------------------------------

    def accept_once(self):
        """cliente_1: one connection, then dial the other peer."""
        conn, addr = self.server.accept()
        self.serve_in_thread(conn, addr)
        self.dial()

    def accept_forever(self):
        while True:
            try:
                conn, addr = self.server.accept()
            except OSError as e:
                warn("accept failed: %s" % e)
                return
            self.serve_in_thread(conn, addr)

    def serve_in_thread(self, conn, addr):
        warn("connected from %s:%d" % addr)
        threading.Thread(target=self.serve, args=(conn, addr), daemon=True).start()

    def serve(self, conn, addr):
        """Print each chunk and answer it on the same connection."""
        try:
            for data in chunks(conn):
                text = data.decode("utf-8", errors="replace")
                show(text)
                conn.sendall((PREFIX % (self.role, text)).encode("utf-8"))
        except OSError as e:
            warn("connection from %s:%d: %s" % (addr + (e,)))
        conn.close()
        warn("disconnected: %s:%d" % addr)

    # --- the client side --------------------------------------------------

    def dial(self):
        """Dial the other peer once; never retry."""
        host, _, port = self.peer.rpartition(":")
        try:
            sock = socket.create_connection((host, int(port)))
        except (OSError, ValueError) as e:
            warn("cannot connect to %s: %s" % (self.peer, e))
            return
        warn("connected to %s" % self.peer)
        with self.dialed_lock:
            self.dialed = sock
        threading.Thread(target=self.listen_dialed, args=(sock,), daemon=True).start()

    def listen_dialed(self, sock):
        """Print whatever comes back on the connection we dialed."""
        try:
            for data in chunks(sock):
                show(data.decode("utf-8", errors="replace"))
        except OSError as e:
            warn("connection to %s: %s" % (self.peer, e))
        warn("connection to %s closed" % self.peer)

    def send(self, line):
        with self.dialed_lock:
            sock = self.dialed
        if sock is None:
            warn("not connected to %s; line dropped" % self.peer)
            return
        try:
            sock.sendall(line.encode("utf-8"))
        except OSError as e:
            warn("cannot send to %s: %s" % (self.peer, e))


def main():
    parser = argparse.ArgumentParser(description="The notes' P2P peer.")
    parser.add_argument("--role", type=int, choices=(1, 2), required=True)
    parser.add_argument("--listen", type=int, required=True, metavar="PORT")
    parser.add_argument("--peer", required=True, metavar="HOST:PORT")
    parser.add_argument("--wait", type=float, default=1.0, metavar="SECONDS")
    args = parser.parse_args()

    peer = NotesPeer(args.role, args.listen, args.peer)
    peer.start()
    for line in sys.stdin:
        line = line.rstrip("\r\n")
        if line.strip():
            peer.send(line)
    # The input ended: let late answers print, then end (daemon threads go too).
    time.sleep(args.wait)
    return 0


if __name__ == "__main__":
    sys.exit(main())
