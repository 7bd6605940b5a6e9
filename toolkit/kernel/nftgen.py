"""Small nfnetlink questions: a ruleset's generation, a table's rule handles, its tables and their flags.

The kernel numbers every committed nftables transaction of a network namespace:
the id moves by exactly one per commit there, and never on traffic, counters,
listings, refused batches or `nft -c` (measured on 6.18 and libnftables 1.0.6).
A namespace deleted and made again starts over, so the id identifies a ruleset
only together with the namespace's cookie (SO_NETNS_COOKIE). Asking costs a few
microseconds against a listing's hundreds of milliseconds for a large ruleset:
that is what lets a no-op apply or a drift check skip the listing (nftables.py).

Message layout from <linux/netfilter/nfnetlink.h> and nf_tables.h: a netlink
header, struct nfgenmsg {family u8, version u8, res_id be16}, then attributes;
the answer is NFT_MSG_NEWGEN carrying NFTA_GEN_ID (be32).
"""

from __future__ import annotations

import errno
import os
import socket
import struct

from .netns import socket_kept_high

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_NEWGEN, NFT_MSG_GETGEN = 15, 16
NFTA_GEN_ID = 1
NLM_F_REQUEST, NLMSG_ERROR, NLMSG_DONE, NLM_F_DUMP = 0x1, 2, 3, 0x300

_HDR = struct.Struct("=LHHLL")
_NFGEN = struct.Struct("=BBH")
_NLA = struct.Struct("=HH")


def open_socket() -> socket.socket:
    """An nfnetlink socket, bound to the namespace the calling thread is in."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_NETFILTER)
    sock.settimeout(2.0)  # the kernel answers at once; never hang a command on it
    return socket_kept_high(sock)


def generation(sock: socket.socket, seq: int = 1) -> int:
    """The namespace's current ruleset generation id. Raises OSError."""
    for kind, data, offset, end in _ask(sock, NFT_MSG_GETGEN, 0, _NFGEN.pack(0, 0, 0), seq):
        if kind == NFT_MSG_NEWGEN:
            found = _gen_id(data, offset, end)
            if found is None:
                raise OSError("NFT_MSG_NEWGEN without NFTA_GEN_ID")
            return found
    raise OSError("no answer to NFT_MSG_GETGEN")


def _ask(sock: socket.socket, msg: int, flags: int, body: bytes, seq: int):
    """Send one nf_tables request; yield (message type, buffer, attributes' start,
    end) of each answer until the last (one, or a dump's). Raises OSError with
    the kernel's errno on an error answer."""
    settled = False
    try:
        sock.send(_HDR.pack(_HDR.size + len(body), (NFNL_SUBSYS_NFTABLES << 8) | msg, NLM_F_REQUEST | flags, seq, 0)
                  + body)
        while True:
            data = sock.recv(1 << 20)
            for offset, length, kind, got_seq in _messages(data):
                if got_seq == seq:
                    settled = kind in (NLMSG_DONE, NLMSG_ERROR) or not flags & NLM_F_DUMP
                    if kind == NLMSG_DONE:
                        return
                    if kind == NLMSG_ERROR:
                        code = _error(data, offset)
                        raise OSError(code, f"nf_tables request {msg} refused (errno {code})")
                    yield kind & 0xFF, data, offset + _HDR.size + _NFGEN.size, offset + length
                    if settled:
                        return
    finally:
        if not settled:
            # Cut off before its last answer (a Ctrl-C in the middle of a dump, a
            # reader that stopped): the rest stays queued for this socket and the
            # kernel refuses it another dump (EBUSY); closed, its owner opens a
            # fresh one (session.Namespace.nfgen_socket).
            sock.close()


def _messages(data: bytes):
    """(offset, length, type, sequence number) of each netlink message in a buffer."""
    offset = 0
    while offset + _HDR.size <= len(data):
        length, kind, _, seq, _ = _HDR.unpack_from(data, offset)
        if length < _HDR.size:
            raise OSError("short nfnetlink message")
        yield offset, length, kind, seq
        offset += (length + 3) & ~3


def _error(data: bytes, offset: int) -> int:
    """The errno of an NLMSG_ERROR message at offset (0: an acknowledgement)."""
    return -struct.unpack_from("=i", data, offset + _HDR.size)[0]


