"""Framed client built on multiprocessing.connection.

Wire format: multiprocessing.connection.Client(address) with no authkey does
no handshake; send_bytes writes a 4-byte big-endian length followed by the
payload, and recv_bytes reads such a frame back. That is exactly trama's
default framing.

For each MESSAGE (UTF-8), the client sends it with send_bytes, reads one
reply with recv_bytes, and prints the reply on a line of its own.

Usage: mp_client.py HOST PORT MESSAGE...
"""

import sys
from multiprocessing.connection import Client


def main():
    if len(sys.argv) < 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    host, port = sys.argv[1], int(sys.argv[2])
    conn = Client((host, port))
    try:
        for message in sys.argv[3:]:
            conn.send_bytes(message.encode("utf-8"))
            print(conn.recv_bytes().decode("utf-8"))
    finally:
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
