"""Reading ahead (kernel/readahead.py): the threads it starts, what a reader may
take from them, and the fork that must wait for them. The real reading of a
real table is tested against the kernel (integration/test_fast_paths.py)."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from toolkit.core.background import Background
from toolkit.kernel import readahead

DEVICES = [["lo", 1], ["eth0", 2]]  # what the reader read the namespace's devices as


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    """Each test with no thread started and nothing read."""
    monkeypatch.setattr(readahead, "_done", {})
    monkeypatch.setattr(readahead, "_readers", [])
    monkeypatch.setattr(readahead, "_readings", {})


def test_a_background_call_gives_its_value_or_raises_what_it_raised():
    assert Background(lambda a, b: a + b, 2, 3).result() == 5

    def fails():
        raise OSError(5, "refused")

    with pytest.raises(OSError, match="refused"):
        Background(fails).result()


def test_a_background_thread_takes_no_signal_and_leaves_the_callers_mask_alone():
    """Ctrl-C and SIGTERM must reach the main thread, which holds them back where
    it must (around a fork): a thread taking them would run Python's handler then."""
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    blocked = Background(lambda: signal.pthread_sigmask(signal.SIG_BLOCK, [])).result()
    assert {signal.SIGINT, signal.SIGTERM, signal.SIGHUP} <= blocked
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before


def test_a_reading_is_taken_once_and_only_at_its_own_cookie_and_generation(monkeypatch):
    def read(kernel, name, cookie, generation, as_json=False):
        readahead._readings[(cookie, generation, "inet", "netkeel_lab")] = (DEVICES, f"{name} at {generation}")
        readahead._readings[(cookie, generation, "inet", "netkeel_other")] = (DEVICES, None)  # not by text

    monkeypatch.setattr(readahead, "_read", read)
    readahead.start({"lab-fw": (7, 41)})
    assert readahead.take("lab-fw", 7, 42, "inet", "netkeel_lab", DEVICES) is readahead.MISSING  # a commit since
    assert readahead.take("lab-fw", 8, 41, "inet", "netkeel_lab", DEVICES) is readahead.MISSING  # another namespace
    assert readahead.take("lab-fw", 7, 41, "inet", "netkeel_other", DEVICES) is None
    assert readahead.take("lab-fw", 7, 41, "inet", "netkeel_lab", DEVICES) == "lab-fw at 41"
    assert readahead.take("lab-fw", 7, 41, "inet", "netkeel_lab", DEVICES) is readahead.MISSING  # taken
    assert readahead.take("lab-gw", 7, 41, "inet", "netkeel_lab", DEVICES) is readahead.MISSING  # never read ahead


def test_a_reading_made_with_other_devices_is_not_taken(monkeypatch):
    """A rule naming a device by index prints the name the device had when
    listed, and renaming a device moves no generation."""
    def read(kernel, name, cookie, generation, as_json=False):
        readahead._readings[(cookie, generation, "inet", "t")] = (DEVICES, "read")

    monkeypatch.setattr(readahead, "_read", read)
    readahead.start({"ns": (1, 2)})
    assert readahead.take("ns", 1, 2, "inet", "t", [["lo", 1], ["eth1", 2]]) is readahead.MISSING
    readahead.start({"other": (3, 2)})
    assert readahead.take("other", 3, 2, "inet", "t", None) is readahead.MISSING  # devices not known


def test_take_waits_for_the_reading_under_way(monkeypatch):
    def read(kernel, name, cookie, generation, as_json=False):
        time.sleep(0.2)
        readahead._readings[(cookie, generation, "inet", "t")] = (DEVICES, "read")

    monkeypatch.setattr(readahead, "_read", read)
    readahead.start({"ns": (1, 2)})
    assert readahead.take("ns", 1, 2, "inet", "t", DEVICES) == "read"


def test_at_most_a_few_namespaces_are_read_ahead_one_after_another_in_one_thread(monkeypatch):
    started = []
    monkeypatch.setattr(readahead, "_read", lambda *args: started.append((*args, threading.get_ident())))
    marks = {f"ns{i:02}": (i, 5) for i in range(readahead.LIMIT + 3)}
    marks["bad"] = ("cookie", 5)
    readahead.start(marks, by_json={"ns01"})
    readahead.start(marks)  # asked again: nothing read twice
    readahead.settle()
    assert [args[1:5] for args in started] == [(f"ns{i:02}", i, 5, i == 1) for i in range(readahead.LIMIT)]
    assert len({args[-1] for args in started}) == 1 and len(readahead._readers) == 1


def test_each_namespace_is_taken_as_soon_as_its_own_reading_is_over(monkeypatch):
    """The reader takes the first namespace while the thread reads the next;
    a reading that fails still lets the reader go on (with nothing)."""
    second = threading.Event()

    def read(kernel, name, cookie, generation, as_json=False):
        if name == "b":
            second.wait(5)
            raise OSError("gone")
        readahead._readings[(cookie, generation, "inet", "t")] = (DEVICES, name)

    monkeypatch.setattr(readahead, "_read", read)
    readahead.start({"a": (1, 1), "b": (2, 1), "c": (3, 1)})
    assert readahead.take("a", 1, 1, "inet", "t", DEVICES) == "a"  # while b's is under way
    second.set()
    assert readahead.take("b", 2, 1, "inet", "t", DEVICES) is readahead.MISSING
    assert readahead.take("c", 3, 1, "inet", "t", DEVICES) == "c"  # read all the same


