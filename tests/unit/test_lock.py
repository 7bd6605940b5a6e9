"""The state lock: an flock on <state>/lock, holding the holder's pid and command.

Each StateLock opens the lock file itself (its own open file description), so two
locks in one process conflict exactly as two netkeel processes would."""

import json
import os
import time

import pytest

from toolkit.state.lock import LockHeld, StateLock
from toolkit.state.statedir import StateDir


@pytest.fixture
def state(tmp_path):
    return StateDir(tmp_path / "state")


def holder(state):
    text = state.path("lock").read_text()
    return json.loads(text) if text else {}


def test_the_holder_writes_its_pid_and_command(state):
    with StateLock(state):
        info = holder(state)
        assert info["pid"] == os.getpid()
        assert info["command"] and info["since"]


def test_a_second_lock_fails_at_once_naming_the_holder(state):
    with StateLock(state):
        started = time.monotonic()
        with pytest.raises(LockHeld, match=f"pid {os.getpid()} ") as caught:
            with StateLock(state):
                pass  # pragma: no cover
        assert time.monotonic() - started < 1
        assert caught.value.holder["pid"] == os.getpid()
        assert "--wait" in str(caught.value)


def test_waiting_gives_up_after_the_timeout(state):
    with StateLock(state):
        started = time.monotonic()
        with pytest.raises(LockHeld, match=f"pid {os.getpid()} "):
            with StateLock(state, wait=True, timeout=0.3):
                pass  # pragma: no cover
        assert 0.3 <= time.monotonic() - started < 5


def test_after_release_the_lock_can_be_taken_again_and_holder_info_is_cleared(state):
    with StateLock(state) as lock:
        assert lock.fd is not None
    assert lock.fd is None
    assert holder(state) == {}
    with StateLock(state, wait=True, timeout=1):
        assert holder(state)["pid"] == os.getpid()
    assert holder(state) == {}


def test_a_failed_attempt_does_not_disturb_the_holder(state):
    with StateLock(state):
        before = holder(state)
        with pytest.raises(LockHeld):
            StateLock(state).__enter__()
        assert holder(state) == before


def test_held_tells_whether_anyone_holds_the_lock_now(state):
    from toolkit.state.lock import held

    assert held(state) is False  # no lock file yet
    with StateLock(state):
        assert held(state) is True
        assert held(state) is True  # probing did not take it over
    assert held(state) is False
    with StateLock(state):  # and probing left it free to take
        pass


def test_a_holder_that_is_not_an_object_is_reported_as_unknown(state):
    state.ensure()
    with StateLock(state):
        with open(state.path("lock"), "w") as f:
            f.write("[1, 2]")
        with pytest.raises(LockHeld, match=r"pid \? \(unknown command"):
            StateLock(state).__enter__()