def _gen_id(data: bytes, offset: int, end: int) -> int | None:
    return _u32_attr(data, offset, end, NFTA_GEN_ID)


NFT_MSG_NEWRULE, NFT_MSG_GETRULE = 6, 7
NFTA_RULE_TABLE, NFTA_RULE_CHAIN, NFTA_RULE_HANDLE = 1, 2, 3
FAMILIES = {"inet": 1, "ip": 2, "arp": 3, "netdev": 5, "bridge": 7, "ip6": 10}


def rule_handles(sock: socket.socket, family: str, table: str, seq: int = 2, raw: dict | None = None) -> list:
    """[(chain, handle)] of every rule of one table, in the kernel's order (one
    NFT_MSG_GETRULE dump, reading only each rule's chain and handle: a tenth of
    what a listing costs). With `raw` (a dict), each rule's attributes go into
    it by handle, as (buffer, start, end), for prints_plain(). Raises OSError."""
    body = _NFGEN.pack(FAMILIES[family], 0, 0) + _name_attr(NFTA_RULE_TABLE, table)
    out = []
    for kind, data, offset, end in _ask(sock, NFT_MSG_GETRULE, NLM_F_DUMP, body, seq):
        if kind == NFT_MSG_NEWRULE:
            found = _chain_and_handle(data, offset, end)
            out.append(found)
            if raw is not None:
                raw[found[1]] = (data, offset, end)
    return out


_HANDLE_ATTR = struct.pack("=HH", 12, NFTA_RULE_HANDLE)
_BE64 = struct.Struct(">Q")
_CHAIN_NAMES: dict = {}  # a chain's name attribute as dumped -> its name (the first 1,024 seen)


def _name_attr(kind: int, name: str) -> bytes:
    value = name.encode() + b"\0"
    return _NLA.pack(_NLA.size + len(value), kind) + value + b"\0" * (-len(value) % 4)


def _chain_and_handle(data: bytes, offset: int, end: int) -> tuple:
    # As the kernel dumps a rule: its table, its chain, its handle (read so at
    # once: a dump of 10,000 rules is read for every drift after another tool's
    # commit); else attribute by attribute.
    unpack = _NLA.unpack_from
    if offset + 8 <= end:
        at = offset + ((unpack(data, offset)[0] + 3) & ~3)
        if at + 4 <= end:
            length, kind = unpack(data, at)
            after = at + ((length + 3) & ~3)
            if kind & 0x3FFF == NFTA_RULE_CHAIN and length > 4 and after + 12 <= end \
                    and data[after:after + 4] == _HANDLE_ATTR:
                name = data[at + 4:at + length]
                chain = _CHAIN_NAMES.get(name)
                if chain is None:
                    chain = name.rstrip(b"\0").decode("utf-8", "replace")
                    if len(_CHAIN_NAMES) < 1024:
                        _CHAIN_NAMES[name] = chain
                return chain, _BE64.unpack_from(data, after + 4)[0]
    chain = handle = None
    while offset + _NLA.size <= end and (chain is None or handle is None):
        length, kind = _NLA.unpack_from(data, offset)
        if length < _NLA.size:
            break
        kind &= 0x3FFF
        if kind == NFTA_RULE_CHAIN:
            chain = data[offset + _NLA.size: offset + length].rstrip(b"\0").decode("utf-8", "replace")
        elif kind == NFTA_RULE_HANDLE and length >= _NLA.size + 8:
            handle = struct.unpack_from(">Q", data, offset + _NLA.size)[0]
        offset += (length + 3) & ~3
    if chain is None or handle is None:
        raise OSError("a rule without chain or handle")
    return chain, handle


NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END = 0x10, 0x11
NLM_F_ACK, NLM_F_CREATE, NLM_F_APPEND = 0x4, 0x400, 0x800


