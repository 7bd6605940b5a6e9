"""State files in a temporary state directory: atomic JSON writes, the inventory,
and snapshots (round trip, listing, pruning, the keep setting, ids)."""

import json
import stat
from datetime import datetime, timedelta, timezone

import pytest

from toolkit.core.resource import Resource
from toolkit.errors import NetkeelError
from toolkit.state.inventory import Inventory, InventoryError
from toolkit.state.snapshots import (DEFAULT_KEEP, KEEP_ENV, Snapshot, SnapshotError, Snapshots,
                                     keep_setting, new_id)
from toolkit.state.statedir import StateDir

R = Resource.make


@pytest.fixture
def state(tmp_path):
    return StateDir(tmp_path / "state")


S1, S2, S3 = (f"2024010{d}T000000.000Z-abcd" for d in (1, 2, 3))


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


# -- StateDir.write_json --------------------------------------------------------------

def test_write_json_round_trips_with_mode_0600_and_no_temp_files(state):
    data = {"b": [1, 2], "a": {"x": None}}
    target = state.write_json("sub/file.json", data)
    assert target == state.path("sub", "file.json")
    assert state.read_json("sub/file.json") == data
    assert mode(target) == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["file.json"]


def test_write_json_replaces_the_previous_content(state):
    state.write_json("f.json", {"v": 1})
    state.write_json("f.json", {"v": 2})
    assert state.read_json("f.json") == {"v": 2}
    assert [p.name for p in state.root.iterdir()] == ["f.json"]


def test_write_json_that_fails_leaves_no_temp_file(state):
    state.write_json("f.json", {"v": 1})
    with pytest.raises(TypeError):
        state.write_json("f.json", {"v": object()})  # not JSON serialisable
    assert state.read_json("f.json") == {"v": 1}
    assert [p.name for p in state.root.iterdir()] == ["f.json"]


def test_read_json_of_a_missing_file_gives_the_default(state):
    assert state.read_json("nothing.json", default={"d": 1}) == {"d": 1}


# -- Inventory -----------------------------------------------------------------------

def test_inventory_record_namespaces_and_owner(state):
    inventory = Inventory(state)
    inventory.record("t_lab", ["t_b", "t_a", "t_a"], topology="lab", prefix="t_")
    again = Inventory(state)  # read back from the file
    assert again.namespaces("t_lab") == {"t_a", "t_b"}
    assert again.instances["t_lab"]["namespaces"] == ["t_a", "t_b"]
    assert again.instances["t_lab"]["topology"] == "lab"
    assert again.owner_of("t_a") == "t_lab"
    assert again.owner_of("other") is None
    assert again.namespaces("unknown") == set()
    assert mode(state.path("inventory.json")) == 0o600


def test_inventory_record_with_no_namespaces_drops_the_instance(state):
    Inventory(state).record("one", ["a"])
    Inventory(state).record("two", ["b"])
    Inventory(state).record("one", [])
    inventory = Inventory(state)
    assert set(inventory.instances) == {"two"}
    assert inventory.owner_of("a") is None


@pytest.mark.parametrize("content", ['["not", "an", "inventory"]', '{"version": 1}',
                                     '{"instances": []}'])
def test_inventory_that_is_not_an_inventory_raises_naming_the_file(state, content):
    state.ensure()
    state.path("inventory.json").write_text(content)
    with pytest.raises(InventoryError, match=str(state.path("inventory.json"))):
        Inventory(state)


def test_truncated_inventory_raises_inventory_error_naming_the_file(state):
    state.ensure()
    state.path("inventory.json").write_text('{"version": 1, "inst')
    with pytest.raises(InventoryError, match=str(state.path("inventory.json"))):
        Inventory(state)


# -- Snapshots -----------------------------------------------------------------------

RULES = ('{"expr":[{"accept":null}]}', '{"expr":[{"drop":null}]}')  # canonical rules are JSON text
TABLE = R("nft_table", ("ns_a", "inet", "netkeel_t"), **{
    "chain input": '{"hook": "input"}', "rules input": RULES,
    "_display": (("input", "x"),), "_handle": 7})


def snapshot(snapshot_id, **changes):
    fields = dict(id=snapshot_id, time="2024-01-01T00:00:00+00:00", instance="t_lab", topology="lab",
                  prefix="t_", reason="before apply",
                  resources=(R("netns", ("ns_a",)), TABLE,
                             R("link", ("ns_a", "eth0"), kind="veth", peer="ns_b/eth0", mtu=1500, state="up")),
                  namespaces=("ns_b", "ns_a"), owned=("ns_a",),
                  manifests=({"path": "lab.yaml", "sha256": "ab" * 32},),
                  git={"commit": "c0ffee", "dirty": False, "root": "/repo"})
    fields.update(changes)
    return Snapshot(**fields)


