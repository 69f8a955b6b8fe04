"""A Python end of the shared-key handshake, using only the standard library's
multiprocessing.connection with an authkey (Python 2.7 and 3.x alike).

    authkey_peer.py client HOST PORT KEYFILE MESSAGE
        connect, send MESSAGE as one frame, print the reply frame
    authkey_peer.py listen KEYFILE
        listen on 127.0.0.1 (a free port, printed on stderr as
        "listening on HOST:PORT"), accept one connection, echo its frames
        until it closes

Exit status 2 (and "AuthenticationError: ..." on stdout) when the
handshake fails, so the test tells a refused key from a crash.
"""
from __future__ import print_function

import sys
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Listener


def read_key(path):
    with open(path, "rb") as f:
        key = f.read()
    # The same rule as trama: one trailing newline is not part of the key.
    if key.endswith(b"\n"):
        key = key[:-1]
        if key.endswith(b"\r"):
            key = key[:-1]
    return key


def client(host, port, key_file, message):
    try:
        conn = Client((host, int(port)), authkey=read_key(key_file))
    except AuthenticationError as e:
        print("AuthenticationError: %s" % (e,))
        return 2
    conn.send_bytes(message.encode("utf-8"))
    print(conn.recv_bytes().decode("utf-8"))
    conn.close()
    return 0


def listen(key_file):
    listener = Listener(("127.0.0.1", 0), authkey=read_key(key_file))
    host, port = listener.address
    sys.stderr.write("listening on %s:%d\n" % (host, port))
    sys.stderr.flush()
    try:
        conn = listener.accept()
    except AuthenticationError as e:
        print("AuthenticationError: %s" % (e,))
        sys.stdout.flush()
        return 2
    try:
        while True:
            conn.send_bytes(conn.recv_bytes())
    except EOFError:
        pass
    conn.close()
    listener.close()
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "client":
        sys.exit(client(*sys.argv[2:]))
    if len(sys.argv) == 3 and sys.argv[1] == "listen":
        sys.exit(listen(sys.argv[2]))
    sys.stderr.write(__doc__)
    sys.exit(64)
