"""Chapter 4 exercise, a solution: a chat client that listens while you type.

Wire format (the notes' chat): every message, both ways, is a 4-byte
big-endian length and then that many bytes of UTF-8 text.

Two threads. The listener reads whole messages (the header in a loop, then
the body in a loop) and prints each one; when the server closes the
connection it says so and returns, which ends the program, instead of
calling recv again and again on a closed socket. The console thread sends
every line typed on stdin as one message; when stdin ends it tells the
server it will send nothing more, and the listener goes on until the
server closes.

Usage: python3 cliente_chat.py HOST PORT
"""

import socket
import sys
import threading


def recibir_exacto(sock, n):
    """Exactly n bytes from sock, or None if the connection closed first."""
    datos = bytearray()
    while len(datos) < n:
        parte = sock.recv(min(n - len(datos), 65536))
        if not parte:
            return None
        datos.extend(parte)
    return bytes(datos)


def escuchar(sock):
    """Print every message from the server until it closes."""
    try:
        while True:
            encabezado = recibir_exacto(sock, 4)
            if encabezado is None:
                break
            cuerpo = recibir_exacto(sock, int.from_bytes(encabezado, "big"))
            if cuerpo is None:
                break
            print(cuerpo.decode("utf-8", errors="replace"), flush=True)
    except OSError:
        pass
    print("the server closed the connection", flush=True)


def escribir(sock):
    """Send every line typed as one message; on the end of stdin, stop sending."""
    try:
        for linea in sys.stdin:
            cuerpo = linea.rstrip("\r\n").encode("utf-8")
            sock.sendall(len(cuerpo).to_bytes(4, "big") + cuerpo)
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # the server is gone; the listener says so


def main():
    if len(sys.argv) != 3:
        print("usage: python3 cliente_chat.py HOST PORT", file=sys.stderr)
        return 2
    host, puerto = sys.argv[1], int(sys.argv[2])
    try:
        sock = socket.create_connection((host, puerto), timeout=10)
    except OSError as error:
        print("cannot connect to %s:%d: %s" % (host, puerto, error), file=sys.stderr)
        return 1
    sock.settimeout(None)
    # Only this thread sends, so no two frames can interleave on the socket.
    # It is a daemon: when the listener ends, the program ends with it, even
    # while the console is waiting for a line.
    threading.Thread(target=escribir, args=(sock,), daemon=True).start()
    escuchar(sock)
    sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
