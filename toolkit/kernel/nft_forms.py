"""Rules known by their kernel form: a rule's dumped attributes, less what traffic moves.

Reading what a table holds after another tool committed in its namespace
needs each rule's text, and libnftables makes it by listing the whole table
(for 10,000 rules, most of a second's share of a drift check). The kernel's
own form of the rules (one NFT_MSG_GETRULE dump: a fifth of that) says which
rules are the ones a reading already printed: a rule's attributes, its handle
and position left out and its counters' values zeroed, are its *form*; two
rules of one form are the same rule, printed the same. So a reader that
remembers, for each form it saw printed, the text it printed
(state/rule_forms.py) knows every such rule of a table from its dump alone,
and lists the table only for a rule of a form it never saw.

That holds only where the printed text depends on the form alone. It does
not where a rule names a device by index (`iif`: the name printed is the one
the index has in the namespace when listed), prints another set's elements
(an anonymous set, or any set named but not one of the table's named sets),
or names an object, or holds an expression this module does not know to be
stateless and self-contained: such a rule is never *learnable*, and a table
holding one is listed, as always. Counters are the state that moves with
traffic in the rules netkeel writes: their two values are found by a pattern
(C speed) and zeroed; a learnable rule is one whose pattern matches are
exactly its counters' values (checked attribute by attribute when learned),
and a dumped rule takes a learned form's text only if its matches sit where
the learned rule's did (see Form.matches). Then the two differ at most in
those counters' values: the same rule.

Message layout from <linux/netfilter/nf_tables.h>: a rule's attributes
NFTA_RULE_TABLE 1, _CHAIN 2, _HANDLE 3, _EXPRESSIONS 4 (a list of
NFTA_LIST_ELEM, each NFTA_EXPR_NAME 1 and NFTA_EXPR_DATA 2), _POSITION 6,
_USERDATA 7, _PAD 8; a counter's data NFTA_COUNTER_BYTES 1 and _PACKETS 2
(be64 each); a meta's NFTA_META_KEY 2, a ct's NFTA_CT_KEY 2.
"""

from __future__ import annotations

import hashlib
import re
import struct
from typing import NamedTuple

from .nftgen import attributes as _attributes

_NLA = struct.Struct("=HH")
_SKIPPED = {3, 6, 8}  # NFTA_RULE_HANDLE, _POSITION, _PAD: where the rule is, not what it is
NFTA_RULE_EXPRESSIONS = 4
# A counter as the kernel dumps it: its name, then its data holding the two values.
_COUNTER = re.compile(rb"\x0c\x00\x01\x00counter\x00\x1c\x00\x02[\x00\x80]\x0c\x00\x01\x00(.{8})\x0c\x00\x02\x00(.{8})",
                      re.S)
_ZEROS = bytes(8)
_HANDLE, _POSITION = b"\x0c\x00\x03\x00", b"\x0c\x00\x06\x00"  # their attributes' headers, as dumped
_LOOKUP = b"\x0b\x00\x01\x00lookup\x00"  # a lookup's NFTA_EXPR_NAME attribute, as dumped

# Expressions whose dump is what they do (no state moving with traffic, no
# reference outside the rule): a rule of others only is not learnable. meta
# and ct only with a key printed from the compared bytes alone (not a
# device's index: 4 iif, 5 oif, 33 sdif print the name the index has then).
_LEARNABLE = {b"payload", b"cmp", b"range", b"bitwise", b"immediate", b"counter", b"limit", b"reject", b"log",
              b"nat", b"masq", b"redir", b"notrack", b"queue", b"meta", b"ct", b"lookup"}
_KEYED = {b"meta", b"ct", b"counter"}  # read further than their name
_META_KEYS = {0, 1, 2, 3, 6, 7, 8, 9, 12, 15, 16, 17, 18, 19, 20, 24, 26, 27, 30, 31, 32, 34}
_CT_KEYS = {0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 14, 15, 16, 17, 19, 20, 21, 22, 23}


class Form(NamedTuple):
    """A rule's form: the digest of its attributes (handle and position left
    out, counters' values zeroed, with its family) and where the counter
    pattern matched in them (`matches`: the offsets of the zeroed values)."""
    digest: str
    matches: tuple
    body: bytes  # the attributes digested, counters' values as dumped (for learnable())


def form(family: int, data: bytes, offset: int, end: int) -> Form:
    """The form of one dumped rule (its attributes in data[offset:end], as
    nftgen.rule_handles(raw=) keeps them). Raises ValueError on attributes
    that do not fit. (Made for every rule of a table a drift reads: written
    for speed, a few microseconds a rule.)"""
    # The kernel dumps a rule's table and chain, then its handle and (after the
    # first rule) its position, then the rest: those two cut out at once, else
    # (another order) attribute by attribute.
    unpack = _NLA.unpack_from
    at = offset + ((unpack(data, offset)[0] + 3) & ~3) if offset + 4 <= end else end
    length = unpack(data, at)[0] if at + 4 <= end else 0
    at += (length + 3) & ~3
    if length >= 4 and at + 12 <= end and data[at:at + 4] == _HANDLE:
        rest = at + 24 if data[at + 12:at + 16] == _POSITION else at + 12
        body = data[offset:at] + data[rest:end] if rest <= end else _walked(data, offset, end)
    else:
        body = _walked(data, offset, end)
    masked = body
    matches = ()
    if b"counter\0" in body:
        matches = tuple([m.start(1) for m in _COUNTER.finditer(body)])
        if matches:
            pieces, at = [], 0
            for start in matches:
                pieces += [body[at:start], _ZEROS, body[start + 8:start + 12], _ZEROS]
                at = start + 20
            pieces.append(body[at:])
            masked = b"".join(pieces)
    hasher = _HASHERS.get(family & 0xFF)
    if hasher is None:
        hasher = _HASHERS[family & 0xFF] = hashlib.blake2b(digest_size=16, salt=bytes((family & 0xFF,)))
    hasher = hasher.copy()  # (a copy of one keyed so costs a third less than making one)
    hasher.update(masked)
    return Form(hasher.hexdigest(), matches, body)


