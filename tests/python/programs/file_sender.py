"""A file sender for the notes' format ("Envío de muchos datos"), written to
test `trama-check --program file-sender`.

Wire format: the file's size as 4 bytes, big-endian unsigned, then the
file's bytes; then the sender prints the receiver's answer and closes.

Connects to HOST:PORT, sends the file IN (read and sent in chunks, so a
large file is never held whole) and exits. With --defect it has exactly
one classic defect instead:

- empty: a 0-byte file is not sent at all (no header either).

Usage: file_sender.py HOST:PORT IN [--defect empty]
"""

import argparse
import os
import socket
import sys

CHUNK = 64 * 1024


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("addr")
    parser.add_argument("path")
    parser.add_argument("--defect", choices=["empty"])
    args = parser.parse_args()
    host, port = args.addr.rsplit(":", 1)
    size = os.path.getsize(args.path)
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        if size == 0 and args.defect == "empty":
            print("nothing to send", file=sys.stderr)
            return 0
        sock.sendall(size.to_bytes(4, "big"))
        with open(args.path, "rb") as f:
            while True:
                chunk = f.read(CHUNK)
                if not chunk:
                    break
                sock.sendall(chunk)
        print("Respuesta:", sock.recv(4096).decode("utf-8", "replace"), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
