"""Correct, with a fixed pool of threads instead of one thread per client.

A ThreadPoolExecutor of 64 workers serves the clients; its idle workers stay
alive after the clients leave, but their number never grows. Reads are exact
and the size is limited as in correct.py. trama-check passes it on every
check: threads-released sees threads stay, sends more clients, and sees the
count not grow.

Usage: pool.py [--port PORT]
"""

from concurrent.futures import ThreadPoolExecutor

from common import echo_frames, listen, serve_one

WORKERS = 64


if __name__ == "__main__":
    server = listen()
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        while True:
            conn, _ = server.accept()
            pool.submit(serve_one, conn, echo_frames)
