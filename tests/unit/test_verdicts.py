"""In-sync verdicts (state/verdicts.py) and the quick answer's argument forms
(cli/quick.py): a verdict is taken only exactly as it was kept, and anything the
quick answer does not know leaves the command to run as usual."""

from __future__ import annotations

import json
import os

import pytest

from toolkit.cli import quick
from toolkit.core.owners import FOREIGN
from toolkit.core.resource import Resource
from toolkit.state import StateDir
from toolkit.state import verdicts
from toolkit.state.verdicts import entry_name, hints_from, hints_record, live_digest, state_stamp, Verdicts

LINK = Resource.make("link", ("lab-a", "eth0"), kind="veth", state="up", mtu=1500, peer="lab-b/eth0")
TABLE = Resource.make("nft_table", ("lab-a", "inet", "netkeel_f"), **{"rules input": ("x",)})
HINTS = {"sysctls": {"lab-a": {"net.ipv4.ip_forward"}}, "veth_peers": {("lab-a", "eth0"): "lab-b"}}
MARKS = {"lab-a": [7, 12, [["eth0", 2], ["lo", 1]]]}


@pytest.fixture
def state(tmp_path):
    s = StateDir(tmp_path / "state")
    s.ensure()
    return s


def keep(state, **change):
    args = dict(manifest="lab.yaml", prefix="lab-", name="lab", reads={"lab.yaml": "0" * 64},
                names=["lab-a", "lab-b"], hints=HINTS, marks=MARKS, live=[LINK, TABLE],
                stamp=state_stamp(state))
    args.update(change)
    return Verdicts(state).record(**args)


def test_a_kept_verdict_comes_back_with_what_it_rests_on(state):
    assert keep(state)
    found = Verdicts(state).load("lab.yaml", "lab-")
    assert found["names"] == ["lab-a", "lab-b"] and found["marks"] == MARKS and found["name"] == "lab"
    assert hints_from(found["hints"]) == HINTS
    assert found["live"] == live_digest([TABLE, LINK])  # order aside
    assert Verdicts(state).load("lab.yaml", "other-") is None
    assert Verdicts(state).load("other.yaml", "lab-") is None


def test_nftables_tables_are_known_by_marks_and_everything_else_by_digest():
    assert live_digest([LINK, TABLE]) == live_digest([LINK])
    assert live_digest([LINK]) != live_digest([LINK.with_fields(mtu=1400)])
    assert live_digest([LINK]) != live_digest([LINK.owned_by(FOREIGN)])
    assert live_digest([LINK]) != live_digest([])


def test_hints_of_another_shape_keep_no_verdict(state):
    assert hints_record({**HINTS, "other": {}}) is None
    assert not keep(state, hints={**HINTS, "other": {}})
    assert not keep(state, reads={})
    assert Verdicts(state).load("lab.yaml", "lab-") is None


def test_another_boot_or_another_netkeel_finds_no_verdict(state, monkeypatch):
    assert keep(state)
    monkeypatch.setattr(verdicts, "boot_id", lambda: "another boot")
    assert Verdicts(state).load("lab.yaml", "lab-") is None
    monkeypatch.undo()
    monkeypatch.setattr("toolkit.state.compiled.fingerprint", lambda: "other code")
    assert Verdicts(state).load("lab.yaml", "lab-") is None


@pytest.mark.parametrize("content", ["", "{", "[]", '{"format": 1}', "null", "\x00\x01"])
def test_a_damaged_verdict_is_none_never_an_error(state, content):
    assert keep(state)
    path = state.path(entry_name("lab.yaml", "lab-"))
    good = path.read_bytes()
    data = json.loads(bytes(state.read_sealed(entry_name("lab.yaml", "lab-"))[0]))
    path.write_text(content)
    assert Verdicts(state).load("lab.yaml", "lab-") is None
    path.unlink()
    os.mkfifo(path)  # would block a plain open
    assert Verdicts(state).load("lab.yaml", "lab-") is None
    path.unlink()
    data["boot"] = ""
    state.write_sealed(entry_name("lab.yaml", "lab-"), [json.dumps(data)])
    assert Verdicts(state).load("lab.yaml", "lab-") is None
    path.write_bytes(good.replace(b'"lab-"', b'"lab_"'))  # edited, the seal not made again
    assert Verdicts(state).load("lab.yaml", "lab-") is None
    path.write_bytes(good)
    assert Verdicts(state).load("lab.yaml", "lab-") is not None


