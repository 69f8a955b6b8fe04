"""File sender in the style of the course notes ("Envío de muchos datos").

Wire format (the notes' file format, spoken by `trama-files receive --raw`):
- the sender connects and sends the file's size as 4 bytes, big-endian
  unsigned (so at most 4 GiB - 1 bytes);
- then the file's bytes, with a send loop (sendall);
- the receiver reads the 4-byte length, then reads in chunks of at most 4096
  bytes until it has that many, writes them to a file, and replies with the
  UTF-8 text "Gracias." (no length header);
- the sender prints what one recv(4096) returns, decoded as UTF-8.

Unlike the notes, the file is read and sent in 64 KiB pieces instead of
whole, so large files do not sit in memory; the bytes on the wire are the
same.

Usage: notes_file_sender.py HOST PORT PATH
"""

import os
import socket
import struct
import sys

PIECE = 64 * 1024


def main():
    if len(sys.argv) != 4:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    size = os.path.getsize(path)
    if size > 0xFFFFFFFF:
        print("%s is %d bytes; the 4-byte header holds at most 4 GiB - 1" % (path, size),
              file=sys.stderr)
        return 1
    with socket.create_connection((host, port)) as sock, open(path, "rb") as f:
        sock.sendall(struct.pack(">I", size))
        while True:
            piece = f.read(PIECE)
            if not piece:
                break
            sock.sendall(piece)
        reply = sock.recv(4096)
    print(reply.decode("utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
