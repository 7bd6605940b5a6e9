"""A table's recipe (kernel/nft_recipes.py), built from dumped attributes:
what is not content is left out, what would not mean the same elsewhere has
no recipe, and the batch frames each table's replacement."""

from __future__ import annotations

import json
import socket
import struct

import pytest

from toolkit.kernel import nft_recipes as R, nftgen
from toolkit.kernel.nftgen import attributes

from test_nft_forms import INET, TCP, accept, counter, meta, cmp, nla, rule, string, u32, u64

NESTED = 0x8000


def table(name: str = "netkeel_filter") -> bytes:
    return string(1, name) + u32(3, 2) + u64(4, 7) + u32(2, 0)  # name, use, handle, flags


def chain(name: str = "input") -> bytes:
    hook = nla(4 | NESTED, u32(1, 1) + u32(2, 0))
    return (string(1, "netkeel_filter") + string(3, name) + u64(2, 1) + hook + u32(5, 1) + string(7, "filter")
            + u32(10, 1) + u32(6, 1) + nla(8 | NESTED, u64(1, 99) + u64(2, 5)))


def a_set(name: str = "blocked", flags: int = 0, key_type: int = 7, data_type: int | None = None) -> bytes:
    out = string(1, "netkeel_filter") + string(2, name) + u64(16, 2) + u32(4, key_type) + u32(5, 4)
    if flags:
        out += u32(3, flags)
    if data_type is not None:
        out += u32(6, data_type) + u32(7, 4)
    return out + string(19, "0xffffffff82508740") + u32(20, 2)


def elements(*addresses: bytes, name: str = "blocked") -> bytes:
    listed = b"".join(nla(1 | NESTED, nla(1 | NESTED, nla(1, a))) for a in addresses)
    return string(1, "netkeel_filter") + string(2, name) + nla(3 | NESTED, listed)


def dump(**parts) -> dict:
    out = {"table": table(), "chains": [chain()], "sets": [a_set()],
           "elements": [elements(b"\xc0\x00\x02\x01", b"\xc0\x00\x02\x02")],
           "rules": [rule(TCP, counter(3, 180), accept(), position=None), rule(TCP, accept(), handle=8)],
           "others": 0}
    return {**out, **parts}


def kinds(data: bytes) -> list:
    return [kind for kind, _, _ in attributes(data, 0, len(data))]


def messages(data: bytes) -> list:
    """(type, flags, attribute kinds) of each netlink message."""
    out, at = [], 0
    while at < len(data):
        length, kind, flags, _, _ = struct.unpack_from("=LHHLL", data, at)
        out.append((kind, flags, kinds(data[at + 20:at + length])))
        at += (length + 3) & ~3
    return out


def test_a_recipe_asks_for_the_content_and_leaves_out_handles_uses_and_counters():
    made = messages(R.recipe(INET, dump()))
    nft = R.NFNL_SUBSYS_NFTABLES << 8
    create = nftgen.NLM_F_REQUEST | R.NLM_F_CREATE
    assert made == [
        (nft | R.NFT_MSG_NEWTABLE, create | R.NLM_F_EXCL, [1, 2]),          # name, flags: not use, handle
        (nft | R.NFT_MSG_NEWCHAIN, create | R.NLM_F_EXCL, [1, 3, 4, 5, 7, 10]),  # not handle, use, counters
        (nft | R.NFT_MSG_NEWSET, create | R.NLM_F_EXCL, [1, 2, 4, 5, R.NFTA_SET_ID]),  # not handle, type, count
        (nft | R.NFT_MSG_NEWSETELEM, create, [1, 2, 3]),
        (nft | R.NFT_MSG_NEWRULE, create | R.NLM_F_APPEND, [1, 2, 4]),       # not handle
        (nft | R.NFT_MSG_NEWRULE, create | R.NLM_F_APPEND | R.NLM_F_ACK, [1, 2, 4])]  # nor position; the last acked


def test_a_batch_replaces_each_table_inside_one_transaction():
    made = R.recipe(INET, dump())
    framed = messages(R.batch([(INET, "netkeel_filter", made), (10, "netkeel_six", made)]))
    nft = R.NFNL_SUBSYS_NFTABLES << 8
    assert framed[0][0] == nftgen.NFNL_MSG_BATCH_BEGIN and framed[-1][0] == nftgen.NFNL_MSG_BATCH_END
    heads = [(kind, flags) for kind, flags, _ in framed if kind in (nft | R.NFT_MSG_NEWTABLE, nft | R.NFT_MSG_DELTABLE)]
    create = nftgen.NLM_F_REQUEST | R.NLM_F_CREATE
    once = [(nft | R.NFT_MSG_NEWTABLE, create), (nft | R.NFT_MSG_DELTABLE, nftgen.NLM_F_REQUEST),
            (nft | R.NFT_MSG_NEWTABLE, create | R.NLM_F_EXCL)]
    assert heads == once * 2
    begin = R.batch([])
    assert struct.unpack_from("=BBH", begin, 16) == (0, 0, socket.htons(R.NFNL_SUBSYS_NFTABLES))