@pytest.mark.parametrize("change", [
    lambda s: s.write_json("inventory.json", {"instances": {}}),
    lambda s: s.write_json("identities.json", {"lab-a": 8}),
    lambda s: s.open("journal.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, create_dirs=True),
    lambda s: s.write_json("leases/0123.json", {}),
    lambda s: s.write_json("trials/0123.json", {}),
])
def test_the_stamp_changes_with_every_part_that_changes_an_answer(state, change):
    before = state_stamp(state)
    fd = change(state)
    if isinstance(fd, int):
        os.close(fd)
    assert state_stamp(state) != before


def test_the_stamp_does_not_change_with_caches(state):
    before = state_stamp(state)
    state.write_json("cache/nft-rulesets.json", {})
    state.write_json("cache/compiled/x.json", {})
    assert state_stamp(state) == before


def test_old_verdicts_beyond_the_limit_are_removed(state, monkeypatch):
    monkeypatch.setattr(verdicts, "KEEP", 3)
    for i in range(5):
        assert keep(state, manifest=f"lab{i}.yaml", reads={f"lab{i}.yaml": "0" * 64})
    assert len(state.regular_files(verdicts.DIRECTORY)) == 3
    assert Verdicts(state).load("lab4.yaml", "lab-") is not None


# -- the quick answer's forms ---------------------------------------------------------

@pytest.mark.parametrize("argv, parsed", [
    (["netkeel", "drift", "t.yaml"], ("drift", "t.yaml", "", None)),
    (["netkeel", "apply", "t.yaml", "--ns-prefix", "x-"], ("apply", "t.yaml", "x-", None)),
    (["netkeel", "drift", "--ns-prefix=x-", "t.yaml", "--state-dir", "/s"], ("drift", "t.yaml", "x-", "/s")),
    (["netkeel", "drift", "--state-dir=/s", "t.yaml"], ("drift", "t.yaml", "", "/s")),
    (["netkeel", "plan", "t.yaml"], ("plan", "t.yaml", "", None)),
])
def test_plain_forms_are_answered(argv, parsed):
    assert quick.parse(argv) == parsed


@pytest.mark.parametrize("argv", [
    ["netkeel"], ["netkeel", "drift"], ["netkeel", "show", "t.yaml"], ["netkeel", "drift", "t.yaml", "--json"],
    ["netkeel", "plan", "t.yaml", "--rev", "HEAD"],
    ["netkeel", "drift", "t.yaml", "--full"], ["netkeel", "drift", "t.yaml", "--junit", "r.xml"],
    ["netkeel", "apply", "t.yaml", "--rev", "HEAD"], ["netkeel", "apply", "t.yaml", "--try", "1m"],
    ["netkeel", "drift", "t.yaml", "-n", "x-"], ["netkeel", "drift", "t.yaml", "--ns-prefix"],
    ["netkeel", "drift", "a.yaml", "b.yaml"], ["netkeel", "--echo", "drift", "t.yaml"],
    ["netkeel", "drift", "t.yaml", "-v"], ["netkeel", "apply", "t.yaml", "--wait"],
    ["netkeel", "drift", "t.yaml", "--ns-prefix", "a-", "--ns-prefix", "b-"],  # invoke refuses these
    ["netkeel", "drift", "t.yaml", "--state-dir=/a", "--state-dir", "/b"],
    ["netkeel", "drift", "t.yaml", "--state-dir", "-v"], ["netkeel", "drift", "t.yaml", "--state-dir=-v"],
])
def test_every_other_form_runs_as_usual(argv):
    assert quick.parse(argv) is None


def test_without_a_verdict_the_command_runs_as_usual(tmp_path, monkeypatch):
    monkeypatch.setenv("NETKEEL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr("sys.stdout.isatty", lambda: False, raising=False)
    assert quick.answer(["netkeel", "drift", str(tmp_path / "t.yaml")]) is None


def test_a_failpoint_is_left_to_the_whole_command(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(quick, "_in_sync", lambda *args: "lab")
    assert quick.in_sync("apply", "t.yaml", "", str(tmp_path)) == "lab"
    monkeypatch.setenv("NETKEEL_FAILPOINT", "bogus")  # refused (or acted on) by apply itself
    assert quick.in_sync("apply", "t.yaml", "", str(tmp_path)) is None


def test_a_verdict_larger_than_netkeel_writes_is_not_read(state, monkeypatch):
    assert keep(state)
    monkeypatch.setattr(verdicts, "MAX_BYTES", 10)
    assert Verdicts(state).load("lab.yaml", "lab-") is None
