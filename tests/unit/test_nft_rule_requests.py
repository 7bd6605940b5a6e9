"""A rule-by-rule change as raw requests (kernel/nft_rule_requests.py): the
commands are the script's, line for line; the batch frames them as the kernel
reads them (a DELRULE by handle, a NEWRULE placed by position, echoed, the last
acknowledged); a rule that may mean otherwise elsewhere is never sent so; an
echo is the rule sent or the step fails."""

from __future__ import annotations

import json
import random
import socket
import struct

import pytest

from toolkit.kernel import nft_rule_requests as R
from toolkit.kernel.nftgen import _HDR, _NFGEN, attributes
from toolkit.kinds.nft_delta import delta

from test_nft_forms import INET, TCP, accept, cmp, counter, expr, meta, nla, rule, string

HEADER = '{"hook": "input", "policy": "accept", "prio": 0, "type": "filter"}'


def canonical(port: int) -> str:
    return json.dumps({"expr": [{"match": {"left": {"payload": {"field": "dport", "protocol": "tcp"}}, "op": "==",
                                           "right": port}}, {"accept": None}]}, sort_keys=True, separators=(",", ":"))


def test_the_commands_are_the_scripts_lines_for_random_edits():
    """Each command says what its line of the script says (the kernel then does
    with the requests what libnftables does with the text)."""
    generator = random.Random(5)
    for _ in range(400):
        have = [generator.randrange(6) for _ in range(generator.randrange(0, 9))]
        want = list(have)
        for _ in range(generator.randrange(1, 4)):
            roll = generator.random()
            if roll < 0.4 and want:
                want[generator.randrange(len(want))] = generator.randrange(6, 12)
            elif roll < 0.7:
                want.insert(generator.randrange(len(want) + 1), generator.randrange(12))
            elif want:
                del want[generator.randrange(len(want))]
        handles = tuple(("input", canonical(p), 10 + i) for i, p in enumerate(have))
        live = {"chain input": HEADER, "rules input": tuple(canonical(p) for p in have), "_handles": handles}
        found = delta("inet", "netkeel_t", {"chain input": HEADER, "rules input": tuple(canonical(p) for p in want)},
                      live)
        assert found is not None and found.rule_commands is not None
        lines = found.script.splitlines()
        assert len(lines) == len(found.rule_commands)
        for line, command in zip(lines, found.rule_commands):
            if command[0] == "delete":
                assert line == f"delete rule inet netkeel_t input handle {command[2]}"
                continue
            _, chain, anchor, after, text = command
            if anchor is None:
                assert line == f"add rule inet netkeel_t {chain} {text}"
            else:
                assert line == f"{'add' if after else 'insert'} rule inet netkeel_t {chain} position {anchor} {text}"
        assert sum(c[0] == "add" for c in found.rule_commands) == len(found.added)


def test_a_change_of_elements_has_no_commands():
    spec = {"type": "ipv4_addr", "flags": [], "elements": ['"192.0.2.1"']}
    live = {"set s": json.dumps(spec), "chain input": HEADER, "rules input": (canonical(1),),
            "_handles": (("input", canonical(1), 4),)}
    found = delta("inet", "netkeel_t", {"set s": json.dumps({**spec, "elements": ['"192.0.2.2"']}),
                                        "chain input": HEADER, "rules input": (canonical(2),)}, live)
    assert found is not None and found.rule_commands is None


def dumped(*expressions: bytes, comment: bytes | None = None, chain: str = "netkeel_c0") -> str:
    return rule(*expressions, handle=4, position=None, chain=chain, comment=comment).hex()


def lookup(set_name: str) -> bytes:
    return expr("lookup", string(1, set_name) + nla(2, struct.pack(">I", 1)))


SKELETON = {"sets": [{"name": "blocked", "type": "ipv4_addr"}], "chains": {"input": {}}, "devices": []}
COMMANDS = (("delete", "input", 7), ("add", "input", 6, True, "tcp accept"), ("add", "input", None, True, "x"))


def answers(first: str, second: str | None = None) -> dict:
    return {"0:1": {"expr": [{"accept": None}], "comment": None, "attributes": first},
            "0:2": {"expr": [{"drop": None}], "comment": "c", "attributes": second or first}}


def test_the_batch_frames_each_command_as_the_kernel_reads_it():
    changes = [("inet", "netkeel_t", SKELETON, COMMANDS)]
    jobs = R.scratch_jobs(changes)
    assert [r for job in jobs for r in job["rules"]] == [["0:1", "input", "tcp accept"], ["0:2", "input", "x"]]
    assert jobs[0]["attributes"] is True and jobs[0]["sets"] == SKELETON["sets"]
    tables = R.compiled(changes, answers(dumped(TCP, counter(3, 180), accept(), comment=b"c\0")),
                        {"inet": INET})
    data = R.batch(tables)
    messages, at = [], 0
    while at < len(data):
        length, kind, flags, _, _ = _HDR.unpack_from(data, at)
        family = data[at + _HDR.size]
        body = data[at + _HDR.size + _NFGEN.size:at + length]
        messages.append((kind, flags, family, {k: body[a:b] for k, a, b in attributes(body, 0, len(body))}))
        at += (length + 3) & ~3
    begin, delete, after, appended, end = messages
    assert begin[0] == 0x10 and end[0] == 0x11
    assert struct.unpack("=H", data[_HDR.size + 2:_HDR.size + 4])[0] == socket.htons(10)  # nf_tables' batch
    assert delete[0] == (10 << 8) | R.NFT_MSG_DELRULE and delete[2] == INET
    assert delete[3][1] == b"netkeel_t\0" and delete[3][2] == b"input\0" and delete[3][3] == struct.pack(">Q", 7)
    assert after[0] == (10 << 8) | 6 and after[1] & (R.NLM_F_ECHO | 0x800 | 0x400) == R.NLM_F_ECHO | 0x800 | 0x400
    assert after[3][R.NFTA_RULE_POSITION] == struct.pack(">Q", 6)
    assert 3 not in after[3] and after[3][7] == b"\0\x02c\0"  # no handle of the scratch's; its comment
    assert R.NFTA_RULE_POSITION not in appended[3] and appended[1] & 0x800
    assert [bool(m[1] & 0x4) for m in messages[1:4]] == [False, False, True]  # the last one acknowledged
    # Inserted before its anchor: no NLM_F_APPEND.
    before = R.batch(R.compiled([("inet", "netkeel_t", SKELETON, (("add", "input", 6, False, "y"),))],
                                {"0:0": answers(dumped(TCP, accept()))["0:1"]}, {"inet": INET}))
    assert not _HDR.unpack_from(before, _HDR.size + _NFGEN.size)[2] & 0x800


