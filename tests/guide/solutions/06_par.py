"""Chapter 6 exercise, a solution: a peer, server and client at once, that
works in either start order.

Wire format: every message is a 4-byte big-endian length and then that many
bytes of UTF-8 text.

The peer listens on 127.0.0.1:PORT (0, the default, picks a free port) and
prints "listening on 127.0.0.1:PORT" on stderr. Role 1 waits to be dialed,
then dials the other peer back; role 2 dials the other peer at once. Either
way the dial is retried for a while, so a peer started a little too early
still finds the other. Every connection, accepted or dialed, has a thread
that prints what arrives on it. Each line typed is sent on the connection
this peer dialed. When stdin ends the peer stops sending and waits for the
other peer to close before it ends.

Usage: python3 par.py 1|2 OTHER_HOST:OTHER_PORT [PORT]
"""

import socket
import sys
import threading
import time

ESPERA = 10  # seconds to keep trying to dial, and to wait for the dial


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
    """Print every message that arrives on sock until the other end closes."""
    try:
        while True:
            encabezado = recibir_exacto(sock, 4)
            if encabezado is None:
                return
            cuerpo = recibir_exacto(sock, int.from_bytes(encabezado, "big"))
            if cuerpo is None:
                return
            print(cuerpo.decode("utf-8", errors="replace"), flush=True)
    except OSError:
        return


def marcar(host, puerto):
    """Dial the other peer, retrying while it is not there yet; None if it never is."""
    limite = time.monotonic() + ESPERA
    while True:
        try:
            return socket.create_connection((host, puerto), timeout=ESPERA)
        except OSError as error:
            if time.monotonic() >= limite:
                print("cannot reach %s:%d: %s" % (host, puerto, error), file=sys.stderr)
                return None
            time.sleep(0.2)


class Par:
    def __init__(self, rol, host, puerto):
        self.rol, self.host, self.puerto = rol, host, puerto
        self.marcada = None  # the connection this peer dialed, once it exists
        self.lista = threading.Event()  # set once the dial succeeded or gave up
        self.marcando = False  # a dial has started (only one ever does)
        self.oyentes = []

    def oir(self, sock):
        hilo = threading.Thread(target=escuchar, args=(sock,), daemon=True)
        hilo.start()
        self.oyentes.append(hilo)

    def marcar(self):
        sock = marcar(self.host, self.puerto)
        if sock is not None:
            sock.settimeout(None)
            self.marcada = sock
            self.oir(sock)
        self.lista.set()

    def aceptar(self, servidor):
        while True:
            conexion, _ = servidor.accept()
            self.oir(conexion)
            if self.rol == 1 and not self.marcando:
                # Dialed for the first time: dial back, on a thread of its
                # own so this one goes on accepting.
                self.marcando = True
                threading.Thread(target=self.marcar, daemon=True).start()


def main():
    if len(sys.argv) not in (3, 4) or sys.argv[1] not in ("1", "2"):
        print("usage: python3 par.py 1|2 OTHER_HOST:OTHER_PORT [PORT]", file=sys.stderr)
        return 2
    host, _, puerto = sys.argv[2].rpartition(":")
    par = Par(int(sys.argv[1]), host, int(puerto))

    servidor = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    servidor.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    servidor.bind(("127.0.0.1", int(sys.argv[3]) if len(sys.argv) == 4 else 0))
    servidor.listen()
    print("listening on %s:%d" % servidor.getsockname(), file=sys.stderr, flush=True)
    threading.Thread(target=par.aceptar, args=(servidor,), daemon=True).start()
    if par.rol == 2:
        par.marcando = True
        par.marcar()

    for linea in sys.stdin:
        if not par.lista.wait(ESPERA) or par.marcada is None:
            print("not connected to the other peer; line dropped", file=sys.stderr)
            continue
        cuerpo = linea.rstrip("\r\n").encode("utf-8")
        try:
            par.marcada.sendall(len(cuerpo).to_bytes(4, "big") + cuerpo)
        except OSError as error:
            print("the other peer is gone: %s" % error, file=sys.stderr)
            break
    if par.marcada is not None:
        try:
            par.marcada.shutdown(socket.SHUT_WR)  # nothing more to send; still listening
        except OSError:
            pass
    for hilo in list(par.oyentes):
        hilo.join(ESPERA)
    return 0


if __name__ == "__main__":
    sys.exit(main())
