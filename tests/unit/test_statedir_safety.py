"""The state directory cannot be turned against root: no state file is opened
through a symlink, and a directory someone else could write to is refused."""

import os
import stat

import pytest

from toolkit.errors import StateDirError
from toolkit.state.inventory import Inventory
from toolkit.state.journal import Journal
from toolkit.state.lock import StateLock
from toolkit.state.statedir import StateDir

SECRET = "root's precious file\n"


@pytest.fixture
def state(tmp_path):
    state = StateDir(tmp_path / "state")
    state.ensure()
    return state


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "victim"
    path.write_text(SECRET)
    return path


def test_a_new_state_directory_is_created_with_mode_0700(tmp_path):
    state = StateDir(tmp_path / "deep" / "state")
    state.ensure()
    assert stat.S_IMODE(state.root.stat().st_mode) == 0o700


def test_a_symlinked_lock_is_refused_and_its_target_left_alone(state, victim):
    state.path("lock").symlink_to(victim)
    with pytest.raises(StateDirError, match=f"{state.path('lock')}.*symbolic link"):
        with StateLock(state):
            pass  # pragma: no cover
    assert victim.read_text() == SECRET


def test_a_symlinked_journal_is_refused_and_its_target_left_alone(state, victim):
    state.path("journal.jsonl").symlink_to(victim)
    with pytest.raises(StateDirError, match="symbolic link"):
        Journal(state).append({"event": "start", "tx": "a", "op": "apply", "instance": "i"})
    with pytest.raises(StateDirError, match="symbolic link"):
        Journal(state).records()
    assert victim.read_text() == SECRET


def test_a_symlinked_inventory_is_not_read(state, victim):
    victim.write_text('{"instances": {}}')
    state.path("inventory.json").symlink_to(victim)
    with pytest.raises(StateDirError, match="symbolic link"):
        Inventory(state)


def test_an_atomic_write_replaces_a_symlink_never_its_target(state, victim):
    state.path("inventory.json").symlink_to(victim)
    state.write_json("inventory.json", {"instances": {}})
    assert victim.read_text() == SECRET
    assert not state.path("inventory.json").is_symlink()
    assert Inventory(state).instances == {}


def test_a_hard_link_to_a_file_elsewhere_is_refused(state, victim):
    os.link(victim, state.path("journal.jsonl"))
    with pytest.raises(StateDirError, match="hard link"):
        Journal(state).append({"event": "start", "tx": "a", "op": "apply", "instance": "i"})
    assert victim.read_text() == SECRET


def test_a_fifo_in_place_of_a_state_file_is_refused_without_hanging(state):
    os.mkfifo(state.path("journal.jsonl"))
    with pytest.raises(StateDirError, match="not a regular file"):
        Journal(state).records()


@pytest.mark.parametrize("mode, who", [(0o777, "group and others"), (0o703, "others"), (0o770, "group")])
def test_a_state_directory_others_can_write_is_refused(state, mode, who):
    os.chmod(state.root, mode)
    with pytest.raises(StateDirError, match=f"{state.root}: it is writable by {who}.*chmod 700") as caught:
        with StateLock(state):
            pass  # pragma: no cover
    assert "--state-dir" in str(caught.value)
    with pytest.raises(StateDirError):
        Journal(state).records()
    assert not state.path("lock").exists()


def test_a_group_writable_snapshots_directory_is_refused(state):
    from toolkit.state.snapshots import Snapshots

    state.path("snapshots").mkdir(mode=0o700)
    os.chmod(state.path("snapshots"), 0o775)
    with pytest.raises(StateDirError, match=f"{state.path('snapshots')}: it is writable by group"):
        Snapshots(state).ids()


def test_a_symlinked_state_directory_is_refused(tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    state = StateDir(tmp_path / "link")
    state.root.symlink_to(real)
    with pytest.raises(StateDirError, match=f"{state.root}: it is a symbolic link"):
        state.ensure()


def test_a_symlinked_snapshots_directory_is_refused(state, tmp_path):
    from toolkit.state.snapshots import Snapshots

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (elsewhere / "20240101T000000.000Z-abcd.json").write_text("{}")
    state.path("snapshots").symlink_to(elsewhere)
    with pytest.raises(StateDirError, match="symbolic link"):
        Snapshots(state).prune(0)
    assert (elsewhere / "20240101T000000.000Z-abcd.json").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory away")
def test_a_state_directory_owned_by_another_user_is_refused(state):
    os.chown(state.root, 65534, 65534)
    with pytest.raises(StateDirError, match=f"{state.root}: it is owned by uid 65534, not by uid 0"):
        state.ensure()


def test_a_state_directory_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(StateDirError, match="not a directory"):
        StateDir(tmp_path / "file").ensure()


def test_temp_files_a_killed_writer_left_are_swept_by_a_later_write(state):
    """A writer killed between creating its temp file and renaming it leaves a
    whole copy behind; the next write in that directory removes such copies once
    they are old enough that no live writer can own them, and never a young one."""
    state.write_json("cache/a.json", {"n": 1})
    directory = state.path("cache")
    old = directory / ".snapshot-x.json.0123456789ab.tmp"
    young = directory / ".a.json.ba9876543210.tmp"
    old.write_text("{}")
    young.write_text("{}")
    aged = os.stat(old).st_mtime - 3600
    os.utime(old, (aged, aged))
    state.write_json("cache/a.json", {"n": 2})
    assert not old.exists()
    assert young.exists()
    assert state.read_json("cache/a.json") == {"n": 2}


@pytest.mark.parametrize("root", ["", "  "])
def test_an_empty_state_dir_option_is_refused_never_read_as_the_default(root, monkeypatch, tmp_path):
    monkeypatch.setenv("NETKEEL_STATE_DIR", str(tmp_path / "default"))
    with pytest.raises(StateDirError, match="--state-dir is empty"):
        StateDir(root)
    assert not (tmp_path / "default").exists()
    assert StateDir(None).root == tmp_path / "default"  # the option left out: the default, as before
