"""Chapter 2 exercise, a solution: a server that receives a Persona as
data (JSON), never as a pickle.

Wire format: every message, both ways, is a 4-byte big-endian length and
then that many bytes of UTF-8 JSON. A Persona is the object
{"nombre": TEXT, "correo": TEXT}; the server answers it with
{"saludo": "Hola, NOMBRE <CORREO>"}. Anything else (not UTF-8, not JSON,
not an object with those two text fields) is answered with {"error": WHY}
and the connection goes on: bad input from a peer is an error to report,
never code to run and never a reason to crash. A header announcing more
than 16 MiB closes that client's connection before anything is read.

Binds 127.0.0.1 on PORT (0 picks a free port), prints
"listening on 127.0.0.1:PORT" on stderr, and serves every client on a
thread of its own until it is stopped.

Usage: python3 servidor_persona.py PORT
"""

import json
import socket
import sys
import threading

MAXIMO = 16 << 20  # the largest message accepted, in bytes (16 MiB)


def recibir_exacto(sock, n):
    """Exactly n bytes from sock, or None if the connection closed first."""
    datos = bytearray()
    while len(datos) < n:
        parte = sock.recv(min(n - len(datos), 65536))
        if not parte:
            return None
        datos.extend(parte)
    return bytes(datos)


def enviar_json(sock, objeto):
    cuerpo = json.dumps(objeto, ensure_ascii=False).encode("utf-8")
    sock.sendall(len(cuerpo).to_bytes(4, "big") + cuerpo)


def leer_persona(cuerpo):
    """The (nombre, correo) a message carries; ValueError if it is not a Persona."""
    persona = json.loads(cuerpo.decode("utf-8"))  # both raise ValueError subclasses
    if not isinstance(persona, dict):
        raise ValueError("a Persona is a JSON object")
    nombre, correo = persona.get("nombre"), persona.get("correo")
    if not isinstance(nombre, str) or not isinstance(correo, str):
        raise ValueError('a Persona needs the text fields "nombre" and "correo"')
    return nombre, correo


def atender(sock):
    """Answer one client's messages until it leaves."""
    with sock:
        while True:
            encabezado = recibir_exacto(sock, 4)
            if encabezado is None:
                return  # the client left: end this thread, do not loop on b''
            largo = int.from_bytes(encabezado, "big")
            if largo > MAXIMO:
                return  # refuse before reading (or allocating) anything
            cuerpo = recibir_exacto(sock, largo)
            if cuerpo is None:
                return
            try:
                nombre, correo = leer_persona(cuerpo)
                respuesta = {"saludo": "Hola, %s <%s>" % (nombre, correo)}
            except ValueError as error:
                respuesta = {"error": str(error)}
            enviar_json(sock, respuesta)


def atender_sin_caer(sock):
    """atender, where a connection that breaks ends only its own thread."""
    try:
        atender(sock)
    except OSError:
        pass


def main():
    if len(sys.argv) != 2:
        print("usage: python3 servidor_persona.py PORT", file=sys.stderr)
        return 2
    servidor = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    servidor.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    servidor.bind(("127.0.0.1", int(sys.argv[1])))
    servidor.listen()
    print("listening on %s:%d" % servidor.getsockname(), file=sys.stderr, flush=True)
    while True:
        cliente, _ = servidor.accept()
        threading.Thread(target=atender_sin_caer, args=(cliente,), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
