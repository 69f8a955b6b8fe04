"""Defect: the server leaves a daemon behind.

A correct echo server (the same as correct.py) that, before it listens,
starts a helper in a session of its own (setsid), as a program that
daemonizes would: the helper is no longer in the server's process group,
so stopping the group does not reach it. It writes its pid to the file
named by --pid-file (and carries that path in its arguments) and sleeps. trama-check must stop it anyway.

Usage: daemon.py --pid-file PATH [--port PORT]
"""

import os
import subprocess
import sys

from common import echo_frames, listen, serve_threads


def main():
    argv = sys.argv[1:]
    i = argv.index("--pid-file")
    pid_file = argv[i + 1]
    del argv[i : i + 2]
    sys.argv[1:] = argv
    helper = subprocess.Popen(
        # The pid file's path as an argument: a test finds the helper by it,
        # whatever PID namespace the pid written below belongs to.
        [sys.executable, "-c", "import time\nwhile True: time.sleep(60)", pid_file],
        start_new_session=True,
    )
    with open(pid_file, "w") as f:
        f.write(str(helper.pid))
    serve_threads(listen(), echo_frames)


if __name__ == "__main__":
    main()
