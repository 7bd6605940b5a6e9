"""Rules known by their kernel form (kernel/nft_forms.py) and the texts kept for
them (state/rule_forms.py): a form is the rule less where it is and what
traffic moves; only a form whose printed text depends on nothing else is
learnable, and a dumped rule takes a kept text only for the very same form."""

from __future__ import annotations

import hashlib
import json
import struct

import pytest

from toolkit.kernel import nft_forms
from toolkit.state import StateDir
from toolkit.state.compiled import fingerprint
from toolkit.state.rule_forms import BLOCKERS, DIRECTORY, FORMAT, RuleForms

INET = 1


def nla(kind: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to four bytes, as the kernel dumps it."""
    return struct.pack("=HH", 4 + len(payload), kind) + payload + b"\0" * (-len(payload) % 4)


def string(kind: int, text: str) -> bytes:
    return nla(kind, text.encode() + b"\0")


def u32(kind: int, value: int) -> bytes:
    return nla(kind, struct.pack(">I", value))


def u64(kind: int, value: int) -> bytes:
    return nla(kind, struct.pack(">Q", value))


def expr(name: str, *data: bytes) -> bytes:
    return nla(1, string(1, name) + (nla(2, b"".join(data)) if data else b""))


def counter(packets: int = 0, octets: int = 0) -> bytes:
    return expr("counter", u64(1, octets), u64(2, packets))


def meta(key: int, dreg: int = 1) -> bytes:
    return expr("meta", u32(2, key), u32(1, dreg))


def cmp(value: bytes, sreg: int = 1) -> bytes:
    return expr("cmp", u32(1, sreg), u32(2, 0), nla(3, nla(1, value)))


def accept() -> bytes:
    return expr("immediate", u32(1, 0), nla(2, nla(2, u32(1, 1))))


def rule(*expressions: bytes, handle: int = 7, position: int | None = 6, chain: str = "input",
         comment: bytes | None = None) -> bytes:
    """A rule's attributes as NFT_MSG_GETRULE dumps them."""
    out = string(1, "netkeel_filter") + string(2, chain) + u64(3, handle)
    if position is not None:
        out += u64(6, position)
    out += nla(4, b"".join(expressions))
    if comment is not None:
        out += nla(7, bytes((0, len(comment))) + comment)
    return out


def form(data: bytes, family: int = INET) -> nft_forms.Form:
    return nft_forms.form(family, data, 0, len(data))


TCP = meta(16) + cmp(b"\x06")  # meta l4proto tcp


def test_where_a_rule_is_and_what_its_counter_counted_are_not_its_form():
    one = form(rule(TCP, counter(0, 0), accept(), handle=7, position=6))
    other = form(rule(TCP, counter(12345, 99), accept(), handle=4000, position=None))
    assert one.digest == other.digest and one.matches == other.matches and len(one.matches) == 1


@pytest.mark.parametrize("changed", [
    rule(meta(16) + cmp(b"\x11"), counter(), accept()),          # udp, not tcp
    rule(TCP, accept()),                                          # no counter
    rule(TCP, counter(), accept(), chain="forward"),              # another chain
    rule(TCP, counter(), accept(), comment=b"ssh\0"),             # a comment
    rule(TCP, counter(), counter(), accept()),                    # two counters
])
def test_anything_else_is_another_form(changed):
    assert form(changed).digest != form(rule(TCP, counter(), accept())).digest


def test_the_family_is_part_of_the_form():
    assert form(rule(TCP), INET).digest != form(rule(TCP), 2).digest


def test_attributes_that_do_not_fit_are_refused():
    data = rule(TCP)[:10]
    with pytest.raises(ValueError):
        nft_forms.form(INET, data, 0, len(data))
    assert not nft_forms.learnable(form(rule(TCP)[:-3]))


@pytest.mark.parametrize("expressions, learnable", [
    ((TCP, counter(), accept()), True),
    ((meta(6) + cmp(b"eth0\0"), accept()), True),      # iifname: the bytes compared are the name printed
    ((meta(4) + cmp(b"\x02\0\0\0"), accept()), False),  # iif: the name the index has where it is listed
    ((meta(5) + cmp(b"\x02\0\0\0"), accept()), False),  # oif
    ((meta(10) + cmp(b"\0\0\0\0"), accept()), False),   # skuid: a user's name, from the host's files
    ((expr("meta", u32(2, 3), u32(3, 1)), accept()), False),  # meta mark set: a statement
    ((expr("fib", u32(1, 1)), accept()), False),         # an expression not known to print alone
    ((expr("objref", string(2, "c")), accept()), False),
    ((expr("counter", u64(1, 0), u64(2, 0), u64(3, 0)), accept()), False),  # a counter laid out otherwise
])
def test_a_form_is_learnable_only_where_its_text_is_a_function_of_it(expressions, learnable):
    assert nft_forms.learnable(form(rule(*expressions))) is learnable


def test_a_counter_inside_a_compared_value_makes_a_form_unlearnable():
    """The pattern found in 64 bytes of a comparison: zeroing it would make two
    different rules one form, so such a rule is never learnt."""
    fake = counter(5, 5)
    assert len(fake) <= 64
    data = rule(TCP, cmp(fake), accept())
    rule_form = form(data)
    assert rule_form.matches  # the pattern is found there
    assert not nft_forms.learnable(rule_form)


def test_the_sets_a_rule_looks_up_are_named():
    looking = rule(expr("payload", u32(1, 1), u32(2, 1), u32(3, 12), u32(4, 4)),
                   expr("lookup", string(1, "blocked"), u32(2, 1)), accept())
    assert nft_forms.looked_up(form(looking).body) == {"blocked"}
    assert nft_forms.looked_up(form(rule(TCP, accept())).body) == set()


def test_what_is_replayed_is_the_rule_but_its_table_chain_handle_and_position():
    data = rule(TCP, counter(), accept(), comment=b"x\0")
    replayed = nft_forms.replayable(data, 0, len(data))
    assert replayed == nla(4, TCP + counter() + accept()) + nla(7, b"\0\x02x\0")


# -- the texts kept -----------------------------------------------------------------

@pytest.fixture
def state(tmp_path):
    (tmp_path / "state").mkdir(mode=0o700)
    return StateDir(tmp_path / "state")


def kept(state, ns="lab-fw", trust=True, name="netkeel_filter"):
    return RuleForms(state, trust=trust).table(ns, "inet", name)


def test_a_text_noted_is_kept_and_found_again_by_another_command(state):
    one = form(rule(TCP, counter(), accept()))
    forms = RuleForms(state)
    table = forms.table("lab-fw", "inet", "netkeel_filter")
    assert table.text(one) is None and not table.serves()
    table.note(one, "meta l4proto tcp counter accept")
    forms.save()
    again = kept(state, ns="lab2-fw")  # the forms are the table's, in any namespace
    assert again.serves()
    assert again.text(form(rule(TCP, counter(7, 700), accept(), handle=99))) == "meta l4proto tcp counter accept"
    assert again.text(form(rule(TCP, accept()))) is None
    assert kept(state, trust=False).text(one) is None  # drift --full takes nothing from them
    assert not kept(state, name="netkeel_other").serves()  # another table's are its own


def test_a_table_last_listed_with_a_rule_never_learnable_is_not_read_by_forms(state):
    forms = RuleForms(state)
    forms.table("lab-fw", "inet", "netkeel_filter").note(form(rule(TCP, accept())), "meta l4proto tcp accept")
    forms.table("lab-fw", "inet", "netkeel_filter").note_blocker('iif "p0" drop')
    forms.save()
    assert not kept(state).serves() and kept(state).blocker() == 'iif "p0" drop'
    assert kept(state, ns="other-fw").serves()  # blocked in that namespace only
    forms = RuleForms(state)
    forms.table("lab-fw", "inet", "netkeel_filter").note_blocker(None)  # listed since with every rule learnable
    assert forms.table("lab-fw", "inet", "netkeel_filter").serves()
    forms.save()
    assert kept(state).serves()


def test_a_text_is_taken_only_where_the_counters_matched_as_they_did(state):
    one = form(rule(TCP, counter(), accept()))
    table = kept(state)
    table.note(one._replace(matches=(3,)), "meta l4proto tcp counter accept")
    assert table.text(one) is None


def test_saving_merges_with_what_another_command_wrote(state):
    a, b = form(rule(TCP, accept())), form(rule(TCP, counter(), accept()))
    first, second = RuleForms(state), RuleForms(state)
    first.table("ns", "inet", "netkeel_filter").text(a), second.table("ns", "inet", "netkeel_filter").text(a)
    first.table("ns", "inet", "netkeel_filter").note(a, "a")
    first.save()
    second.table("ns", "inet", "netkeel_filter").note(b, "b")
    second.save()
    third = kept(state)
    assert (third.text(a), third.text(b)) == ("a", "b")


def test_the_tables_least_lately_written_go_beyond_the_limit(state, monkeypatch):
    import os
    import time

    monkeypatch.setattr("toolkit.state.rule_forms.SHARDS", 3)
    one = form(rule(TCP, accept()))
    for i in range(5):
        forms = RuleForms(state)
        forms.table("ns", "inet", f"netkeel_t{i}").note(one, f"t{i}")
        forms.save()
        written = state.root / DIRECTORY / (hashlib.sha256(f"inet netkeel_t{i}".encode()).hexdigest()[:32] + ".json")
        os.utime(written, (time.time() - 10 + i,) * 2)  # written a second after the one before
    assert len(list((state.root / DIRECTORY).iterdir())) == 3
    assert [kept(state, name=f"netkeel_t{i}").text(one) for i in range(5)] == [None, None, "t2", "t3", "t4"]


def test_a_plan_proofs_forms_come_back_through_merge_junk_aside(state):
    one = form(rule(TCP, counter(), accept()))
    forms = RuleForms(state)
    table = forms.table("ns", "inet", "netkeel_filter")
    table.merge(json.loads(json.dumps({one.digest: ["t", list(one.matches)]})))  # as the proof's child sends them
    table.merge({"nothex": ["x", []], one.digest[:-1] + "g": ["y", []], "a" * 32: ["z", ["1"]], "b" * 32: "z"})
    table.merge(["not", "a", "mapping"])
    assert table.text(one) == "t"
    forms.save()
    (path,) = (state.root / DIRECTORY).iterdir()
    assert list(json.loads(path.read_text().splitlines()[1])["entries"]) == [one.digest]


@pytest.mark.parametrize("content", [
    b"", b"\0\xff", b"[]", b'{"format": 1}',
])
def test_a_damaged_file_is_a_miss_never_an_error(state, content):
    forms = RuleForms(state)
    forms.table("ns", "inet", "netkeel_filter").note(form(rule(TCP, accept())), "t")
    forms.save()
    (path,) = (state.root / DIRECTORY).iterdir()
    path.write_bytes(content)
    (state.root / BLOCKERS).write_bytes(content)
    table = kept(state)
    assert not table.serves() and table.blocker() is None
    forms = RuleForms(state)
    forms.table("ns", "inet", "netkeel_filter").note(form(rule(TCP, accept())), "t")
    forms.save()
    assert kept(state).text(form(rule(TCP, accept()))) == "t"


def test_a_file_with_a_bit_flipped_is_a_miss(state):
    one = form(rule(TCP, accept()))
    forms = RuleForms(state)
    forms.table("ns", "inet", "netkeel_filter").note(one, "meta l4proto tcp accept")
    forms.save()
    (path,) = (state.root / DIRECTORY).iterdir()
    data = path.read_bytes()
    at = data.index(b"accept")
    path.write_bytes(data[:at] + b"accepu" + data[at + 6:])
    assert kept(state).text(one) is None


def sealed_file(path, document) -> None:
    body = json.dumps(document) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(json.dumps({"sha256": hashlib.sha256(body.encode()).hexdigest()}).encode() + b"\n"
                     + body.encode())


def test_files_sealed_but_holding_junk_values_are_read_for_their_good_entries(state):
    one = form(rule(TCP, accept()))
    forms = RuleForms(state)
    forms.table("ns", "inet", "netkeel_filter").note(one, "x")
    forms.save()
    (path,) = (state.root / DIRECTORY).iterdir()
    sealed_file(path, {"format": FORMAT, "code": fingerprint(),
                       "entries": {one.digest: ["good", []], "b" * 32: [1, []], "c" * 32: "x"}})
    sealed_file(state.root / BLOCKERS, {"format": FORMAT, "code": fingerprint(),
                                        "entries": {"ns inet netkeel_filter": ["junk"], "ns inet netkeel_x": "iif 4"}})
    assert kept(state, ns="ns").text(one) == "good"
    assert kept(state, ns="ns").serves()  # a junk blocker is none
    assert kept(state, ns="ns", name="netkeel_x").blocker() == "iif 4"


def test_forms_of_another_netkeel_are_a_miss(state, monkeypatch):
    one = form(rule(TCP, accept()))
    forms = RuleForms(state)
    forms.table("ns", "inet", "netkeel_filter").note(one, "t")
    forms.save()
    monkeypatch.setattr("toolkit.state.rule_forms.fingerprint", lambda: "another")
    assert kept(state).text(one) is None
