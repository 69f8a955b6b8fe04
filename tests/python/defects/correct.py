"""A correct echo server: exact reads, a size limit, a thread per client.

Reads exactly 4 header bytes and then exactly the announced payload (however
many recv() calls that takes), refuses headers over 16 MiB by closing the
connection, echoes empty messages, and lets a client's thread end when the
client leaves. trama-check passes it on every check.

Usage: correct.py [--port PORT]
"""

from common import echo_frames, listen, serve_threads

if __name__ == "__main__":
    serve_threads(listen(), echo_frames)
