"""A file receiver for the notes' format ("Envío de muchos datos"), written
to test `trama-check --program file-receiver`.

Wire format: the sender sends the file's size as 4 bytes, big-endian
unsigned, then that many bytes; the receiver saves them and answers with
the UTF-8 text "Gracias." (no header), then closes.

Binds 127.0.0.1 on PORT (0 picks a free one), prints
"listening on 127.0.0.1:PORT" on stderr, receives one file into OUT and
exits. The correct receiver reads exactly, writes each chunk as it comes
and stops when the sender leaves early. With --defect it has exactly one
classic defect instead:

- single-recv: the header is one recv(4), taken as 4 bytes;
- spin: the body loop keeps calling recv after the sender left (b'');
- whole: the file is gathered in memory and written at the end.

Usage: file_receiver.py PORT OUT [--defect single-recv|spin|whole]
"""

import argparse
import socket
import sys

CHUNK = 4096


def read_header(conn, defect):
    if defect == "single-recv":
        return conn.recv(4)
    header = b""
    while len(header) < 4:
        part = conn.recv(4 - len(header))
        if not part:
            return None
        header += part
    return header


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("out")
    parser.add_argument("--defect", choices=["single-recv", "spin", "whole"])
    args = parser.parse_args()

    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", args.port))
    server.listen(1)
    print("listening on %s:%d" % server.getsockname(), file=sys.stderr, flush=True)
    conn, _ = server.accept()

    header = read_header(conn, args.defect)
    if header is None:
        print("the sender left before the header", file=sys.stderr)
        return 1
    size = int.from_bytes(header, "big")
    print("receiving %d bytes" % size, file=sys.stderr, flush=True)
    received = 0
    held = bytearray()
    with open(args.out, "wb") as out:
        while received < size:
            part = conn.recv(min(CHUNK, size - received))
            if not part:
                if args.defect == "spin":
                    continue
                print("the sender left with %d of %d bytes sent" % (received, size),
                      file=sys.stderr)
                return 1
            received += len(part)
            if args.defect == "whole":
                held.extend(part)
            else:
                out.write(part)
        if args.defect == "whole":
            out.write(held)
    conn.sendall("Gracias.".encode("utf-8"))
    conn.close()
    server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
