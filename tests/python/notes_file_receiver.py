"""File receiver in the style of the course notes ("Envío de muchos datos").

Wire format (the notes' file format, spoken by `trama-files send --raw`):
- the sender connects and sends the file's size as 4 bytes, big-endian
  unsigned;
- then exactly that many bytes of the file;
- the receiver reads the 4-byte length, then reads in chunks of at most 4096
  bytes (recv(min(4096, remaining))) until it has that many, writes them to
  a file, and replies with the UTF-8 text "Gracias." (no length header).

Binds 127.0.0.1 on PORT (0 picks a free port), prints
"listening on 127.0.0.1:PORT" on stderr once it accepts connections, accepts
one connection, receives one file into OUTPATH, replies, and exits 0. Unlike
the notes, the chunks go to the file as they arrive instead of being joined
in memory; the bytes on the wire are the same.

Usage: notes_file_receiver.py PORT OUTPATH
"""

import struct
import sys

from wire import listen, recv_exactly

CHUNK = 4096


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    port, out_path = int(sys.argv[1]), sys.argv[2]
    server = listen(port, 1)
    conn, peer = server.accept()
    with conn:
        print("connected: %s:%d" % peer, file=sys.stderr, flush=True)
        (size,) = struct.unpack(">I", recv_exactly(conn, 4))
        received = 0
        with open(out_path, "wb") as f:
            while received < size:
                chunk = conn.recv(min(CHUNK, size - received))
                if not chunk:
                    raise ConnectionError(
                        "sender closed after %d of %d bytes" % (received, size))
                f.write(chunk)
                received += len(chunk)
        conn.sendall("Gracias.".encode("utf-8"))
    server.close()
    print("received %d bytes into %s" % (received, out_path), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