@pytest.mark.parametrize("attributes, why", [
    (dumped(lookup("__set0"), accept()), "an anonymous set's name here is another set's"),
    (dumped(lookup("other"), accept()), "a set the table does not have"),
    (dumped(meta(4), cmp(b"\x01\x00\x00\x00"), accept()), "iif: a device's index"),
    (dumped(expr("dynset", b""), accept()), "an expression holding state"),
    ("zz", "attributes that are not hex"),
])
def test_a_rule_that_may_mean_otherwise_elsewhere_is_not_sendable(attributes, why):
    with pytest.raises(R.NotSendable):
        R.compiled([("inet", "netkeel_t", SKELETON, COMMANDS)], answers(attributes), {"inet": INET})


def test_a_lookup_of_the_tables_own_set_is_sendable():
    tables = R.compiled([("inet", "netkeel_t", SKELETON, COMMANDS)], answers(dumped(lookup("blocked"), accept())),
                        {"inet": INET})
    assert sorted(tables[0][3]) == [1, 2]


@pytest.mark.parametrize("answer", [{"error": "syntax error"}, {"expr": [], "comment": None}, None])
def test_a_rule_the_scratch_did_not_compile_is_not_sendable(answer):
    found = answers(dumped(TCP, accept()))
    found["0:2"] = answer
    with pytest.raises(R.NotSendable):
        R.compiled([("inet", "netkeel_t", SKELETON, COMMANDS)], {k: v for k, v in found.items() if v}, {"inet": INET})


def test_more_rules_than_at_most_go_as_text():
    commands = tuple(("add", "input", None, True, f"tcp dport {n} accept") for n in range(R.AT_MOST + 1))
    with pytest.raises(R.NotSendable):
        R.scratch_jobs([("inet", "netkeel_t", SKELETON, commands)])
    with pytest.raises(R.NotSendable):
        R.compiled([("netdev2", "netkeel_t", SKELETON, COMMANDS)], answers(dumped(TCP, accept())), {"inet": INET})


def test_each_echo_must_be_the_rule_sent_in_its_chain_and_table():
    sent = dumped(TCP, counter(), accept())
    tables = R.compiled([("inet", "netkeel_t", SKELETON, COMMANDS)], answers(sent), {"inet": INET})

    def echo(handle: int, chain: str = "input", table: str = "netkeel_t", *expressions: bytes) -> bytes:
        out = string(1, table) + string(2, chain) + struct.pack("=HH", 12, 3) + struct.pack(">Q", handle)
        return out + nla(4, b"".join(expressions or (TCP, counter(9, 900), accept())))

    got = R.verified(tables, [echo(21), echo(22)])
    assert [(c, h, r["expr"], r["comment"]) for c, h, r in got] == [("input", 21, [{"accept": None}], None),
                                                                   ("input", 22, [{"drop": None}], "c")]
    for echoes in ([echo(21)], [echo(21), echo(22), echo(23)], [echo(21), echo(22, "output")],
                   [echo(21), echo(22, "input", "netkeel_u")], [echo(21), echo(22, "input", "netkeel_t", TCP, accept())]):
        with pytest.raises(ValueError):
            R.verified(tables, echoes)


def test_nodes_sharing_a_policy_share_one_scratch(monkeypatch):
    monkeypatch.setattr(R, "_ANSWERS", {})
    asked = []

    def resolve(jobs):
        asked.append([rule for job in jobs for rule in job["rules"]])
        return {rule[0]: ({"error": "no"} if rule[2] == "bad" else {"expr": [], "attributes": "00"})
                for job in jobs for rule in job["rules"]}

    commands = (("add", "input", None, True, "tcp accept"), ("add", "input", None, True, "bad"))
    jobs = R.scratch_jobs([("inet", "netkeel_t", SKELETON, commands)])
    first = R.answered(jobs, resolve)
    second = R.answered(jobs, resolve)
    assert first == second and first["0:0"]["attributes"] == "00" and "error" in first["0:1"]
    assert asked == [[["0:0", "input", "tcp accept"], ["0:1", "input", "bad"]], [["0:1", "input", "bad"]]]
    # Another table, chain or skeleton is another compile.
    other = dict(SKELETON, sets=[])
    R.answered(R.scratch_jobs([("inet", "netkeel_t", other, commands[:1])]), resolve)
    R.answered(R.scratch_jobs([("inet", "netkeel_u", SKELETON, commands[:1])]), resolve)
    assert len(asked) == 4


def test_a_change_among_few_rules_is_not_worth_a_scratch():
    assert not R.worth_it(R.WORTH_FROM - 1) and R.worth_it(R.WORTH_FROM)
