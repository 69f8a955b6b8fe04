"""Chapter 5 exercise, a solution: one client, several servers, each
connection on its own.

Wire format: every message, both ways, is a 4-byte big-endian length and
then that many bytes of UTF-8 text (the framed dialect of chapter 3, so two
quick messages never arrive glued into one).

The servers are numbered from 1 in the order given. Each one gets its own
connection and its own listener thread, which prints every reply as
"[N] TEXT". A line typed as "N TEXT" goes to server N. A server that cannot
be reached, or that goes away, is reported ("[N] ...") and only its own
lines are refused: the others go on. When stdin ends the client tells every
server it will send nothing more, waits (at most 10 s) for them to close,
and ends.

Usage: python3 cliente_multi.py HOST:PORT [HOST:PORT ...]
"""

import socket
import sys
import threading

ESPERA = 10  # seconds: to connect, and for the servers to close at the end
imprimir_lock = threading.Lock()


def decir(texto):
    """Print one line; threads never mix their lines."""
    with imprimir_lock:
        print(texto, flush=True)


def recibir_exacto(sock, n):
    """Exactly n bytes from sock, or None if the connection closed first."""
    datos = bytearray()
    while len(datos) < n:
        parte = sock.recv(min(n - len(datos), 65536))
        if not parte:
            return None
        datos.extend(parte)
    return bytes(datos)


def escuchar(numero, sock):
    """Print server numero's replies until it closes."""
    try:
        while True:
            encabezado = recibir_exacto(sock, 4)
            if encabezado is None:
                break
            cuerpo = recibir_exacto(sock, int.from_bytes(encabezado, "big"))
            if cuerpo is None:
                break
            decir("[%d] %s" % (numero, cuerpo.decode("utf-8", errors="replace")))
    except OSError as error:
        decir("[%d] connection lost: %s" % (numero, error))
    sock.close()


def conectar(numero, direccion):
    """A connection to one server, or None (said) if it cannot be reached."""
    host, _, puerto = direccion.rpartition(":")
    try:
        sock = socket.create_connection((host, int(puerto)), timeout=ESPERA)
    except (OSError, ValueError) as error:
        decir("[%d] cannot connect to %s: %s" % (numero, direccion, error))
        return None
    sock.settimeout(None)
    return sock


def main():
    if len(sys.argv) < 2:
        print("usage: python3 cliente_multi.py HOST:PORT [HOST:PORT ...]", file=sys.stderr)
        return 2
    conexiones = {}  # server number -> socket
    oyentes = []
    for numero, direccion in enumerate(sys.argv[1:], start=1):
        sock = conectar(numero, direccion)
        if sock is not None:
            conexiones[numero] = sock
            oyente = threading.Thread(target=escuchar, args=(numero, sock), daemon=True)
            oyente.start()
            oyentes.append(oyente)

    for linea in sys.stdin:
        numero, _, texto = linea.rstrip("\r\n").partition(" ")
        if not numero.isdigit() or int(numero) not in conexiones:
            decir("* no server %s connected; write: NUMBER TEXT" % numero)
            continue
        cuerpo = texto.encode("utf-8")
        try:
            conexiones[int(numero)].sendall(len(cuerpo).to_bytes(4, "big") + cuerpo)
        except OSError as error:
            decir("[%s] cannot send: %s" % (numero, error))
            del conexiones[int(numero)]

    for sock in conexiones.values():
        try:
            sock.shutdown(socket.SHUT_WR)  # "nothing more from me"; replies may still come
        except OSError:
            pass
    for oyente in oyentes:
        oyente.join(ESPERA)
    return 0


if __name__ == "__main__":
    sys.exit(main())
