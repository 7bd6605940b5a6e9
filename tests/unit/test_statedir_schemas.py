"""State files of the wrong shape are reported naming the file (and line), never
as a traceback: journal records are skipped as damaged, an inventory or
snapshot is a clear error."""

import json

import pytest

from toolkit.state.inventory import Inventory, InventoryError
from toolkit.state.journal import Journal
from toolkit.state.recovery import advice
from toolkit.state.snapshots import SnapshotError, Snapshots
from toolkit.state.statedir import StateDir

SNAPSHOT = "20240101T000000.000Z-abcd"


@pytest.fixture
def state(tmp_path):
    state = StateDir(tmp_path / "state")
    state.ensure()
    return state


GOOD_START = {"event": "start", "tx": "g", "op": "apply", "instance": "lab", "snapshot": "s", "ts": "t"}


@pytest.mark.parametrize("changes", [{"tx": ["x"]}, {"manifests": "zz"}, {"ts": 5}, {"manifests": [3]},
                                     {"instance": None}, {"op": 1}, {"git": {"commit": 7}}, {"pid": "1"}])
def test_a_wrong_typed_start_record_is_skipped_as_damaged(state, changes):
    lines = [{**GOOD_START, "tx": "bad", **changes}, {**GOOD_START, "tx": "g"}]
    state.path("journal.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    journal = Journal(state)
    records, problems = journal.records()
    assert [r["tx"] for r in records] == ["g"]
    assert len(problems) == 1 and problems[0].startswith(f"{journal.path}:1: damaged journal record skipped (")
    assert [r["tx"] for r in journal.interrupted()] == ["g"]  # no traceback, the bad one ignored
    assert journal.pinned() == {"s"}
    for record in journal.interrupted():
        advice(record)


@pytest.mark.parametrize("record", [{"event": "end", "tx": "g", "outcome": ["ok"], "ts": "t"},
                                    {"event": "end", "tx": "g", "steps": "3", "ts": "t"},
                                    {"event": "progress", "tx": "g", "done": "x", "ts": "t"},
                                    {"tx": "g", "ts": "t"}])
def test_a_wrong_typed_end_or_progress_record_is_skipped_as_damaged(state, record):
    state.path("journal.jsonl").write_text(json.dumps(GOOD_START) + "\n" + json.dumps(record) + "\n")
    records, problems = Journal(state).records()
    assert len(records) == 1 and len(problems) == 1 and ":2: damaged" in problems[0]


@pytest.mark.parametrize("content", ['{"instances": {"i": []}}', '{"instances": {"i": {"namespaces": null}}}',
                                     '{"instances": {"i": {"namespaces": [1]}}}', '{"instances": null}',
                                     '{"version": "1", "instances": {}}'])
def test_a_wrong_typed_inventory_is_an_error_naming_the_file(state, content):
    state.path("inventory.json").write_text(content)
    with pytest.raises(InventoryError, match=f"{state.path('inventory.json')} is not a netkeel inventory"):
        Inventory(state)


def snapshot_document(**changes):
    return {"format": 1, "id": SNAPSHOT, "time": "t", "instance": "lab", "topology": "lab", "prefix": "",
            "namespaces": ["a"], "owned": [], "resources": [{"kind": "netns", "key": ["a"], "spec": {}}],
            **changes}


@pytest.mark.parametrize("changes", [{"resources": [{"kind": "netns", "key": "a", "spec": {}}]},
                                     {"resources": [{"kind": 3, "key": ["a"], "spec": {}}]},
                                     {"namespaces": "ab"}, {"owned": None}, {"manifests": {}},
                                     {"id": "20240101T000000.000Z-ffff"}])
def test_a_wrong_typed_snapshot_is_an_error_naming_the_file(state, changes):
    snapshots = Snapshots(state)
    state.path("snapshots").mkdir(mode=0o700)
    snapshots.path(SNAPSHOT).write_text(json.dumps(snapshot_document(**changes)))
    with pytest.raises(SnapshotError, match=f"not a valid netkeel snapshot \\({snapshots.path(SNAPSHOT)}\\)"):
        snapshots.load(SNAPSHOT)
    assert isinstance(snapshots.listing()[0][1], SnapshotError)


def test_a_well_formed_snapshot_document_loads(state):
    state.path("snapshots").mkdir(mode=0o700)
    Snapshots(state).path(SNAPSHOT).write_text(json.dumps(snapshot_document()))
    assert Snapshots(state).load(SNAPSHOT).present == {"a"}


def test_the_schemas_ship_as_package_data():
    from pathlib import Path
    text = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"toolkit.state" = ["schemas/*.json"]' in text


NESTED = "[" * 3000 + "]" * 3000  # a few kilobytes that raise RecursionError in json.loads


def test_state_files_nested_too_deeply_are_damage_not_a_traceback(state):
    state.path("journal.jsonl").write_text(json.dumps(GOOD_START) + "\n" + NESTED + "\n")
    records, problems = Journal(state).records()
    assert len(records) == 1 and len(problems) == 1 and ":2: damaged" in problems[0]
    state.path("inventory.json").write_text(NESTED)
    with pytest.raises(InventoryError, match="nested too deeply"):
        Inventory(state)
    snapshots = Snapshots(state)
    state.path("snapshots").mkdir(mode=0o700)
    snapshots.path(SNAPSHOT).write_text(NESTED)
    with pytest.raises(SnapshotError, match="nested too deeply"):
        snapshots.load(SNAPSHOT)


def test_a_resource_spec_nested_too_deeply_is_refused_as_damage():
    from toolkit.state.codec import decode

    deep = json.loads("[" * 900 + "]" * 900)  # parses, but freezing it recurses twice as deep
    with pytest.raises(ValueError, match="nested too deeply"):
        decode(["netns", ["a"], "topology", [["x", deep]]])


@pytest.mark.parametrize("text", [
    '{"format": 6, "namespaces": {"lab-a": {"cookie": 4096, "generation": 7}}, "x": [1.5, -0, null, true, "é"]}',
    '{"a": 1, "a": 2}',                   # the last one, as json.loads
    '[NaN, Infinity, -Infinity]',          # not JSON: orjson refuses it, the standard library reads it
    '"\\ud800"',                           # a lone surrogate: the same
    '[1e400]',
])
def test_a_sealed_document_parses_as_json_loads_parses_it(text):
    from toolkit.state.statedir import parse_sealed_json

    expected, found = json.loads(text), parse_sealed_json(text.encode())
    assert repr(found) == repr(expected)  # (NaN != NaN: compared by how they print)


def test_a_sealed_document_nested_too_deeply_or_damaged_is_damage(monkeypatch):
    from toolkit.state.statedir import parse_sealed_json

    with pytest.raises(ValueError, match="nested too deeply"):
        parse_sealed_json(NESTED.encode())
    with pytest.raises(ValueError):
        parse_sealed_json(b'{"cut": [1, 2')
    monkeypatch.setitem(__import__("sys").modules, "orjson", None)  # not installed: the standard library
    assert parse_sealed_json(b'{"a": [1, 2]}') == {"a": [1, 2]}
    with pytest.raises(ValueError, match="nested too deeply"):
        parse_sealed_json(NESTED.encode())


@pytest.mark.parametrize("document", [
    {"format": 5, "text": "tables:\n  é: {}\n", "spans": [["rules", "t", "input", 0, 3, 4, 10]], "x": None, "b": True},
    {"big": 2 ** 70, "key": "ok"},  # beyond orjson's integers: written as json writes it
    [],
])
def test_a_plain_document_written_fast_reads_back_as_it_was(document):
    from toolkit.state.statedir import json_line, parse_sealed_json, plain_json_line

    line = plain_json_line(document)
    assert "\n" not in line and parse_sealed_json(line.encode()) == json.loads(json_line(document)) == document
