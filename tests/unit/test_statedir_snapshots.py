"""Only files netkeel named are snapshots: pruning and listing leave anything
else in snapshots/ alone and never trip over it; the journal's pins hold."""

import os

import pytest

from toolkit.state.journal import Journal
from toolkit.state.snapshots import Snapshot, SnapshotError, Snapshots, new_id
from toolkit.state.statedir import StateDir

IDS = [f"2024010{d}T000000.000Z-abcd" for d in range(1, 5)]


@pytest.fixture
def state(tmp_path):
    return StateDir(tmp_path / "state")


@pytest.fixture
def snapshots(state):
    snapshots = Snapshots(state)
    for snapshot_id in IDS:
        snapshots.save(Snapshot(id=snapshot_id, time="2024-01-01T00:00:00+00:00", instance="lab",
                                topology="lab", prefix="", reason="before apply", resources=(),
                                namespaces=(), owned=()))
    return snapshots


def directory(state):
    return state.path("snapshots")


def test_prune_leaves_files_netkeel_did_not_name(state, snapshots):
    for name in ("package.json", "000.json", f"{IDS[0]}.json.bak", f"x{IDS[0]}.json", f"{IDS[0].upper()}.json"):
        (directory(state) / name).write_text("{}")
    removed = snapshots.prune(1)
    assert removed == IDS[:3]
    assert sorted(os.listdir(directory(state))) == sorted(
        ["package.json", "000.json", f"{IDS[0]}.json.bak", f"x{IDS[0]}.json", f"{IDS[0].upper()}.json",
         f"{IDS[3]}.json"])


def test_a_directory_named_like_a_snapshot_is_listed_as_not_one_and_never_pruned(state, snapshots):
    (directory(state) / "000.json").mkdir()
    (directory(state) / "20230101T000000.000Z-0000.json").mkdir()
    assert snapshots.ids() == IDS
    (odd, error), *rest = snapshots.listing()
    assert [odd] + [i for i, _ in rest] == ["20230101T000000.000Z-0000"] + IDS
    assert isinstance(error, SnapshotError) and "is a directory, not a file netkeel wrote" in str(error)
    assert snapshots.prune(1) == IDS[:3]
    assert (directory(state) / "20230101T000000.000Z-0000.json").is_dir()


def test_a_symlink_or_fifo_named_like_a_snapshot_is_never_read_and_listed_as_not_one(state, snapshots, tmp_path):
    """Left out of `snapshots` silently, a snapshot replaced by something else
    went unnoticed until a rollback to it was refused."""
    target = tmp_path / "precious.json"
    target.write_text("{}")
    (directory(state) / "20230101T000000.000Z-0000.json").symlink_to(target)
    os.mkfifo(directory(state) / "20230102T000000.000Z-0000.json")
    assert snapshots.ids() == IDS
    listed = dict(snapshots.listing())  # a FIFO read would block: it is not opened
    assert "is a symbolic link" in str(listed["20230101T000000.000Z-0000"])
    assert "is a FIFO" in str(listed["20230102T000000.000Z-0000"])
    snapshots.prune(1)
    assert target.read_text() == "{}"


def test_ids_of_new_snapshots_match_the_id_format():
    from toolkit.state.snapshots import ID
    assert all(ID.fullmatch(new_id()) for _ in range(20))


def test_prune_keeps_the_snapshot_an_interruption_warning_points_to(state, snapshots):
    journal = Journal(state)
    journal.append({"event": "start", "tx": "d", "op": "destroy", "instance": "lab", "snapshot": IDS[0]})
    assert snapshots.prune(1) == IDS[1:3]
    assert snapshots.ids() == [IDS[0], IDS[3]]


def test_prune_keeps_each_instances_last_apply_snapshot_without_being_told(state, snapshots):
    journal = Journal(state)
    journal.append({"event": "start", "tx": "a", "op": "apply", "instance": "lab", "snapshot": IDS[1]})
    journal.append({"event": "end", "tx": "a", "outcome": "ok"})
    assert snapshots.prune(1) == [IDS[0], IDS[2]]


def _with_an_address(snapshots):
    from toolkit.core.resource import Resource

    snapshot_id = "20240109T000000.000Z-abcd"
    snapshots.save(Snapshot(id=snapshot_id, time="2024-01-09T00:00:00+00:00", instance="lab", topology="lab",
                            prefix="", reason="before apply", namespaces=("lab-a",), owned=("lab-a",),
                            resources=(Resource.make("netns", ("lab-a",)),
                                       Resource.make("addr", ("lab-a", "eth0", "10.0.1.2/24")))))
    return snapshot_id


def test_a_snapshot_with_a_bit_flipped_is_refused_naming_the_file(snapshots):
    """Found by review: an address flipped 10.0.1.2 -> 10.0.1.3 passed every check,
    and a rollback put an address on the machine that never was there."""
    snapshot_id = _with_an_address(snapshots)
    assert snapshots.load(snapshot_id).resources
    path = snapshots.path(snapshot_id)
    path.write_text(path.read_text().replace("10.0.1.2/24", "10.0.1.3/24"))
    with pytest.raises(Exception) as caught:
        snapshots.load(snapshot_id)
    assert f"({path})" in str(caught.value) and "damaged" in str(caught.value)


@pytest.mark.parametrize("change, said", [
    (lambda data: data.pop("sha256"), "damaged"),
    (lambda data: data.update(format=7), "format 7"),
    (lambda data: data.update(sha256="0" * 64), "damaged"),
])
def test_a_snapshot_of_this_format_must_carry_its_digest(snapshots, change, said):
    import json

    snapshot_id = _with_an_address(snapshots)
    path = snapshots.path(snapshot_id)
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    with pytest.raises(Exception, match=said):
        snapshots.load(snapshot_id)


def test_an_older_snapshot_without_a_digest_is_read_as_it_was(snapshots):
    import json

    snapshot_id = _with_an_address(snapshots)
    path = snapshots.path(snapshot_id)
    data = json.loads(path.read_text())
    del data["sha256"]
    data["format"] = 1
    path.write_text(json.dumps(data))
    assert len(snapshots.load(snapshot_id).resources) == 2
