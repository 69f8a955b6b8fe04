"""Defect: one client at a time.

Accepts a client and serves it until it leaves before accepting the next,
like the notes' first echo server run in a loop. Reads are exact and the size
is limited; a client that errors only ends its own turn. trama-check fails it
on concurrent-clients (and skips the checks that presume concurrency).

Usage: serial.py [--port PORT]
"""

from common import echo_frames, listen, serve_one

if __name__ == "__main__":
    server = listen()
    while True:
        conn, _ = server.accept()
        serve_one(conn, echo_frames)