_HASHERS: dict = {}  # family -> an empty blake2b salted with it


def _walked(data: bytes, offset: int, end: int, skipped=_SKIPPED) -> bytes:
    """A rule's attributes but those `skipped`, attribute by attribute."""
    return b"".join(data[start - _NLA.size:min(stop + 3 & ~3, end)] for kind, start, stop in _attributes(data, offset, end)
                    if kind not in skipped)


def replayable(data: bytes, offset: int, end: int) -> bytes:
    """A dumped rule's attributes but its table, chain, handle and position:
    what adds it again to a chain of a table of the same name elsewhere
    (nftgen.add_rules). Raises ValueError."""
    return _walked(data, offset, end, _SKIPPED | {1, 2})


def looked_up(body: bytes) -> set | None:
    """The names of the sets a rule's lookups name (a form's body), or None if
    its expressions do not parse. Empty at C speed where no lookup is dumped
    (its name attribute is then nowhere in the body)."""
    if body.find(_LOOKUP) < 0:
        return set()
    names = set()
    try:
        for name, data in _expressions(body):
            if name == b"lookup":
                names.add(data.get(1, b"").rstrip(b"\0").decode())
    except (ValueError, struct.error, UnicodeDecodeError):
        return None
    return names


def learnable(rule: Form) -> bool:
    """Whether a rule's printed text is a function of its form (see above):
    every expression in _LEARNABLE, a meta's or ct's key printed from the bytes
    alone, and the counter pattern matched exactly its counters' values. Read
    attribute by attribute, once per form learned (never on a reading)."""
    body, counted = rule.body, []
    unpack = _NLA.unpack_from
    try:
        for kind, start, stop in _attributes(body, 0, len(body)):
            if kind != NFTA_RULE_EXPRESSIONS:
                continue
            at = start
            while at < stop:
                # An expression (NFTA_LIST_ELEM): its name attribute, then (if any) its data's.
                elem_length, elem = unpack(body, at)
                elem_stop = at + elem_length
                length, name_kind = unpack(body, at + 4)
                if elem & 0x3FFF != 1 or name_kind & 0x3FFF != 1 or elem_length < 8 or elem_stop > stop \
                        or at + 4 + length > elem_stop:
                    return False
                name = body[at + 8:at + 4 + length].rstrip(b"\0")
                if name not in _LEARNABLE:
                    return False
                if name in _KEYED:
                    data = _data(body, at + 4 + ((length + 3) & ~3), elem_stop)
                    if name == b"counter":
                        if sorted(data) != [1, 2] or data[1][1] - data[1][0] != 8 or data[2][1] - data[2][0] != 8 \
                                or data[2][0] != data[1][0] + 12:
                            return False
                        counted.append(data[1][0])
                    elif (3 if name == b"meta" else 4) in data:
                        return False  # a `set` statement: left to the listing
                    else:
                        start_key, stop_key = data.get(2, (0, 0))
                        key = struct.unpack_from(">I", body, start_key)[0] if stop_key - start_key == 4 else None
                        if key not in (_META_KEYS if name == b"meta" else _CT_KEYS):
                            return False
                at += (elem_length + 3) & ~3
    except (ValueError, struct.error):
        return False
    return tuple(counted) == rule.matches


def _data(body: bytes, offset: int, end: int) -> dict:
    """{attribute: (start, stop)} of an expression's data attribute at offset
    (none: {})."""
    if offset >= end:
        return {}
    (length, kind), = [_NLA.unpack_from(body, offset)]
    if kind & 0x3FFF != 2 or offset + length > end:
        raise ValueError("not an expression's data")
    return {k: (a, b) for k, a, b in _attributes(body, offset + _NLA.size, offset + length)}


def _expressions(body: bytes):
    """(name, {attribute: value}) of each expression of a form's body."""
    for kind, start, stop in _attributes(body, 0, len(body)):
        if kind != NFTA_RULE_EXPRESSIONS:
            continue
        for elem, elem_start, elem_stop in _attributes(body, start, stop):
            parts = {k: (a, b) for k, a, b in _attributes(body, elem_start, elem_stop)}
            if elem != 1 or 1 not in parts:
                raise ValueError("an expression without a name")
            name = body[slice(*parts[1])].rstrip(b"\0")
            inner = _attributes(body, *parts[2]) if 2 in parts else ()
            yield name, {k: body[a:b] for k, a, b in inner}
