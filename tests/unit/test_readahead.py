"""Reading ahead (kernel/readahead.py): the threads it starts, what a reader may
take from them, and the fork that must wait for them. The real reading of a
real table is tested against the kernel (integration/test_fast_paths.py)."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from toolkit.kernel import readahead


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    """Each test with no thread started and nothing read."""
    monkeypatch.setattr(readahead, "_threads", {})
    monkeypatch.setattr(readahead, "_readings", {})


def test_a_background_call_gives_its_value_or_raises_what_it_raised():
    assert readahead.Background(lambda a, b: a + b, 2, 3).result() == 5

    def fails():
        raise OSError(5, "refused")

    with pytest.raises(OSError, match="refused"):
        readahead.Background(fails).result()


def test_a_background_thread_takes_no_signal_and_leaves_the_callers_mask_alone():
    """Ctrl-C and SIGTERM must reach the main thread, which holds them back where
    it must (around a fork): a thread taking them would run Python's handler then."""
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    blocked = readahead.Background(lambda: signal.pthread_sigmask(signal.SIG_BLOCK, [])).result()
    assert {signal.SIGINT, signal.SIGTERM, signal.SIGHUP} <= blocked
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before


def test_a_reading_is_taken_once_and_only_at_its_own_cookie_and_generation(monkeypatch):
    def read(name, cookie, generation):
        readahead._readings[(cookie, generation, "inet", "netkeel_lab")] = f"{name} at {generation}"
        readahead._readings[(cookie, generation, "inet", "netkeel_other")] = None  # not readable by text

    monkeypatch.setattr(readahead, "_read", read)
    readahead.start({"lab-fw": (7, 41)})
    assert readahead.take("lab-fw", 7, 42, "inet", "netkeel_lab") is readahead.MISSING  # a commit since
    assert readahead.take("lab-fw", 8, 41, "inet", "netkeel_lab") is readahead.MISSING  # another namespace
    assert readahead.take("lab-fw", 7, 41, "inet", "netkeel_other") is None
    assert readahead.take("lab-fw", 7, 41, "inet", "netkeel_lab") == "lab-fw at 41"
    assert readahead.take("lab-fw", 7, 41, "inet", "netkeel_lab") is readahead.MISSING  # taken
    assert readahead.take("lab-gw", 7, 41, "inet", "netkeel_lab") is readahead.MISSING  # never read ahead


def test_take_waits_for_the_reading_under_way(monkeypatch):
    def read(name, cookie, generation):
        time.sleep(0.2)
        readahead._readings[(cookie, generation, "inet", "t")] = "read"

    monkeypatch.setattr(readahead, "_read", read)
    readahead.start({"ns": (1, 2)})
    assert readahead.take("ns", 1, 2, "inet", "t") == "read"


def test_at_most_a_few_namespaces_are_read_ahead_and_marks_of_another_shape_none(monkeypatch):
    started = []
    monkeypatch.setattr(readahead, "_read", lambda *args: started.append(args))
    marks = {f"ns{i:02}": (i, 5) for i in range(readahead.LIMIT + 3)}
    marks["bad"] = ("cookie", 5)
    readahead.start(marks)
    readahead.start(marks)  # asked again: nothing read twice
    readahead.settle()
    assert sorted(started) == [(f"ns{i:02}", i, 5) for i in range(readahead.LIMIT)]


def test_a_fork_waits_for_the_readings_under_way(monkeypatch):
    """A forked child runs Python (fanout's helpers, the scratch checker): no
    thread of ours may be mid-call in the parent when it is made."""
    done = threading.Event()

    def read(name, cookie, generation):
        time.sleep(0.3)
        done.set()

    monkeypatch.setattr(readahead, "_read", read)
    readahead.start({"ns": (1, 2)})
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    assert done.is_set()
    assert os.waitpid(pid, 0)[1] == 0


def test_a_failed_read_leaves_nothing(monkeypatch):
    """The real _read against a namespace that does not exist: no reading, no error."""
    readahead.start({"netkeel-test-no-such-namespace": (1, 2)})
    assert readahead.take("netkeel-test-no-such-namespace", 1, 2, "inet", "netkeel_x") is readahead.MISSING
