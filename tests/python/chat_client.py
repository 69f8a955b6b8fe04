"""Console chat client in the style of the course notes, framed.

Wire format: each message is a 4-byte big-endian unsigned length followed by
the UTF-8 payload. The receiver reads exactly 4 header bytes, then loops on
recv until the whole payload has arrived.

As in the notes' client, a listener thread prints every frame received on a
line of its own (flushed at once), while the main thread reads lines from
stdin and sends each one (without its line ending) as one frame. When stdin
ends, the client waits about 1 s for the last replies, then exits 0. If the
server closes the connection, the listener says so on stderr and ends the
program with status 1 at once: the main thread may be waiting for a line
that will never be sent, and a client must not outlive its server (trama-check
--program chat-client checks it).

Usage: chat_client.py HOST PORT
"""

import os
import socket
import struct
import sys
import threading
import time


def recv_exactly(sock, n):
    """Read exactly n bytes; None if the peer closed before the first byte."""
    chunks = []
    remaining = n
    while remaining > 0:
        chunk = sock.recv(remaining)
        if not chunk:
            if remaining == n:
                return None
            raise ConnectionError(
                "peer closed with %d of %d bytes missing" % (remaining, n)
            )
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def send_frame(sock, payload):
    sock.sendall(struct.pack(">I", len(payload)) + payload)


def recv_frame(sock):
    """One frame's payload, or None when the peer closed between frames."""
    header = recv_exactly(sock, 4)
    if header is None:
        return None
    (length,) = struct.unpack(">I", header)
    if length == 0:
        return b""
    payload = recv_exactly(sock, length)
    if payload is None:
        raise ConnectionError("peer closed after a header")
    return payload


def listen(sock, closing):
    """The listener thread: print each frame as it arrives."""
    try:
        while True:
            payload = recv_frame(sock)
            if payload is None:
                if not closing.is_set():
                    server_gone("server closed the connection")
                return
            print(payload.decode("utf-8", errors="replace"), flush=True)
    except OSError as e:
        if not closing.is_set():
            server_gone("connection lost: %s" % e)


def server_gone(why):
    """End the whole program: the main thread is blocked reading stdin,
    which no other thread can interrupt."""
    print(why, file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(1)


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    host, port = sys.argv[1], int(sys.argv[2])
    sock = socket.create_connection((host, port), timeout=20)
    # Timeouts apply to connecting only; the listener waits as long as it takes.
    sock.settimeout(None)
    closing = threading.Event()
    listener = threading.Thread(target=listen, args=(sock, closing), daemon=True)
    listener.start()
    for line in sys.stdin:
        try:
            send_frame(sock, line.rstrip("\r\n").encode("utf-8"))
        except OSError as e:
            print("cannot send: %s" % e, file=sys.stderr, flush=True)
            break
    time.sleep(1.0)
    # Wake the listener and let it finish before the interpreter shuts down
    # (a daemon thread still printing then can abort the exit).
    closing.set()
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # the server already closed it
    listener.join(5)
    sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
