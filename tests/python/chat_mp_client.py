"""Chat client built on multiprocessing.connection.

Wire format: multiprocessing.connection.Client(address) with no authkey does
no handshake; send_bytes writes a 4-byte big-endian unsigned length followed
by the payload, and recv_bytes reads such a frame back. That is exactly
trama's default framing, with UTF-8 text as the payload.

The client sends each LINE with send_bytes, then prints every message it
receives (recv_bytes, polled with poll(timeout)) on a line of its own, until
nothing has arrived for 1 s. With --wait-for TEXT it also keeps listening
(for at most 30 s) until a message equal to TEXT has arrived, so a test can
make sure another client's reply reached it. It exits 0, or 1 if the server
closed the connection or TEXT never came.

Usage: chat_mp_client.py [--wait-for TEXT] HOST PORT LINE...
"""

import sys
import time
from multiprocessing.connection import Client

QUIET = 1.0
WAIT_FOR_LIMIT = 30.0


def main():
    args = sys.argv[1:]
    wait_for = None
    if args[:1] == ["--wait-for"] and len(args) >= 2:
        wait_for = args[1]
        args = args[2:]
    if len(args) < 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    host, port = args[0], int(args[1])
    conn = Client((host, port))
    try:
        for line in args[2:]:
            conn.send_bytes(line.encode("utf-8"))
        started = time.monotonic()
        last = started
        seen = wait_for is None
        while True:
            now = time.monotonic()
            if seen and now - last >= QUIET:
                return 0
            if not seen and now - started >= WAIT_FOR_LIMIT:
                print(
                    "no message %r within %.0f s" % (wait_for, WAIT_FOR_LIMIT),
                    file=sys.stderr,
                )
                return 1
            if not conn.poll(0.1):
                continue
            try:
                message = conn.recv_bytes().decode("utf-8", errors="replace")
            except EOFError:
                print("server closed the connection", file=sys.stderr)
                return 1
            last = time.monotonic()
            print(message, flush=True)
            if message == wait_for:
                seen = True
    finally:
        conn.close()


if __name__ == "__main__":
    sys.exit(main())
