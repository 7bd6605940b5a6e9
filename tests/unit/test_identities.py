"""identities.log as a killed change leaves it: records of the namespaces it made,
never folded (a kill skips the fold), the last one possibly cut short."""

import os

import pytest

from toolkit.state.identities import LOG, Identities
from toolkit.state.statedir import StateDir


@pytest.fixture
def state(tmp_path):
    state = StateDir(tmp_path / "state")
    state.ensure()
    return state


def left_by_a_kill(state, content: bytes) -> None:
    fd = state.open(LOG, os.O_WRONLY | os.O_CREAT)
    try:
        os.write(fd, content)
    finally:
        os.close(fd)


@pytest.mark.parametrize("content", [b"1001 t-a\n", b"1001 t-a\n10"], ids=["whole", "cut short"])
def test_the_next_change_appends_after_what_a_killed_one_left(state, content):
    left_by_a_kill(state, content)
    identities = Identities(state)
    identities.record("t-b", 1002)  # the next change's first namespace
    identities.close()
    assert Identities(state).load() == {"t-a": 1001, "t-b": 1002}
    assert state.read_bytes(LOG).endswith(b"\n1002 t-b\n")  # a cut record stays alone on its line
