"""JSON client for the notes' echo server, unframed dialect.

Wire format: no framing at all. The client sends the UTF-8 bytes of
json.dumps({1: "Hola", 2: "Chao"}) with sendall, reads the reply with a
single recv(4096), and json.loads it. It prints the dict it got back, as JSON.

Usage: echo_json_client.py HOST PORT
"""

import json
import socket
import sys


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    host, port = sys.argv[1], int(sys.argv[2])
    data = {1: "Hola", 2: "Chao"}
    with socket.create_connection((host, port), timeout=20) as s:
        s.sendall(json.dumps(data).encode("utf-8"))
        reply = s.recv(4096)
    received = json.loads(reply.decode("utf-8"))
    print(json.dumps(received))
    return 0


if __name__ == "__main__":
    sys.exit(main())
