"""kernel/fanout.py: a share read by a forked helper comes back as if read here;
a helper that fails in any way costs only time, and none is left behind."""

from __future__ import annotations

import os
import signal
import time

import pytest

from toolkit.kernel import fanout

ITEMS = [f"ns{i}" for i in range(300)]


@pytest.fixture
def forked(monkeypatch):
    """The pids of the helpers read_all forks (each checked reaped afterwards)."""
    pids = []
    real_fork = os.fork

    def fork():
        pid = real_fork()
        if pid:
            pids.append(pid)
        return pid

    monkeypatch.setattr(fanout.os, "fork", fork)
    yield pids
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reaped by read_all: no zombie, no stray helper


def here(item):
    return ("here", item, os.getpid())


def helper(item):
    return ("helper", item, os.getpid())


@pytest.mark.parametrize("helpers", [1, 2, 3])
def test_the_helpers_shares_come_back_in_the_callers_order(forked, helpers):
    results, by_helper = fanout.read_all(ITEMS, here, helper, helpers)
    assert list(results) == ITEMS
    assert len(forked) == helpers
    assert by_helper and set(by_helper) < set(ITEMS)
    for item, (where, read, pid) in results.items():
        assert read == item
        assert (where == "helper") == (item in by_helper)
        assert (pid in forked) == (item in by_helper)
        assert (pid == os.getpid()) == (item not in by_helper)
    # this process takes the larger share: a helper's answer costs a fork and two pickles
    assert len(ITEMS) - len(by_helper) > len(by_helper) / helpers


def test_no_helpers_reads_everything_here(forked):
    results, by_helper = fanout.read_all(ITEMS, here, helper, 0)
    assert list(results) == ITEMS and not by_helper and not forked
    assert {r[0] for r in results.values()} == {"here"}


def _failing_on(bad, how):
    def read(item):
        if item == bad:
            how()
        return helper(item)
    return read


def _raise():
    raise OSError(5, "I/O error")


def _killed():
    os.kill(os.getpid(), signal.SIGKILL)


def _exit_cleanly():
    os._exit(0)  # an exit 0 that wrote nothing: an answer that does not unpickle


@pytest.mark.parametrize("how", [_raise, _killed, _exit_cleanly], ids=["raises", "sigkill", "exit-0-silent"])
def test_a_failed_helpers_share_is_read_here(forked, how):
    bad = ITEMS[-1]  # in the helper's share
    results, by_helper = fanout.read_all(ITEMS, here, _failing_on(bad, how), 1)
    assert list(results) == ITEMS
    assert not by_helper
    assert all(r[0] == "here" and r[2] == os.getpid() for r in results.values())


def test_an_answer_that_cannot_be_pickled_is_read_here(forked):
    results, by_helper = fanout.read_all(ITEMS, here, lambda item: (lambda: item), 1)
    assert not by_helper and list(results) == ITEMS
    assert all(r[0] == "here" for r in results.values())


def test_an_error_reading_here_again_is_raised_as_ever(forked):
    def here_failing(item):
        if item == ITEMS[-1]:
            raise OSError(2, "gone")
        return here(item)

    with pytest.raises(OSError, match="gone"):
        fanout.read_all(ITEMS, here_failing, _failing_on(ITEMS[-1], _raise), 1)


def test_of_two_helpers_only_the_failed_ones_share_is_read_again(forked):
    bad = ITEMS[-1]
    results, by_helper = fanout.read_all(ITEMS, here, _failing_on(bad, _raise), 2)
    assert by_helper and bad not in by_helper
    assert all((r[0] == "helper") == (item in by_helper) for item, r in results.items())


def test_an_interrupted_caller_kills_and_reaps_its_helpers(forked):
    def hangs(item):
        time.sleep(60)
        return helper(item)

    def interrupted(item):
        raise KeyboardInterrupt

    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        fanout.read_all(ITEMS, interrupted, hangs, 2)
    assert time.monotonic() - start < 30  # not waited for: killed (a hang would take 60 s)
    assert len(forked) == 2


def test_no_process_to_be_had_reads_here(monkeypatch):
    def refused():
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(fanout.os, "fork", refused)
    opened = len(os.listdir("/proc/self/fd"))
    results, by_helper = fanout.read_all(ITEMS, here, helper, 2)
    assert not by_helper and list(results) == ITEMS
    assert len(os.listdir("/proc/self/fd")) == opened  # the pipes made for them are closed


def test_how_many_helpers(monkeypatch):
    monkeypatch.setattr(fanout.os, "sched_getaffinity", lambda pid: {0, 1})
    assert fanout.helpers_for(0) == 0
    assert fanout.helpers_for(2 * fanout.MIN_SHARE - 1) == 0  # a helper's share would be too small
    assert fanout.helpers_for(2 * fanout.MIN_SHARE) == 1
    assert fanout.helpers_for(100_000) == 1  # one spare processor
    monkeypatch.setattr(fanout.os, "sched_getaffinity", lambda pid: set(range(64)))
    assert fanout.helpers_for(100_000) == fanout.MAX_HELPERS
    monkeypatch.setattr(fanout.os, "sched_getaffinity", lambda pid: {0})
    assert fanout.helpers_for(100_000) == 0


HANGS_UNLESS_KILLED = r"""
import os, sys, time
from toolkit.kernel import fanout
pids = sys.argv[1]

def helper(item):
    if item in (300, 301, 302):  # each helper's first item (shares 300+i::3 ... see _shares)
        with open(pids, "a") as f:
            f.write(f"{os.getpid()}\n")
    return f"{item:08}" * 125  # answers over a pipe's 64 KiB (each its own string: pickle keeps one of equals)
def here(item):
    if item == 0:
        print("reading", flush=True)
    return item
try:
    fanout.read_all(list(range(600)), here, lambda item: (time.sleep(0.002), helper(item))[1], 2)
except KeyboardInterrupt:
    sys.exit(3)
"""


def test_an_interrupt_while_collecting_kills_every_helper_and_never_hangs(tmp_path):
    """Found by review: a helper held the read end of an earlier helper's pipe,
    and an interrupt while collecting left the caller waiting for a helper it
    had not killed, both helpers blocked writing: a SIGTERMed apply hung for
    good, holding the state lock."""
    import subprocess
    import sys

    pids = tmp_path / "pids"
    for delay in (0.05, 0.3, 0.6, 0.9):
        pids.write_text("")
        proc = subprocess.Popen([sys.executable, "-c", HANGS_UNLESS_KILLED, str(pids)], stdout=subprocess.PIPE,
                                text=True)
        assert proc.stdout.readline() == "reading\n"
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)  # to the caller alone, not its process group
        try:
            assert proc.wait(timeout=30) in (0, 3)  # finished first, or interrupted: never hung
        finally:
            proc.kill()
            proc.wait()
        for pid in map(int, pids.read_text().split()):
            with pytest.raises(ProcessLookupError):  # killed and reaped by the caller before it left
                os.kill(pid, 0)


def test_a_helper_forked_while_the_caller_holds_signals_takes_them(forked):
    """A read inside a section that holds off Ctrl-C and SIGTERM (core/interrupts.py)
    forks helpers with them blocked: a helper unblocks them, so one signalled dies."""
    def terminated(item):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(3 if item == ITEMS[-1] else 0)  # (had it lived on, it would answer in 3 s)
        return helper(item)

    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        results, by_helper = fanout.read_all(ITEMS, here, terminated, 1)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
    assert not by_helper and list(results) == ITEMS  # it died of the signal: its share read here
