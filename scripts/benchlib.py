"""What the benchmark scripts share: where the checkout is, and a free loopback port.

The scripts run from the checkout (`python3 scripts/bench_suite.py`), so Python finds this module
beside them without installing anything.
"""

import os
import socket

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    """A port on 127.0.0.1 that nothing listens on right now.

    The kernel picks it; the socket is closed before the server under test binds it, so a
    race is possible but rare on a quiet bench machine.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
