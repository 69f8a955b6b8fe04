"""Chapter 3 exercise, a solution: a file receiver that reads the header
whole, checks it against a limit, and writes the file as it arrives.

Wire format (the notes' improved sender): a 4-byte big-endian length, then
that many bytes of the file. Once every byte is saved the receiver answers
"Gracias." (UTF-8, no header) and ends.

It listens on 127.0.0.1:PORT (0 picks a free port), prints
"listening on 127.0.0.1:PORT" on stderr, and serves one sender. The bytes go
to FILE.part in pieces of at most 64 KiB, so memory stays the same whatever
the file's size; FILE.part becomes FILE only when the file is complete. A
header over 1 GiB, or a sender that leaves before the end, leaves no file.

Usage: python3 receptor.py PORT FILE
"""

import os
import socket
import sys

LIMITE = 1 << 30  # the largest file accepted, in bytes
PEDAZO = 1 << 16  # how much one recv may return


def recibir_exacto(sock, n):
    """Exactly n bytes from sock, or None if the connection closed first."""
    datos = bytearray()
    while len(datos) < n:
        parte = sock.recv(n - len(datos))
        if not parte:
            return None
        datos.extend(parte)
    return bytes(datos)


def recibir_archivo(sock, destino):
    """Receive one file into destino; an error message if it cannot be done."""
    encabezado = recibir_exacto(sock, 4)  # recv(4) may return 1 to 3 bytes
    if encabezado is None:
        return "the sender closed before the header"
    largo = int.from_bytes(encabezado, "big")
    if largo > LIMITE:
        return "a file of %d bytes is over the limit of %d" % (largo, LIMITE)
    temporal = destino + ".part"
    faltan = largo
    with open(temporal, "wb") as archivo:
        while faltan > 0:
            try:
                parte = sock.recv(min(faltan, PEDAZO))
            except OSError:  # a reset: the sender left as surely as with b''
                break
            if not parte:  # b'': the sender left; it will never send the rest
                break
            archivo.write(parte)
            faltan -= len(parte)
    if faltan > 0:
        os.remove(temporal)
        return "the sender closed %d bytes before the end" % faltan
    os.replace(temporal, destino)
    return None


def main():
    if len(sys.argv) != 3:
        print("usage: python3 receptor.py PORT FILE", file=sys.stderr)
        return 2
    puerto, destino = int(sys.argv[1]), sys.argv[2]
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as servidor:
        servidor.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        servidor.bind(("127.0.0.1", puerto))
        servidor.listen()
        print("listening on %s:%d" % servidor.getsockname(), file=sys.stderr, flush=True)
        emisor, _ = servidor.accept()
        with emisor:
            error = recibir_archivo(emisor, destino)
            if error:
                print(error, file=sys.stderr)
                return 1
            print("saved %s (%d bytes)" % (destino, os.path.getsize(destino)))
            emisor.sendall("Gracias.".encode("utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