def test_a_thread_that_dies_leaves_no_reader_waiting(monkeypatch):
    def read(kernel, name, cookie, generation, as_json=False):
        raise SystemExit  # (not an Exception: the loop itself ends)

    monkeypatch.setattr(readahead, "_read", read)
    readahead.start({"a": (1, 1), "b": (2, 1)})
    assert readahead.take("b", 2, 1, "inet", "t", DEVICES) is readahead.MISSING


def test_a_fork_waits_for_the_readings_under_way(monkeypatch):
    """A forked child runs Python (fanout's helpers, the scratch checker): no
    thread of ours may be mid-call in the parent when it is made."""
    done = threading.Event()

    def read(kernel, name, cookie, generation, as_json=False):
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
    assert readahead.take("netkeel-test-no-such-namespace", 1, 2, "inet", "netkeel_x", DEVICES) is readahead.MISSING


def test_a_reading_is_handed_over_before_its_listings_are_freed(monkeypatch):
    """Freeing a libnftables context that listed 10,000 rules takes 15-25 ms:
    the reader takes the reading while the thread frees them (Kernel.close)."""
    from toolkit.kernel.session import Kernel

    freed = threading.Event()
    closing = Kernel.close

    def close(kernel):
        freed.wait(5)
        closing(kernel)

    def read(kernel, name, cookie, generation, as_json=False):
        readahead._readings[(cookie, generation, "inet", "t")] = (DEVICES, "read")

    monkeypatch.setattr(Kernel, "close", close)
    monkeypatch.setattr(readahead, "_read", read)
    readahead.start({"ns": (1, 2)})
    assert readahead.take("ns", 1, 2, "inet", "t", DEVICES) == "read"
    assert not freed.is_set()
    freed.set()
    readahead.settle()


def test_the_switch_interval_is_short_while_reading_and_as_it_was_after(monkeypatch):
    """Each system call of the thread gives up the interpreter's lock; taking it
    back from a busy main thread waited the whole default interval (5 ms)."""
    import sys

    seen = []
    monkeypatch.setattr(readahead, "_read", lambda *args: seen.append(sys.getswitchinterval()))
    before = sys.getswitchinterval()
    readahead.start({"ns": (1, 2)})
    readahead.settle()
    assert seen == [readahead.SWITCH_INTERVAL] and sys.getswitchinterval() == before


def test_overlapping_readers_put_the_switch_interval_back_as_it_was_before_the_first(monkeypatch):
    """The second start saved the first's lowered interval and, ending last,
    left it lowered for good (found by review)."""
    import sys

    second_started, second_may_end = threading.Event(), threading.Event()

    def read(kernel, name, cookie, generation, as_json=False):
        if name == "first":
            second_started.wait(5)  # the two overlap
        else:
            second_started.set()
            second_may_end.wait(5)

    monkeypatch.setattr(readahead, "_read", read)
    before = sys.getswitchinterval()
    readahead.start({"first": (1, 1)})
    readahead.start({"second": (2, 1)})
    readahead._readers[0].join()  # the first is over, the second still reading
    assert sys.getswitchinterval() == readahead.SWITCH_INTERVAL
    second_may_end.set()
    readahead.settle()
    assert sys.getswitchinterval() == before


def test_a_whole_ruleset_listed_ahead_is_taken_once_at_its_own_marks(monkeypatch):
    def read(kernel, name, cookie, generation, as_json=False):
        readahead._readings[(cookie, generation, readahead.RULESET)] = (DEVICES, [{"table": {"name": name}}])

    monkeypatch.setattr(readahead, "_read", read)
    readahead.start({"ns": (1, 2)})
    assert readahead.take_ruleset("ns", 1, 3, DEVICES) is readahead.MISSING  # a commit since
    assert readahead.take_ruleset("ns", 1, 2, DEVICES) == [{"table": {"name": "ns"}}]
    assert readahead.take_ruleset("ns", 1, 2, DEVICES) is readahead.MISSING  # taken
    assert readahead.take_ruleset("other", 1, 2, DEVICES) is readahead.MISSING  # never read ahead
    readahead.start({"renamed": (5, 2)})
    assert readahead.take_ruleset("renamed", 5, 2, [["lo", 1], ["eth1", 2]]) is readahead.MISSING  # other devices


def test_closing_a_namespace_with_no_libnftables_context_never_waits_for_the_reader():
    """The quick check starts reading ahead, then closes its own session, whose
    namespaces made no libnftables context: that close must not wait for the
    library's lock, which the reader holds for a whole listing (it waited
    0.3 s, the time the command meant to spend importing)."""
    from toolkit.kernel import nftables
    from toolkit.kernel.session import Namespace

    handle = Namespace("ns", os.open(os.devnull, os.O_RDONLY), loop=lambda: None)
    handle.parked = []  # as the reader's own sessions have it, empty
    held, done = threading.Event(), threading.Event()

    def reader():
        with nftables.LIBRARY:
            held.set()
            done.wait(10)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        assert held.wait(5)
        closed = threading.Event()
        Background(lambda: (handle.close(), closed.set()))
        assert closed.wait(2), "closing waited for libnftables' lock"
    finally:
        done.set()
        thread.join(5)
