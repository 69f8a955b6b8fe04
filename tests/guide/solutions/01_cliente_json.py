"""Chapter 1 exercise, a solution: a JSON echo client that reads every
reply whole.

Each line typed on stdin goes out as one message: the JSON object
{"mensaje": LINE}, encoded as UTF-8, after a 4-byte big-endian header with
its length. Each reply is read the same way (first exactly 4 bytes, then
exactly the length they announce, however many recv calls that takes),
decoded as JSON, and its "mensaje" printed. When the server closes the
connection the client says so and ends; when stdin ends, so does the client.

Usage: python3 cliente_json.py HOST PORT
"""

import json
import socket
import sys


def recibir_exacto(sock, n):
    """Exactly n bytes from sock, or None if the connection closed first."""
    datos = bytearray()
    while len(datos) < n:
        parte = sock.recv(min(n - len(datos), 65536))
        if not parte:  # b'': the other end closed; nothing more will come
            return None
        datos.extend(parte)
    return bytes(datos)


def enviar_mensaje(sock, objeto):
    cuerpo = json.dumps(objeto, ensure_ascii=False).encode("utf-8")
    sock.sendall(len(cuerpo).to_bytes(4, "big") + cuerpo)


def recibir_mensaje(sock):
    """The next message, decoded, or None if the server closed."""
    encabezado = recibir_exacto(sock, 4)
    if encabezado is None:
        return None
    cuerpo = recibir_exacto(sock, int.from_bytes(encabezado, "big"))
    if cuerpo is None:
        return None
    return json.loads(cuerpo.decode("utf-8"))


def main():
    if len(sys.argv) != 3:
        print("usage: python3 cliente_json.py HOST PORT", file=sys.stderr)
        return 2
    host, puerto = sys.argv[1], int(sys.argv[2])
    try:
        sock = socket.create_connection((host, puerto), timeout=10)
    except OSError as error:
        print("cannot connect to %s:%d: %s" % (host, puerto, error), file=sys.stderr)
        return 1
    with sock:
        sock.settimeout(None)  # connected: now wait for replies as long as it takes
        for linea in sys.stdin:
            try:
                enviar_mensaje(sock, {"mensaje": linea.rstrip("\r\n")})
                respuesta = recibir_mensaje(sock)
            except OSError as error:  # the connection broke (reset, for instance)
                print("the connection was lost: %s" % error)
                return 1
            if respuesta is None:
                print("the server closed the connection")
                return 0
            if isinstance(respuesta, dict) and "mensaje" in respuesta:
                respuesta = respuesta["mensaje"]
            print(respuesta, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
