"""Damaged identity records (identities.json, identities.log) never give a
traceback, and never make netkeel take a namespace it did not create for one of
its own: a damaged identities.json stops every change with a message naming the
file and what to do; a log line that is not a record is skipped."""

import json

import pytest
from fakekernel import FakeKernel

from toolkit.errors import InventoryError, NetkeelError
from toolkit.manifest import load_topology_text
from toolkit.runtime.engine import Reconciler, rollback
from toolkit.state.identities import FOLDED, LOG, Identities
from toolkit.state.statedir import StateDir

LAB = "name: lab\nnodes: {a: {}, b: {}}\n"


@pytest.fixture
def state(tmp_path):
    state = StateDir(tmp_path / "state")
    state.ensure()
    return state


def reconciler(kernel, state):
    return Reconciler(load_topology_text(LAB, "lab.yaml"), kernel, state, prefix="t-", git={})


DAMAGED = {
    "a list": "[1, 2]",
    "a string": '"x"',
    "null": "null",
    "not JSON": "{",
    "a cookie as text": '{"t-a": "1001"}',
    "a cookie true": '{"t-a": true}',
    "a cookie 0": '{"t-a": 0}',
    "a cookie past 64 bits": '{"t-a": 18446744073709551616}',
    "a cookie of 5000 digits": '{"t-a": ' + "9" * 5000 + "}",
    "a fraction": '{"t-a": 1001.5}',
}


@pytest.mark.parametrize("content", DAMAGED.values(), ids=DAMAGED.keys())
def test_a_damaged_identities_file_is_an_error_naming_it_and_the_fix(state, content):
    state.path(FOLDED).write_text(content)
    with pytest.raises(InventoryError) as caught:
        Identities(state).load()
    message = str(caught.value)
    assert f"{state.path(FOLDED)} is damaged: " in message
    assert f"mv {state.path(FOLDED)} {state.path(FOLDED)}.damaged" in message


@pytest.mark.parametrize("content", ["[1, 2]", '"x"', '{"t-a": true}'])
def test_a_damaged_identities_file_makes_netkeel_change_nothing(state, content):
    """Neither a namespace it made (the file no longer says so) nor one made by
    someone else under a name it owns: drift, apply, destroy and rollback all stop
    with the message, and the kernel is as it was."""
    kernel = FakeKernel()
    reconciler(kernel, state).apply()
    kernel.remove_namespace("t-b")
    kernel.intruder("t-b")  # someone else's namespace, under a name the inventory gives to netkeel
    before = kernel.state()
    state.path(FOLDED).write_text(content)
    for command in (lambda: reconciler(kernel, state).drift(), lambda: reconciler(kernel, state).apply(),
                    lambda: reconciler(kernel, state).destroy(), lambda: rollback(kernel, state)):
        with pytest.raises(NetkeelError, match="identities.json is damaged"):
            command()
    assert kernel.state() == before
    assert state.path(FOLDED).read_text() == content  # left for the user to look at


def test_moved_aside_every_namespace_netkeel_made_is_refused_never_adopted(state):
    kernel = FakeKernel()
    reconciler(kernel, state).apply()
    state.path(FOLDED).write_text("[1, 2]")
    state.path(FOLDED).rename(state.path(FOLDED + ".damaged"))  # what the message says to do
    with pytest.raises(NetkeelError, match="namespace t-a exists but is not the namespace netkeel created") as caught:
        reconciler(kernel, state).apply()
    assert "hold no record of it" in str(caught.value)  # the files may be what is wrong: said


@pytest.mark.parametrize("line", [b"9" * 4301 + b" t-x", b"1" * 21 + b" t-x", b"18446744073709551616 t-x",
                                  b"0 t-x", "\u00b2 t-x".encode(), b"1001", b"1001 ", b" t-x", b"-5 t-x"],
                         ids=["4301 digits", "21 digits", "past 64 bits", "zero", "a superscript digit",
                              "no name", "an empty name", "no cookie", "negative"])
def test_a_log_line_that_is_not_a_record_is_skipped(state, line):
    state.path(LOG).write_bytes(b"1001 t-a\n" + line + b"\n1002 t-b\n")
    assert Identities(state).load() == {"t-a": 1001, "t-b": 1002}


def test_a_log_record_with_a_20_digit_cookie_is_read(state):
    state.path(LOG).write_bytes(b"18446744073709551615 t-a\n")
    assert Identities(state).load() == {"t-a": 2**64 - 1}


def test_a_good_identities_file_and_log_are_read_together(state):
    state.path(FOLDED).write_text(json.dumps({"t-a": 5, "t-b": 6}))
    state.path(LOG).write_bytes(b"7 t-b\n")
    assert Identities(state).load() == {"t-a": 5, "t-b": 7}


def test_a_change_that_makes_no_namespace_writes_neither_ownership_file(state, monkeypatch):
    """An edited rule's apply wrote identities.json and inventory.json (twice),
    durably, to say what they said: 5-20 ms of fsyncs."""
    kernel = FakeKernel()
    forwarding = "name: lab\nnodes:\n  a:\n    sysctls: {net.ipv4.ip_forward: %d}\n  b: {}\n"
    Reconciler(load_topology_text(forwarding % 1, "lab.yaml"), kernel, state, prefix="t-", git={}).apply()
    folded = state.path(FOLDED)
    made = folded.stat().st_ino
    assert set(Identities(state).load()) == {"t-a", "t-b"} and not state.path(LOG).read_bytes()
    writes = []
    real = StateDir.write_json
    monkeypatch.setattr(StateDir, "write_json",
                        lambda self, relative, data, **kw: (writes.append(relative), real(self, relative, data, **kw)))
    result = Reconciler(load_topology_text(forwarding % 0, "lab.yaml"), kernel, state, prefix="t-", git={}).apply()
    assert result.steps and writes.count("inventory.json") == 1 and FOLDED not in writes
    assert folded.stat().st_ino == made
    # A change that makes a namespace records it, and folds it in.
    kernel.remove_namespace("t-b")
    Reconciler(load_topology_text(forwarding % 0, "lab.yaml"), kernel, state, prefix="t-", git={}).apply()
    assert folded.stat().st_ino != made and set(json.loads(folded.read_text())) == {"t-a", "t-b"}


def test_a_fold_with_records_logged_writes_them_and_empties_the_log(state):
    state.path(FOLDED).write_text(json.dumps({"t-a": 5}))
    state.path(LOG).write_bytes(b"5 t-a\n")  # the same, logged again: the log must still be emptied
    Identities(state).fold({"t-a"})
    assert json.loads(state.path(FOLDED).read_text()) == {"t-a": 5} and state.path(LOG).read_bytes() == b""
    Identities(state).fold(set())
    assert json.loads(state.path(FOLDED).read_text()) == {}