@pytest.mark.parametrize("changed, why", [
    ({"others": 1}, "stateful objects"),
    ({"sets": [a_set(flags=R.NFT_SET_TIMEOUT)]}, "timeouts"),
    ({"sets": [a_set(flags=R.NFT_SET_EVAL)]}, "packet path"),
    ({"sets": [a_set(key_type=R.TYPE_IFINDEX)]}, "interface indexes"),
    ({"sets": [a_set(key_type=(7 << 6) | R.TYPE_IFINDEX)]}, "interface indexes"),   # ipv4_addr . iface_index
    ({"sets": [a_set(data_type=R.TYPE_IFINDEX)]}, "interface indexes"),
    ({"rules": [rule(meta(4), cmp(b"\x02\x00\x00\x00"), accept())]}, "any namespace"),  # iif: an index
    ({"rules": [rule(TCP, nla(1, string(1, "fib")), accept())]}, "any namespace"),     # not known stateless
])
def test_content_that_would_not_mean_the_same_elsewhere_has_no_recipe(changed, why):
    R.check(INET, dump())  # the control: it has one
    with pytest.raises(R.NoRecipe, match=why):
        R.check(INET, dump(**changed))


def test_a_verdict_map_a_concatenation_and_an_anonymous_set_have_recipes():
    R.check(INET, dump(sets=[a_set(key_type=(7 << 6) | 13, data_type=R.NFT_DATA_VERDICT)]))
    R.check(INET, dump(sets=[a_set("__set0", flags=0x1 | 0x2)]))  # anonymous, constant


def test_two_dumps_compare_equal_whatever_their_handles_and_their_sets_order():
    one = dump()
    other = dump(table=string(1, "netkeel_filter") + u32(3, 2) + u64(4, 99) + u32(2, 0),
                 elements=[elements(b"\xc0\x00\x02\x02", b"\xc0\x00\x02\x01")],
                 rules=[rule(TCP, counter(0, 0), accept(), handle=40, position=None),
                        rule(TCP, accept(), handle=41, position=40)])
    one["rules"][0] = rule(TCP, counter(0, 0), accept(), position=None)
    assert R.comparable(one) == R.comparable(other)
    for differing in (dump(elements=[elements(b"\xc0\x00\x02\x01")]), dump(rules=one["rules"][::-1]),
                      dump(chains=[chain("forward")]), dump(sets=[a_set(flags=4)])):
        assert R.comparable(differing) != R.comparable(one)


def test_forms_a_proof_noted_learnable_are_not_read_again():
    """The proof's reading back noted each learnable rule's form (digest, counter
    matches): check() takes those as read; any other is read."""
    odd = rule(TCP, nla(1, string(1, "fib")), accept())
    noted = nft_forms_of(odd)
    R.check(INET, dump(rules=[odd]), learned={noted.digest: noted.matches})
    with pytest.raises(R.NoRecipe):
        R.check(INET, dump(rules=[odd]), learned={noted.digest: (999,)})  # another rule's matches


def nft_forms_of(data: bytes):
    from toolkit.kernel import nft_forms
    return nft_forms.form(INET, data, 0, len(data))


def header(hook="input", prio=0, policy="accept", type_="filter") -> str:
    return json.dumps({"type": type_, "hook": hook, "prio": prio, "policy": policy}, sort_keys=True)


FIELDS = {"chain input": header(), "rules input": ("a", "b"),
          "set blocked": json.dumps({"type": "ipv4_addr", "flags": [], "elements": ["192.0.2.1", "192.0.2.2"]})}


def test_a_recipe_fits_its_table_only_as_recipe_made_it():
    """What the apply checks before sending a recipe the state directory
    vouches for: cut short, spliced, emptied, another table's, or not the
    desired table's chains, sets and rule counts: not sent."""
    made = R.recipe(INET, dump())
    assert R.fits(made, INET, "netkeel_filter", FIELDS)
    length = struct.unpack_from("=L", made, 0)[0]
    end = R.batch([])[20:]  # a BATCH_END message
    for bad in (made[:len(made) // 2], made[:-4], made[length:], b"", made[:length] + end + made[length:],
                made + b"\xff" * 24):
        assert not R.fits(bad, INET, "netkeel_filter", FIELDS)
    assert not R.fits(made, 10, "netkeel_filter", FIELDS)                      # another family
    assert not R.fits(made, INET, "netkeel_other", FIELDS)                     # another table
    assert not R.fits(made, INET, "netkeel_filter", {**FIELDS, "rules input": ("a",)})
    assert not R.fits(made, INET, "netkeel_filter", {**FIELDS, "chain forward": "{}"})
    assert not R.fits(made, INET, "netkeel_filter", {k: v for k, v in FIELDS.items() if k != "set blocked"})
    anonymous = R.recipe(INET, dump(sets=[a_set(), a_set("__set0", flags=3)]))
    assert R.fits(anonymous, INET, "netkeel_filter", FIELDS)  # a rule's own set is not the table's


@pytest.mark.parametrize("changed", [
    {"chain input": header(hook="output")}, {"chain input": header(prio=10)}, {"chain input": header(policy="drop")},
    {"chain input": header(type_="nat")},
])
def test_a_recipe_of_another_outline_does_not_fit(changed):
    """Another chain header, or a set's elements stripped: a recipe of another
    version of the same table (same names) is not sent."""
    made = R.recipe(INET, dump())
    assert R.fits(made, INET, "netkeel_filter", FIELDS)
    assert not R.fits(made, INET, "netkeel_filter", {**FIELDS, **changed})
    emptied = R.recipe(INET, dump(elements=[]))
    assert not R.fits(emptied, INET, "netkeel_filter", FIELDS)
