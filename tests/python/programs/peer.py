"""A P2P peer for the notes' pair ("Interacción entre clientes P2P"),
written to test `trama-check --program peer`.

Wire format: none by default (each line typed goes out as its UTF-8 bytes,
and each recv(4096) that returns something is printed); with --framed, a
4-byte big-endian length before each message, read exactly.

Listens on 127.0.0.1:PORT (0 picks a free one) and prints
"listening on 127.0.0.1:PORT" on stderr. Role 1 waits to be dialed, then
dials OTHER; role 2 dials OTHER at once (and accepts too). Everything
received on any connection is printed; each line typed is sent on the
connection it dialed. When stdin ends it waits a second and exits. With
--defect it has exactly one classic defect instead:

- no-dial-back: role 1 never dials the other peer, so what is typed on it
  has nowhere to go.

Usage: peer.py --role 1|2 --listen PORT --other HOST:PORT [--framed] [--defect no-dial-back]
"""

import argparse
import socket
import sys
import threading
import time


def recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        part = sock.recv(n - len(data))
        if not part:
            return None
        data += part
    return data


def reader(sock, framed):
    while True:
        if framed:
            header = recv_exactly(sock, 4)
            data = header and recv_exactly(sock, int.from_bytes(header, "big"))
        else:
            data = sock.recv(4096)
        if not data:
            return
        print(data.decode("utf-8", "replace"), flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", type=int, choices=[1, 2], required=True)
    parser.add_argument("--listen", type=int, default=0)
    parser.add_argument("--other", required=True)
    parser.add_argument("--framed", action="store_true")
    parser.add_argument("--defect", choices=["no-dial-back"])
    args = parser.parse_args()
    host, port = args.other.rsplit(":", 1)

    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", args.listen))
    server.listen(5)
    print("listening on %s:%d" % server.getsockname(), file=sys.stderr, flush=True)
    dialed = []
    ready = threading.Event()

    def dial():
        if not (args.role == 1 and args.defect == "no-dial-back"):
            sock = socket.create_connection((host, int(port)))
            dialed.append(sock)
            threading.Thread(target=reader, args=(sock, args.framed), daemon=True).start()
        ready.set()

    def accepting():
        first = True
        while True:
            conn, _ = server.accept()
            threading.Thread(target=reader, args=(conn, args.framed), daemon=True).start()
            if first and args.role == 1:
                dial()
            first = False

    threading.Thread(target=accepting, daemon=True).start()
    if args.role == 2:
        dial()
    for line in sys.stdin:
        ready.wait()
        payload = line.rstrip("\r\n").encode("utf-8")
        if args.framed:
            payload = len(payload).to_bytes(4, "big") + payload
        for sock in dialed:
            sock.sendall(payload)
    time.sleep(1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
