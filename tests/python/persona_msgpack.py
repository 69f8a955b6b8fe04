"""The notes' Persona, sent as MessagePack instead of pickle: copy it.

pickle runs code from whoever sent the bytes, so it must never be read from
the network; MessagePack carries the same data (a map of strings), any
language reads it, and reading it runs nothing.

Wire format: one framed message (a 4-byte big-endian length, then the
payload) whose payload is the MessagePack map {"nombre": ..., "correo": ...},
as trama-echo send --persona sends it. The reply is read the same way and
printed as a person reads it: "Juan Pérez <jp@ejemplo.com>".

With the msgpack package installed (pip install msgpack) it is used;
without it, a few lines below encode and decode maps of strings, which is
all a Persona needs.

Usage: persona_msgpack.py HOST PORT NOMBRE CORREO
"""

import socket
import struct
import sys

try:
    import msgpack
except ImportError:
    msgpack = None


class Persona:
    def __init__(self, nombre, correo):
        self.nombre = nombre
        self.correo = correo

    def __str__(self):
        return "%s <%s>" % (self.nombre, self.correo)

    def to_dict(self):
        return {"nombre": self.nombre, "correo": self.correo}

    @staticmethod
    def from_dict(d):
        return Persona(d["nombre"], d["correo"])


def pack_str(s):
    data = s.encode("utf-8")
    n = len(data)
    if n < 32:
        return bytes([0xA0 | n]) + data
    if n < 256:
        return b"\xd9" + bytes([n]) + data
    if n < 65536:
        return b"\xda" + struct.pack("!H", n) + data
    return b"\xdb" + struct.pack("!I", n) + data


def pack_map(d):
    """MessagePack for a map of strings to strings (what a Persona is)."""
    if len(d) >= 16:
        raise ValueError("this small encoder writes maps of up to 15 entries")
    out = bytes([0x80 | len(d)])
    for key, value in d.items():
        out += pack_str(key) + pack_str(value)
    return out


def unpack_str(data, at):
    tag = data[at]
    if 0xA0 <= tag <= 0xBF:
        n, at = tag & 0x1F, at + 1
    elif tag == 0xD9:
        n, at = data[at + 1], at + 2
    elif tag == 0xDA:
        (n,), at = struct.unpack_from("!H", data, at + 1), at + 3
    elif tag == 0xDB:
        (n,), at = struct.unpack_from("!I", data, at + 1), at + 5
    else:
        raise ValueError("expected a string at byte %d, found 0x%02x" % (at, tag))
    if at + n > len(data):
        raise ValueError("a string runs past the end of the message")
    return data[at : at + n].decode("utf-8"), at + n


def unpack_map(data):
    if not data or not 0x80 <= data[0] <= 0x8F:
        raise ValueError("expected a small MessagePack map")
    entries, at, out = data[0] & 0x0F, 1, {}
    for _ in range(entries):
        key, at = unpack_str(data, at)
        value, at = unpack_str(data, at)
        out[key] = value
    if at != len(data):
        raise ValueError("%d bytes after the map" % (len(data) - at))
    return out


def encode(persona):
    if msgpack is not None:
        return msgpack.packb(persona.to_dict())
    return pack_map(persona.to_dict())


def decode(payload):
    if msgpack is not None:
        return Persona.from_dict(msgpack.unpackb(payload))
    return Persona.from_dict(unpack_map(payload))


def recv_exactly(sock, n):
    chunks, remaining = [], n
    while remaining > 0:
        chunk = sock.recv(remaining)
        if not chunk:
            raise ConnectionError("peer closed with %d of %d bytes missing" % (remaining, n))
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def main():
    if len(sys.argv) != 5:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        sys.exit(2)
    host, port, nombre, correo = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    payload = encode(Persona(nombre, correo))
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(struct.pack("!I", len(payload)) + payload)
        (length,) = struct.unpack("!I", recv_exactly(sock, 4))
        if length > 1024 * 1024:
            raise ValueError("a %d-byte reply is too large for a Persona" % length)
        print(decode(recv_exactly(sock, length)))


if __name__ == "__main__":
    main()
