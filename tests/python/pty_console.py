"""Types into a trama console through a pseudo-terminal, as a person would,
while another client talks: what arrives must print above the line being
typed, and the typed line must come back below it, whole.

Usage: pty_console.py CHAT_BIN ADDR

Runs `CHAT_BIN join --addr ADDR --name ana` in a pty, types "mensaje a
medio" (no Enter), has a second client (bea, a raw framed socket) say
"hola ana", then finishes the line with " escribir" and Enter. Exits 0 and
prints "ok" if bea receives "ana: mensaje a medio escribir" as one message
and ana's screen shows bea's line with the half-typed text redrawn after it;
otherwise prints what went wrong (and the screen) and exits 1.
Unix only (the pty module).
"""

import os
import pty
import select
import socket
import struct
import subprocess
import sys
import termios
import time

DEADLINE = 20.0


def fail(why, screen=b""):
    print("FAIL: " + why)
    print("screen: %r" % screen)
    sys.exit(1)


def send_frame(sock, payload):
    sock.sendall(struct.pack(">I", len(payload)) + payload)


def read_frame(sock):
    def exactly(n):
        data = b""
        while len(data) < n:
            part = sock.recv(n - len(data))
            if not part:
                raise EOFError("closed after %d of %d bytes" % (len(data), n))
            data += part
        return data

    (n,) = struct.unpack(">I", exactly(4))
    return exactly(n)


def main():
    chat, addr = sys.argv[1], sys.argv[2]
    host, port = addr.rsplit(":", 1)
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [chat, "join", "--addr", addr, "--name", "ana"],
        stdin=follower, stdout=follower, stderr=subprocess.PIPE, close_fds=True,
    )
    os.close(follower)
    screen = b""

    def read_until(text):
        nonlocal screen
        end = time.monotonic() + DEADLINE
        while text not in screen:
            left = end - time.monotonic()
            if left <= 0:
                fail("no %r on the screen within %ss" % (text, DEADLINE), screen)
            ready, _, _ = select.select([leader], [], [], left)
            if ready:
                try:
                    screen += os.read(leader, 4096)
                except OSError:
                    fail("the console's terminal closed", screen)

    read_until(b"you are now ana")
    bea = socket.create_connection((host, int(port)), timeout=DEADLINE)
    send_frame(bea, b"/nick bea")
    while b"you are now bea" not in read_frame(bea):
        pass
    read_until(b"is now bea")
    # Type only once the editor holds the terminal (canonical mode off):
    # typed earlier, the kernel would echo the text itself before the
    # editor reads it, and the screen would show it twice.
    end = time.monotonic() + DEADLINE
    while termios.tcgetattr(leader)[3] & termios.ICANON:
        if time.monotonic() > end:
            fail("the console never took the terminal for its editor", screen)
        time.sleep(0.02)
    os.write(leader, b"mensaje a medio")
    read_until(b"mensaje a medio")
    typed_at = screen.rindex(b"mensaje a medio")
    send_frame(bea, b"hola ana")
    read_until(b"bea: hola ana")
    arrived_at = screen.rindex(b"bea: hola ana")
    if arrived_at < typed_at:
        fail("bea's line came before the typing", screen)
    # The message must not land inside the typed text, as the notes'
    # client's print does ("mensaje a mediobea: hola ana").
    if b"mediobea" in screen:
        fail("bea's line was printed into the typed text", screen)
    # The half-typed line is drawn again below the message.
    end = time.monotonic() + DEADLINE
    while b"mensaje a medio" not in screen[arrived_at:]:
        if time.monotonic() > end:
            fail("the half-typed line was not redrawn after bea's message", screen)
        ready, _, _ = select.select([leader], [], [], 0.1)
        if ready:
            screen += os.read(leader, 4096)
    os.write(leader, b" escribir\r")
    while True:
        got = read_frame(bea)
        if got.startswith(b"ana: "):
            break
    if got != b"ana: mensaje a medio escribir":
        fail("bea got %r" % got, screen)
    # Ctrl-D ends the input; the console leaves.
    os.write(leader, b"\x04")
    try:
        proc.wait(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        proc.kill()
        fail("the console did not end after Ctrl-D", screen)
    print("ok")


if __name__ == "__main__":
    main()
