"""Object client for the notes' echo server, unframed dialect.

Wire format: no framing at all. The client sends pickle.dumps(obj) of a
Persona(nombre, correo) with sendall, reads the reply with a single
recv(4096), and pickle.loads it. It prints the nombre it got back.

Pickle is only safe here because the peer is an echo server returning our
own bytes; never unpickle data from a peer you do not trust.

Usage: echo_pickle_client.py HOST PORT
"""

import pickle
import socket
import sys


class Persona:
    """A person, as in the notes."""

    def __init__(self, nombre, correo):
        self.nombre = nombre
        self.correo = correo


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    host, port = sys.argv[1], int(sys.argv[2])
    persona = Persona("Ana", "ana@example.com")
    with socket.create_connection((host, port), timeout=20) as s:
        s.sendall(pickle.dumps(persona))
        reply = s.recv(4096)
    received = pickle.loads(reply)
    print(received.nombre)
    return 0


if __name__ == "__main__":
    sys.exit(main())