def add_rules(sock: socket.socket, family: str, table: str, rules: list, seq: int = 100) -> None:
    """Append rules, each (chain, its attributes but table and chain: an
    expression list, user data), to chains of a table, in one transaction
    (a batch, as libnftables sends). Raises OSError with the kernel's errno if
    it refused any (then none was added)."""
    def message(kind: int, flags: int, number: int, body: bytes) -> bytes:
        return _HDR.pack(_HDR.size + len(body), kind, NLM_F_REQUEST | flags, number, 0) + body

    batch = _NFGEN.pack(0, 0, socket.htons(NFNL_SUBSYS_NFTABLES))
    parts = [message(NFNL_MSG_BATCH_BEGIN, 0, seq, batch)]
    header = _NFGEN.pack(FAMILIES[family], 0, 0) + _name_attr(NFTA_RULE_TABLE, table)
    for i, (chain, attributes) in enumerate(rules, 1):
        parts.append(message((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND | NLM_F_ACK,
                             seq + i, header + _name_attr(NFTA_RULE_CHAIN, chain) + attributes))
    parts.append(message(NFNL_MSG_BATCH_END, 0, seq + len(rules) + 1, batch))
    sock.send(b"".join(parts))
    waiting = set(range(seq + 1, seq + len(rules) + 1))
    while waiting:
        data = sock.recv(1 << 16)
        for offset, _, kind, got_seq in _messages(data):
            if kind == NLMSG_ERROR and got_seq in waiting:
                code = _error(data, offset)
                if code:
                    raise OSError(code, f"a rule refused (errno {code})")
                waiting.discard(got_seq)


NFT_MSG_NEWTABLE, NFT_MSG_GETTABLE = 0, 1
NFTA_TABLE_NAME, NFTA_TABLE_FLAGS = 1, 2
TABLE_FLAGS = {1: "dormant", 2: "owner", 4: "persist"}


def _u32_attr(data: bytes, offset: int, end: int, wanted: int):
    while offset + _NLA.size <= end:
        length, kind = _NLA.unpack_from(data, offset)
        if length < _NLA.size:
            return None
        if kind & 0x3FFF == wanted and length >= _NLA.size + 4:
            return struct.unpack_from(">I", data, offset + _NLA.size)[0]
        offset += (length + 3) & ~3
    return None


def tables(sock: socket.socket, seq: int = 4) -> list:
    """[(family, table, flag names)] of every table of the namespace, from one
    NFT_MSG_GETTABLE dump: libnftables 1.0.6 prints a table's flags ("dormant",
    ...) in JSON from stray memory, and may abort doing it, so netkeel asks the
    kernel. Raises OSError."""
    names = {number: name for name, number in FAMILIES.items()}
    out = []
    for kind, data, offset, end in _ask(sock, NFT_MSG_GETTABLE, NLM_F_DUMP, _NFGEN.pack(0, 0, 0), seq):
        if kind == NFT_MSG_NEWTABLE:
            flags = _u32_attr(data, offset, end, NFTA_TABLE_FLAGS) or 0
            family = names.get(data[offset - _NFGEN.size], str(data[offset - _NFGEN.size]))
            out.append((family, _text_attr(data, offset, end, NFTA_TABLE_NAME),
                        [TABLE_FLAGS.get(bit, f"0x{bit:x}") for bit in (1 << i for i in range(32)) if flags & bit]))
    return out


def _text_attr(data: bytes, offset: int, end: int, wanted: int) -> str | None:
    while offset + _NLA.size <= end:
        length, kind = _NLA.unpack_from(data, offset)
        if length < _NLA.size:
            return None
        if kind & 0x3FFF == wanted:
            return data[offset + _NLA.size: offset + length].rstrip(b"\0").decode("utf-8", "replace")
        offset += (length + 3) & ~3
    return None


# What a table holds, by name (for a flagged table, whose JSON listing libnftables
# 1.0.6 gets wrong: its parts are listed one by one instead, see nftables.py).
NFT_MSG_NEWCHAIN, NFT_MSG_GETCHAIN = 3, 4
NFT_MSG_NEWSET, NFT_MSG_GETSET = 9, 10
NFT_MSG_NEWOBJ, NFT_MSG_GETOBJ = 18, 19
NFT_MSG_NEWFLOWTABLE, NFT_MSG_GETFLOWTABLE = 22, 23
NFTA_CHAIN_TABLE, NFTA_CHAIN_NAME = 1, 3
NFTA_SET_TABLE, NFTA_SET_NAME, NFTA_SET_FLAGS = 1, 2, 3
NFTA_OBJ_TABLE, NFTA_FLOWTABLE_TABLE = 1, 1
NFT_SET_ANONYMOUS, NFT_SET_MAP, NFT_SET_OBJECT = 0x1, 0x8, 0x40


def table_parts(sock: socket.socket, family: str, table: str, seq: int = 6) -> dict:
    """{"chains": [name], "sets": [name], "maps": [name], "others": n} of one
    table: its chains, its named sets and maps (anonymous ones belong to rules),
    and how many stateful objects and flowtables it has. Raises OSError."""
    body = _NFGEN.pack(FAMILIES[family], 0, 0)
    out = {"chains": [], "sets": [], "maps": [], "others": 0}
    for kind, data, offset, end in _ask(sock, NFT_MSG_GETCHAIN, NLM_F_DUMP, body, seq):
        if kind == NFT_MSG_NEWCHAIN and _text_attr(data, offset, end, NFTA_CHAIN_TABLE) == table:
            out["chains"].append(_text_attr(data, offset, end, NFTA_CHAIN_NAME))
    for kind, data, offset, end in _ask(sock, NFT_MSG_GETSET, NLM_F_DUMP, body, seq + 1):
        if kind == NFT_MSG_NEWSET and _text_attr(data, offset, end, NFTA_SET_TABLE) == table:
            flags = _u32_attr(data, offset, end, NFTA_SET_FLAGS) or 0
            if not flags & NFT_SET_ANONYMOUS:
                which = "maps" if flags & (NFT_SET_MAP | NFT_SET_OBJECT) else "sets"
                out[which].append(_text_attr(data, offset, end, NFTA_SET_NAME))
    out["others"] = _others(sock, body, table, seq + 2)
    return out


def _others(sock: socket.socket, body: bytes, table: str, seq: int) -> int:
    """How many stateful objects and flowtables a table has (two dumps: `body`
    names the family; seq and seq + 1)."""
    count = 0
    for msg, answer, attr, step in ((NFT_MSG_GETOBJ, NFT_MSG_NEWOBJ, NFTA_OBJ_TABLE, 0),
                                    (NFT_MSG_GETFLOWTABLE, NFT_MSG_NEWFLOWTABLE, NFTA_FLOWTABLE_TABLE, 1)):
        for kind, data, offset, end in _ask(sock, msg, NLM_F_DUMP, body, seq + step):
            if kind == answer and _text_attr(data, offset, end, attr) == table:
                count += 1
    return count


# -- what strings a rule prints ------------------------------------------------
#
# nft prints the strings a rule holds raw between quotes (a comment, a log
# prefix, an interface's name), so a string holding a quote can print as more
# of the rule, or as another rule (nft_text.py). A text listing of rules that
# print strings is followed only where the kernel's own form of each such rule
# shows no string it prints holding a quote: then each quoted part of the line
# is exactly one string (a line break in one leaves a line with an odd number
# of quotes, which nft_text.listed_table refuses). Most rules hold no quote
# byte at all, found at C speed; one that does (an address or port may hold
# the byte 0x22) is read attribute by attribute, conservatively: anything not
# known to print no string, or a plain one, makes it "not plain", and the
# table is listed as JSON, as ever (never wrong, only slower). Strings that
# come from elsewhere: a device's name (`iif`), which the caller checks among
# the namespace's devices; the elements of a set the rule looks up, printed in
# it unless it is one of the table's named sets (listed by the caller, as
# JSON): a rule looking up any set (`{ "a", "b" }`, an anonymous set of any
# name) or naming an object is read attribute by attribute too, and is plain
# only with named sets. (Names nft looks up in the host's own files, users',
# groups', realms', are the host's: out of any namespace's reach.)

NFTA_RULE_EXPRESSIONS, NFTA_RULE_USERDATA = 4, 7
NFTA_LIST_ELEM, NFTA_EXPR_NAME, NFTA_EXPR_DATA, NFTA_DATA_VALUE = 1, 1, 2, 1
UDATA_RULE_COMMENT = 0  # libnftnl's NFTNL_UDATA_RULE_COMMENT: a NUL-ended string

# Loads into a register (meta and ct keys, <linux/netfilter/nf_tables.h>) whose
# value a comparison prints as a number, an address, a keyword or a device's
# name (NUMBER), or as the compared bytes' string (STRING); a key in neither
# (a user's or a group's name, labels, ...) is not known to print plain.
_META_NUMBER = {0, 1, 2, 3, 4, 5, 8, 9, 12, 15, 16, 19, 20, 24, 30, 31, 32, 33}
_META_STRING = {6, 7, 17, 18, 26, 27, 34}  # iifname oifname ibrname obrname iifkind oifkind sdifname
_CT_NUMBER = {0, 1, 2, 3, 5, 7, 8, 9, 10, 11, 12, 14, 15, 16, 17, 19, 20, 21, 22, 23}
_CT_STRING = {6}                           # helper
# Expressions printing no string of their own (a log's prefix is checked).
_PLAIN_EXPRESSIONS = {b"payload", b"meta", b"ct", b"cmp", b"range", b"lookup", b"immediate", b"bitwise", b"counter",
                      b"limit", b"reject", b"log", b"quota", b"nat", b"masq", b"redir", b"notrack", b"queue"}
NUMBER, STRING = "number", "string"


def prints_plain(data: bytes, offset: int, end: int, named_sets=frozenset()) -> bool:
    """Whether every string a rule prints (its attributes as rule_handles(raw=)
    keeps them) holds no quote, see above; `named_sets`: the names of the
    table's named sets, whose elements the rule does not print."""
    # A quote, or an expression naming a set or an object (whose contents print
    # in the rule), and the rule is read attribute by attribute. (Four finds: a
    # third of one regular expression's time.)
    if data.find(b'"', offset, end) < 0 and data.find(b"lookup\0", offset, end) < 0 \
            and data.find(b"dynset\0", offset, end) < 0 and data.find(b"objref\0", offset, end) < 0:
        return True
    try:
        return _plain_rule(data, offset, end, {name.encode() for name in named_sets})
    except (ValueError, struct.error, UnicodeDecodeError):
        return False


def _plain_rule(data: bytes, offset: int, end: int, named_sets: set) -> bool:
    for kind, start, stop in attributes(data, offset, end):
        if kind == NFTA_RULE_USERDATA and not _plain_userdata(data[start:stop]):
            return False
        if kind != NFTA_RULE_EXPRESSIONS:
            continue
        registers: dict = {}  # register -> NUMBER or STRING: what loaded it last (None: neither)
        for elem, elem_start, elem_stop in attributes(data, start, stop):
            parts = {k: (a, b) for k, a, b in attributes(data, elem_start, elem_stop)}
            if elem != NFTA_LIST_ELEM or NFTA_EXPR_NAME not in parts:
                return False
            name = data[slice(*parts[NFTA_EXPR_NAME])].rstrip(b"\0")
            if name not in _PLAIN_EXPRESSIONS:
                return False
            body = {k: data[a:b] for k, a, b in attributes(data, *parts[NFTA_EXPR_DATA])} \
                if NFTA_EXPR_DATA in parts else {}
            if not _plain_expression(name, body, registers, named_sets):
                return False
    return True


def _plain_expression(name: bytes, body: dict, registers: dict, named_sets: set) -> bool:
    """Whether one expression prints only plain strings, given what loaded each
    register before it (`registers`, updated) and the table's named sets."""
    if name in (b"payload", b"immediate"):
        if 1 in body:  # its destination register (an immediate's verdict goes to register 0)
            registers[_u32(body[1])] = NUMBER if name == b"payload" else None
        return True
    if name in (b"meta", b"ct"):
        key = _u32(body.get(2, b""))
        number, string = (_META_NUMBER, _META_STRING) if name == b"meta" else (_CT_NUMBER, _CT_STRING)
        if (3 if name == b"meta" else 4) in body:  # NFTA_META_SREG, NFTA_CT_SREG: a `set` statement
            return key in number
        if 1 not in body:
            return False
        registers[_u32(body[1])] = NUMBER if key in number else STRING if key in string else None
        return True
    if name in (b"cmp", b"range"):
        number = registers.get(_u32(body.get(1, b""))) == NUMBER
        for value in (body.get(3), body.get(4)):  # NFTA_CMP_DATA; NFTA_RANGE_FROM_DATA, _TO_DATA
            if value is not None:
                inner = {k: value[a:b] for k, a, b in attributes(value, 0, len(value))}
                if set(inner) != {NFTA_DATA_VALUE}:
                    return False
                # A number's bytes print as a number; more than one register's
                # worth may run on into the next register's (a concatenation,
                # `tcp dport . iifname`): then read as a string, conservatively.
                if not (number and len(inner[NFTA_DATA_VALUE]) <= 16) and not _plain_text(inner[NFTA_DATA_VALUE]):
                    return False
        return True
    if name == b"lookup":
        if body.get(1, b"").rstrip(b"\0") not in named_sets:
            return False  # another set's elements print in the rule, and are not in it
        if 3 in body:  # a map's value, printed by the map's own type
            registers[_u32(body[3])] = None
        return True
    if name == b"bitwise":
        if registers.get(_u32(body.get(1, b""))) != NUMBER:
            return False  # a mask of a string's bytes
        if 2 in body:
            registers[_u32(body[2])] = NUMBER
        return True
    if name == b"log":
        return 2 not in body or _plain_text(body[2])  # NFTA_LOG_PREFIX
    return True  # counter, limit, reject, quota, nat, masq, redir, notrack, queue: numbers and keywords


def _plain_userdata(value: bytes) -> bool:
    """A rule's user data: its comment alone (libnftnl's type-length-value
    records), a plain string."""
    at = 0
    while at < len(value):
        if at + 2 > len(value):
            return False
        kind, length = value[at], value[at + 1]
        if kind != UDATA_RULE_COMMENT or at + 2 + length > len(value) or not _plain_text(value[at + 2:at + 2 + length]):
            return False
        at += 2 + length
    return True


def _plain_text(value: bytes) -> bool:
    """Whether bytes print as a plain string: up to the first NUL (as nft
    prints them) no quote, and nothing but NULs after it."""
    text, _, rest = value.partition(b"\0")
    return b'"' not in text and not rest.strip(b"\0")


def plain_name(name) -> bool:
    """Whether a device's name prints plain (no quote in it)."""
    return isinstance(name, str) and '"' not in name


def attributes(data: bytes, offset: int, end: int):
    """(type, start, end) of each attribute between offset and end; ValueError
    on one that does not fit."""
    while offset < end:
        if offset + _NLA.size > end:
            raise ValueError("a short attribute")
        length, kind = _NLA.unpack_from(data, offset)
        if length < _NLA.size or offset + length > end:
            raise ValueError("an attribute that does not fit")
        yield kind & 0x3FFF, offset + _NLA.size, offset + length
        offset += (length + 3) & ~3


def _u32(value: bytes) -> int:
    if len(value) < 4:
        raise ValueError("a short number")
    return struct.unpack_from(">I", value)[0]


# -- a table's recipe (nft_recipes.py): its dump, and the batch sent -----------

NFT_MSG_GETSETELEM, NFT_MSG_NEWSETELEM = 13, 12
NFTA_SET_ELEM_LIST_TABLE, NFTA_SET_ELEM_LIST_SET = 1, 2
SOL_NETLINK, NETLINK_CAP_ACK = 270, 10
SO_SNDBUFFORCE, SO_RCVBUFFORCE = 32, 33


def request(kind: int, flags: int, family: int, body: bytes, seq: int = 0) -> bytes:
    """One nf_tables request of a batch: its header, nfgenmsg and attributes."""
    return _HDR.pack(_HDR.size + _NFGEN.size + len(body), (NFNL_SUBSYS_NFTABLES << 8) | kind,
                     NLM_F_REQUEST | flags, seq, 0) + _NFGEN.pack(family, 0, 0) + body


def last_acknowledged(messages: list) -> list:
    """`messages` (requests, bytes) with the last asking for an acknowledgement:
    the one answer that says the batch was taken whole."""
    length, kind, flags, seq, pid = _HDR.unpack_from(messages[-1])
    return messages[:-1] + [_HDR.pack(length, kind, flags | NLM_F_ACK, seq, pid) + messages[-1][_HDR.size:]]


def transaction(parts: list) -> bytes:
    """`parts` (requests, bytes) framed as one nf_tables transaction: all or nothing."""
    subsystem = _NFGEN.pack(0, 0, socket.htons(NFNL_SUBSYS_NFTABLES))
    return b"".join([_HDR.pack(_HDR.size + _NFGEN.size, NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 0, 0) + subsystem,
                     *parts, _HDR.pack(_HDR.size + _NFGEN.size, NFNL_MSG_BATCH_END, NLM_F_REQUEST, 0, 0) + subsystem])


def table_dump(sock: socket.socket, family: str, table: str, seq: int = 20, rules=None) -> dict:
    """One table as the kernel dumps it: {"table": its attributes, "chains",
    "sets", "elements" (each set's element messages), "rules": [attributes],
    in the kernel's order, "others": its stateful objects and flowtables}
    (each message's attributes region, as bytes). `rules`: (generation, the
    rules' attributes as another dump of this table gave them), taken for its
    own if the ruleset is at that generation before and after this dump.
    Raises OSError."""
    if rules is not None:
        made_at, given = rules
        if generation(sock, seq) == made_at:
            out = _table_dump(sock, family, table, seq + 1, given)
            if generation(sock, seq) == made_at:
                return out
    return _table_dump(sock, family, table, seq + 1, None)


def _table_dump(sock: socket.socket, family: str, table: str, seq: int, rules) -> dict:
    number = FAMILIES[family]
    body = _NFGEN.pack(number, 0, 0)
    out = {"table": None, "chains": [], "sets": [], "elements": [], "rules": [], "others": 0}
    for kind, data, offset, end in _ask(sock, NFT_MSG_GETTABLE, 0, body + _name_attr(NFTA_TABLE_NAME, table), seq):
        if kind == NFT_MSG_NEWTABLE:
            out["table"] = data[offset:end]
    if out["table"] is None:
        raise OSError("no such table")
    for kind, data, offset, end in _ask(sock, NFT_MSG_GETCHAIN, NLM_F_DUMP, body, seq + 1):
        if kind == NFT_MSG_NEWCHAIN and _text_attr(data, offset, end, NFTA_CHAIN_TABLE) == table:
            out["chains"].append(data[offset:end])
    names = []
    for kind, data, offset, end in _ask(sock, NFT_MSG_GETSET, NLM_F_DUMP, body, seq + 2):
        if kind == NFT_MSG_NEWSET and _text_attr(data, offset, end, NFTA_SET_TABLE) == table:
            out["sets"].append(data[offset:end])
            names.append(_text_attr(data, offset, end, NFTA_SET_NAME))
    for i, name in enumerate(names):
        ask = body + _name_attr(NFTA_SET_ELEM_LIST_TABLE, table) + _name_attr(NFTA_SET_ELEM_LIST_SET, name)
        for kind, data, offset, end in _ask(sock, NFT_MSG_GETSETELEM, NLM_F_DUMP, ask, seq + 3 + i):
            if kind == NFT_MSG_NEWSETELEM:
                out["elements"].append(data[offset:end])
    seq += 3 + len(names)
    if rules is not None:
        out["rules"] = list(rules)
    else:
        for kind, data, offset, end in _ask(sock, NFT_MSG_GETRULE, NLM_F_DUMP,
                                            body + _name_attr(NFTA_RULE_TABLE, table), seq):
            if kind == NFT_MSG_NEWRULE:
                out["rules"].append(data[offset:end])
    out["others"] = _others(sock, body, table, seq + 1)
    return out


def commit(sock: socket.socket, batch: bytes, echoes: list | None = None) -> None:
    """Send one nf_tables batch (nft_recipes.batch) and take every answer it
    got. The kernel handles a batch inside the send: when it returns, the
    transaction is committed or refused, and its answers are queued (an
    acknowledgement asked for, an error for each request refused, and the
    echo of each rule a request asked it of: appended to `echoes`, their
    attributes, in order). Raises OSError with the kernel's first errno if
    any was refused (then nothing was committed; the caller compares the
    generation to be sure)."""
    sock.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, len(batch) + 65536)  # root: larger than wmem_max
    sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)  # an error names the request, not its whole body
    sock.send(batch)
    first, acknowledged = 0, 0
    timeout = sock.gettimeout()
    sock.settimeout(0)  # what is queued, then no more: the batch was handled in the send
    try:
        while True:
            try:
                data = sock.recv(1 << 16)
            except BlockingIOError:
                break
            except OSError as exc:  # ENOBUFS: more errors than the buffer held
                first = first or exc.errno or 1
                break
            for offset, length, kind, _ in _messages(data):
                if kind == NLMSG_ERROR:
                    code = _error(data, offset)
                    first = first or code
                    acknowledged += not code
                elif echoes is not None and kind == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE:
                    echoes.append(data[offset + _HDR.size + _NFGEN.size:offset + length])
    finally:
        sock.settimeout(timeout)
    if first:
        raise OSError(first, f"the batch was refused (errno {first}: {os.strerror(first)})")
    if not acknowledged:
        # A batch the kernel could not parse is dropped whole without a word.
        raise OSError(errno.ENODATA, "the batch got no answer")
