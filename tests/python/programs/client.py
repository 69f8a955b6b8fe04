"""A console client for the notes' servers, written to test
`trama-check --program chat-client` and `--program echo-client`.

Two wire formats, as in the notes:
- framed (the chat `Client`): each message is a 4-byte big-endian unsigned
  length, then the UTF-8 text. Each line typed on stdin is sent as one
  message (without its line ending); a thread prints each message the
  server sends on a line of its own.
- --raw --json (the JSON echo client): each line typed is sent as the UTF-8
  of json.dumps(line), with no header; the client reads until the bytes
  that came back are one whole JSON value, and prints it.

The correct client reads exactly, and ends when the server closes the
connection. With --defect it has exactly one classic defect instead:
- single-recv: (framed) the header is one recv(4), taken as 4 bytes;
- spin: (framed) when recv returns b'' the reading loop goes on;
- one-recv: (--raw --json) the answer is what one recv(4096) returned.

Usage: client.py HOST:PORT [--raw --json] [--defect single-recv|spin|one-recv]
"""

import argparse
import json
import os
import socket
import sys
import threading
import time


def say(text):
    print(text, flush=True)


def recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        part = sock.recv(n - len(data))
        if not part:
            return None
        data += part
    return data


def framed_reader(sock, defect):
    while True:
        if defect == "single-recv":
            header = sock.recv(4)
        else:
            header = recv_exactly(sock, 4)
        if not header:
            if defect == "spin":
                continue
            print("the server closed the connection", file=sys.stderr, flush=True)
            os._exit(0)
        body = recv_exactly(sock, int.from_bytes(header, "big"))
        if body is None:
            if defect == "spin":
                continue
            os._exit(0)
        say(body.decode("utf-8", "replace"))


def framed(sock, defect):
    threading.Thread(target=framed_reader, args=(sock, defect), daemon=True).start()
    for line in sys.stdin:
        payload = line.rstrip("\r\n").encode("utf-8")
        sock.sendall(len(payload).to_bytes(4, "big") + payload)
    time.sleep(1)


def raw_json(sock, defect):
    decoder = json.JSONDecoder()
    for line in sys.stdin:
        sock.sendall(json.dumps(line.rstrip("\r\n")).encode("utf-8"))
        if defect == "one-recv":
            data = sock.recv(4096)
            if not data:
                return
            say(data.decode("utf-8", "replace"))
            continue
        data = b""
        while True:
            part = sock.recv(4096)
            if not part:
                print("the server closed the connection", file=sys.stderr, flush=True)
                return
            data += part
            try:
                value, _ = decoder.raw_decode(data.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                continue
            say(value)
            break


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("addr")
    parser.add_argument("--raw", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--defect", choices=["single-recv", "spin", "one-recv"])
    args = parser.parse_args()
    host, port = args.addr.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    if args.raw:
        raw_json(sock, args.defect)
    else:
        framed(sock, args.defect)
    return 0


if __name__ == "__main__":
    sys.exit(main())