def test_snapshot_round_trip_keeps_tuples_and_drops_underscore_fields(state):
    snapshots = Snapshots(state)
    snapshots.save(snapshot(S1))
    loaded = snapshots.load(S1)
    table = next(r for r in loaded.resources if r.kind == "nft_table")
    assert table.get("rules input") == RULES  # a tuple again, not a list
    assert table.get("_display") is None and table.get("_handle") is None
    plain_table = R(TABLE.kind, TABLE.key, **{k: v for k, v in TABLE.spec if not k.startswith("_")})
    assert set(loaded.resources) == set(snapshot(S1).resources) - {TABLE} | {plain_table}
    assert loaded.namespaces == ("ns_a", "ns_b")
    assert loaded.owned == ("ns_a",)
    assert loaded.manifests == ({"path": "lab.yaml", "sha256": "ab" * 32},)
    assert loaded.git == {"commit": "c0ffee", "dirty": False, "root": "/repo"}
    assert (loaded.instance, loaded.topology, loaded.prefix, loaded.reason) == \
        ("t_lab", "lab", "t_", "before apply")
    assert loaded.present == {"ns_a"}
    assert mode(snapshots.path(S1)) == 0o600


def test_snapshot_ids_are_sorted_oldest_first(state):
    snapshots = Snapshots(state)
    assert snapshots.ids() == []
    for i in ("20240103T000000.000Z-aaaa", "20240101T000000.000Z-ffff", "20240102T000000.000Z-0000"):
        snapshots.save(snapshot(i))
    assert snapshots.ids() == ["20240101T000000.000Z-ffff", "20240102T000000.000Z-0000",
                               "20240103T000000.000Z-aaaa"]


@pytest.mark.parametrize("content", ["", f'{{"id": "{S2}", "time": "2024', "[1, 2]", f'{{"id": "{S2}"}}'])
def test_listing_reports_a_corrupt_snapshot_and_keeps_the_others(state, content):
    snapshots = Snapshots(state)
    snapshots.save(snapshot(S1))
    snapshots.save(snapshot(S3))
    snapshots.path(S2).write_text(content)
    listing = snapshots.listing()
    assert [i for i, _ in listing] == [S1, S2, S3]
    assert isinstance(listing[0][1], Snapshot) and isinstance(listing[2][1], Snapshot)
    assert isinstance(listing[1][1], SnapshotError)
    assert str(snapshots.path(S2)) in str(listing[1][1])


def test_listing_reports_a_snapshot_with_a_malformed_resource(state):
    snapshots = Snapshots(state)
    snapshots.save(snapshot(S1))
    data = json.loads(snapshots.path(S1).read_text())
    data["resources"][0]["spec"] = []
    snapshots.path(S1).write_text(json.dumps(data))
    assert isinstance(snapshots.listing()[0][1], SnapshotError)


def test_load_of_a_missing_snapshot_raises_naming_it(state):
    with pytest.raises(SnapshotError, match=f"no snapshot {S1}"):
        Snapshots(state).load(S1)
    with pytest.raises(SnapshotError, match="no snapshot nope: snapshot ids look like"):
        Snapshots(state).load("nope")


def test_prune_keeps_the_newest_and_every_pinned_one(state):
    snapshots = Snapshots(state)
    ids = [f"2024010{d}T000000.000Z-0000" for d in range(1, 7)]
    for i in ids:
        snapshots.save(snapshot(i))
    removed = snapshots.prune(2, pinned={ids[1], ids[5], "unknown"})
    assert removed == [ids[0], ids[2], ids[3]]
    assert snapshots.ids() == [ids[1], ids[4], ids[5]]


def test_prune_with_fewer_snapshots_than_keep_removes_nothing(state):
    snapshots = Snapshots(state)
    snapshots.save(snapshot(S1))
    assert snapshots.prune(5) == []
    assert snapshots.ids() == [S1]


@pytest.mark.parametrize("value, expected", [(None, DEFAULT_KEEP), ("7", 7), ("1", 1), ("", DEFAULT_KEEP),
                                             (" 12 ", 12)])
def test_keep_setting(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv(KEEP_ENV, raising=False)
    else:
        monkeypatch.setenv(KEEP_ENV, value)
    assert keep_setting() == expected


@pytest.mark.parametrize("value", ["0", "-3", "many", "2.5", "1e3", "\u0661"])
def test_a_keep_setting_that_is_no_count_of_one_or_more_is_refused(monkeypatch, value):
    monkeypatch.setenv(KEEP_ENV, value)
    with pytest.raises(NetkeelError, match=rf"\${KEEP_ENV}=.*expected how many snapshots to keep"):
        keep_setting()


def test_new_ids_sort_by_time():
    start = datetime(2024, 12, 31, 23, 59, 59, 998000, tzinfo=timezone.utc)
    times = [start + timedelta(milliseconds=n) for n in (0, 1, 2, 1000, 3_600_000)]
    ids = [new_id(t) for t in times]
    assert sorted(reversed(ids)) == ids
    assert ids[0].startswith("20241231T235959.998Z-")
    assert ids[2].startswith("20250101T000000.000Z-")
    assert new_id() != new_id()  # random suffix


def test_an_inventory_a_process_out_of_files_cannot_open_is_not_called_damaged(tmp_path, monkeypatch):
    import errno

    state = StateDir(tmp_path / "state")

    def out_of_files(*args, **kwargs):
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(state, "read_json", out_of_files)
    with pytest.raises(InventoryError) as raised:
        Inventory(state)
    assert "ulimit -n" in str(raised.value) and "move it aside" not in str(raised.value)
