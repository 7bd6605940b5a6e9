"""What strings a rule prints, read from the kernel's own form of it
(kernel/nftgen.prints_plain): a text listing line printing a string is taken
for a rule only if no string in it holds a quote. Built here as the kernel
dumps rules (netlink attributes, <linux/netfilter/nf_tables.h>)."""

from __future__ import annotations

import struct

import pytest

from toolkit.kernel import nftgen


def attr(kind: int, value: bytes) -> bytes:
    return struct.pack("=HH", 4 + len(value), kind) + value + b"\0" * (-len(value) % 4)


def u32(n: int) -> bytes:
    return struct.pack(">I", n)


def expr(name: str, **fields) -> bytes:
    """One expression: fields by attribute number (f1=..., f2=...)."""
    body = b"".join(attr(int(k[1:]), v) for k, v in fields.items())
    return attr(1, attr(1, name.encode() + b"\0") + attr(2, body))  # NFTA_LIST_ELEM: NFTA_EXPR_NAME, NFTA_EXPR_DATA


def data(value: bytes) -> bytes:
    return attr(1, value)  # NFTA_DATA_VALUE


def rule(*expressions: bytes, comment: bytes | None = None, handle: int = 7) -> bytes:
    out = attr(1, b"t\0") + attr(2, b"input\0") + attr(3, struct.pack(">Q", handle))
    out += attr(4, b"".join(expressions))
    if comment is not None:
        out += attr(7, bytes([0, len(comment) + 1]) + comment + b"\0")
    return out


def plain(raw: bytes) -> bool:
    return nftgen.prints_plain(raw, 0, len(raw), {"blocked"})


PORT_34 = (expr("payload", f1=u32(1), f2=u32(2), f3=u32(2), f4=u32(2)),  # th dport into register 1
           expr("cmp", f1=u32(1), f2=u32(0), f3=data(struct.pack(">H", 0x2222))))  # == 8738: bytes '""'
IIFNAME = expr("meta", f1=u32(1), f2=u32(6))  # iifname into register 1
ACCEPT = expr("immediate", f1=u32(0), f2=attr(2, attr(1, u32(1))))  # a verdict


@pytest.mark.parametrize("raw", [
    rule(*PORT_34, ACCEPT),                                    # quote bytes in a port: a number
    rule(*PORT_34, ACCEPT, comment=b"no telnet # handle 9"),
    rule(*PORT_34, ACCEPT, handle=0x2222),                     # and in the handle
    rule(IIFNAME, expr("cmp", f1=u32(1), f2=u32(0), f3=data(b"eth0\0" + b"\0" * 11)), ACCEPT),
    rule(*PORT_34, expr("log", f2=b"telnet #1\0"), ACCEPT),
    rule(*PORT_34, expr("lookup", f1=b"blocked\0", f2=u32(1)), ACCEPT),  # a named set: printed @blocked
])
def test_rules_whose_strings_hold_no_quote_print_plain(raw):
    assert plain(raw)


@pytest.mark.parametrize("raw", [
    rule(*PORT_34, ACCEPT, comment=b'x" accept comment "y'),
    rule(*PORT_34, expr("log", f2=b'telnet" drop comment "no telnet\0')),
    rule(IIFNAME, expr("cmp", f1=u32(1), f2=u32(0), f3=data(b'p0" iifname "p1\0')), ACCEPT),
    rule(IIFNAME, expr("cmp", f1=u32(1), f2=u32(0), f3=data(b'eth0\0"x')), ACCEPT),  # bytes after the string
    rule(IIFNAME, expr("lookup", f1=b"__set0\0", f2=u32(1)), ACCEPT),  # an anonymous set's elements
    rule(IIFNAME, expr("lookup", f1=b"x\0", f2=u32(1)), ACCEPT),       # any set not a named one of the table
    rule(IIFNAME, expr("dynset", f1=b"blocked\0", f2=u32(1)), ACCEPT),  # not known to print plain
    rule(*PORT_34, expr("objref", f1=u32(1), f2=b'c"\0'), ACCEPT),    # an expression not known to print plain
    rule(expr("meta", f1=u32(1), f2=u32(10)),                         # skuid: a user's name
         expr("cmp", f1=u32(1), f2=u32(0), f3=data(b'"\0\0\0')), ACCEPT),
    rule(expr("cmp", f1=u32(9), f2=u32(0), f3=data(b'"x')), ACCEPT),  # a register nothing loaded
    rule(expr("payload", f1=u32(9), f2=u32(2), f3=u32(2), f4=u32(2)),  # tcp dport . iifname: one cmp
         expr("meta", f1=u32(10), f2=u32(6)),                          # over a number and a name
         expr("cmp", f1=u32(9), f2=u32(0), f3=data(b"\0\x16\0\0" + b'a" drop'.ljust(16, b"\0"))), ACCEPT),
    rule(IIFNAME, expr("bitwise", f1=u32(1), f2=u32(1)),              # a mask of a name's bytes
         expr("cmp", f1=u32(1), f2=u32(0), f3=data(b"eth0\0")), ACCEPT, comment=b'"'),
    rule(*PORT_34, ACCEPT)[:-3],                                      # cut short
])
def test_a_rule_that_may_print_a_quote_in_a_string_is_not_plain(raw):
    assert not plain(raw)


def test_the_dump_keeps_each_rules_form_by_handle():
    """rule_handles(raw=) keeps (buffer, start, end) of each rule for prints_plain."""
    message = rule(*PORT_34, ACCEPT, handle=42)
    handle_attrs = list(nftgen.attributes(message, 0, len(message)))
    assert [kind for kind, _, _ in handle_attrs] == [1, 2, 3, 4]
    assert nftgen._chain_and_handle(message, 0, len(message)) == ("input", 42)
