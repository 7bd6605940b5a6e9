"""Another tool's forgery, by raw netlink (run inside the namespace): rule
HANDLE of `inet netkeel_guard` made again with its set lookup pointing at a new
anonymous set named NAME (not `__set%d`: the kernel takes any name) holding
ELEMENTS (a JSON list of interface names, quotes and all). nft decides by the
set's flag, not its name, that its elements print inside the rule.

    python3 forge_anonymous_set.py HANDLE NAME ELEMENTS
"""

import json
import socket
import struct
import sys

TABLE = b"netkeel_guard\0"
HEADER, ATTR = struct.Struct("=LHHLL"), struct.Struct("=HH")
NESTED = 0x8000
handle, name, elements = int(sys.argv[1]), sys.argv[2].encode() + b"\0", json.loads(sys.argv[3])
sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)  # NETLINK_NETFILTER
sock.bind((0, 0))
sequence = [100]


def attr(kind: int, value: bytes) -> bytes:
    return ATTR.pack(4 + len(value), kind) + value + b"\0" * (-len(value) % 4)


def attrs(data: bytes) -> list:
    out, at = [], 0
    while at + 4 <= len(data):
        length, kind = ATTR.unpack_from(data, at)
        out.append((kind & 0x3FFF, data[at + 4:at + length]))
        at += (length + 3) & ~3
    return out


def message(kind: int, flags: int, body: bytes, family: int = 1, res_id: int = 0) -> bytes:
    sequence[0] += 1
    body = struct.pack("=BBH", family, 0, socket.htons(res_id)) + body
    return HEADER.pack(HEADER.size + len(body), kind, flags, sequence[0], 0) + body


def dump(kind: int) -> list:
    sock.send(message((10 << 8) | kind, 0x1 | 0x300, attr(1, TABLE)))
    out = []
    while True:
        data, at = sock.recv(1 << 20), 0
        while at < len(data):
            length, mtype = HEADER.unpack_from(data, at)[:2]
            if mtype == 3:
                return out
            if mtype == 2:
                raise OSError(struct.unpack_from("=i", data, at + 16)[0])
            out.append(attrs(data[at + 20:at + length]))
            at += (length + 3) & ~3


rule = next(r for r in dump(7) if any(k == 3 and struct.unpack(">Q", v)[0] == handle for k, v in r))
sets = {dict(s)[2]: s for s in dump(10)}
expressions, old = [], None
for _, element in attrs(dict(rule)[4]):
    parts = attrs(element)
    if dict(parts)[1].rstrip(b"\0") == b"lookup":
        inner = attrs(dict(parts)[2])
        old = dict(inner)[1]
        inner = [(k, name if k == 1 else v) for k, v in inner]
        parts = [(k, b"".join(attr(k2, v2) for k2, v2 in inner) if k == 2 else v) for k, v in parts]
    expressions.append(attr(1 | NESTED, b"".join(attr(k | (NESTED if k == 2 else 0), v) for k, v in parts)))
kept = [(k, v) for k, v in sets[old] if k in (3, 4, 5, 9, 13)]  # flags, key type and length, policy, user data
size = struct.unpack(">I", dict(kept)[5])[0]
new_set = b"".join(attr(k, v) for k, v in [(1, TABLE), (2, name)] + kept + [(10, struct.pack(">I", 7))])
listed = b"".join(attr(1 | NESTED, attr(1 | NESTED, attr(1, e.encode().ljust(size, b"\0")))) for e in elements)
new_elements = b"".join(attr(k, v) for k, v in [(1, TABLE), (2, name), (3 | NESTED, listed), (4, struct.pack(">I", 7))])
new_rule = b"".join(attr(k, v) for k, v in rule if k in (1, 2, 3, 7)) + attr(4 | NESTED, b"".join(expressions))
sock.send(message(0x10, 1, b"", 0, 10)  # batch begin
          + message((10 << 8) | 9, 0x1 | 0x4 | 0x400, new_set)        # NEWSET, create
          + message((10 << 8) | 12, 0x1 | 0x4 | 0x400, new_elements)  # NEWSETELEM
          + message((10 << 8) | 6, 0x1 | 0x4 | 0x100, new_rule)       # NEWRULE, replace
          + message(0x11, 1, b"", 0, 10))                              # batch end
sock.settimeout(1)
failed = 0
try:
    while True:
        data, at = sock.recv(65536), 0
        while at < len(data):
            length, mtype = HEADER.unpack_from(data, at)[:2]
            if mtype == 2 and struct.unpack_from("=i", data, at + 16)[0]:
                failed = 1
            at += (length + 3) & ~3
except socket.timeout:
    pass
sys.exit(failed)
