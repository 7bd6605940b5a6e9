"""Reading ahead (kernel/readahead.py): the child it forks, what a reader may
take from it, and how the child goes (done, dead, silent, interrupted). The
real reading of a real table is tested against the kernel
(integration/test_fast_paths.py). The readings here are made by a stand-in
for _read, in the child (the fork takes the monkeypatch along)."""

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
    """Each test with no child started and nothing read; its children waited for after."""
    monkeypatch.setattr(readahead, "_done", {})
    monkeypatch.setattr(readahead, "_readers", [])
    monkeypatch.setattr(readahead, "_readings", {})
    yield
    readahead.settle()


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


def test_at_most_a_few_namespaces_are_read_ahead_one_after_another_in_one_child(monkeypatch):
    def read(kernel, name, cookie, generation, as_json=False):
        readahead._readings[("order", name)] = (DEVICES, (cookie, generation, as_json, os.getpid(), time.monotonic()))

    monkeypatch.setattr(readahead, "_read", read)
    marks = {f"ns{i:02}": (i, 5) for i in range(readahead.LIMIT + 3)}
    marks["bad"] = ("cookie", 5)
    readahead.start(marks, by_json={"ns01"})
    readahead.start(marks)  # asked again: nothing read twice
    readahead.settle()
    read_so = sorted(readahead._readings.items(), key=lambda item: item[1][1][4])
    assert [(key[1], *made[:3]) for key, (_, made) in read_so] == \
        [(f"ns{i:02}", i, 5, i == 1) for i in range(readahead.LIMIT)]
    assert len({made[3] for _, (_, made) in read_so} - {os.getpid()}) == 1 and len(readahead._readers) == 1


def test_each_namespace_is_taken_as_soon_as_its_own_reading_is_over(monkeypatch, tmp_path):
    """The reader takes the first namespace while the child reads the next;
    a reading that fails still lets the reader go on (with nothing)."""
    go_on = tmp_path / "go-on"

    def read(kernel, name, cookie, generation, as_json=False):
        if name == "b":
            while not go_on.exists():  # (the parent says when; bounded by the test's own end)
                time.sleep(0.01)
            raise OSError("gone")
        readahead._readings[(cookie, generation, "inet", "t")] = (DEVICES, name)

    monkeypatch.setattr(readahead, "_read", read)
    try:
        readahead.start({"a": (1, 1), "b": (2, 1), "c": (3, 1)})
        assert readahead.take("a", 1, 1, "inet", "t", DEVICES) == "a"  # while b's is under way
        go_on.touch()
        assert readahead.take("b", 2, 1, "inet", "t", DEVICES) is readahead.MISSING
        assert readahead.take("c", 3, 1, "inet", "t", DEVICES) == "c"  # read all the same
    finally:
        go_on.touch()


def test_a_child_that_dies_leaves_no_reader_waiting(monkeypatch):
    def read(kernel, name, cookie, generation, as_json=False):
        if name == "a":
            raise SystemExit  # (not an Exception: the loop itself ends)
        readahead._readings[(cookie, generation, "inet", "t")] = (DEVICES, name)

    monkeypatch.setattr(readahead, "_read", read)
    readahead.start({"a": (1, 1), "b": (2, 1)})
    assert readahead.take("b", 2, 1, "inet", "t", DEVICES) is readahead.MISSING


def test_a_child_killed_outright_leaves_no_reader_waiting(monkeypatch):
    monkeypatch.setattr(readahead, "_read", lambda *args: os.kill(os.getpid(), signal.SIGKILL))
    readahead.start({"a": (1, 1)})
    assert readahead.take("a", 1, 1, "inet", "t", DEVICES) is readahead.MISSING
    assert readahead._readers[0]._fd is None  # over, and waited for


def test_a_silent_child_is_killed_and_nothing_is_taken_from_it(monkeypatch):
    from toolkit.kernel import nft_scratch

    monkeypatch.setattr(nft_scratch, "TIMEOUT_S", 0.3)
    monkeypatch.setattr(readahead, "_read", lambda *args: time.sleep(60))
    readahead.start({"a": (1, 1)})
    started = time.monotonic()
    assert readahead.take("a", 1, 1, "inet", "t", DEVICES) is readahead.MISSING
    assert time.monotonic() - started < 30  # not the 60 s it would have taken
    pid = readahead._readers[0]._pid
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # killed and reaped


def test_a_reader_interrupted_while_waiting_kills_the_child(monkeypatch):
    """Ctrl-C while the reader waits: the child goes at once (it would read on
    for nobody) and the interruption goes on up."""
    monkeypatch.setattr(readahead, "_read", lambda *args: time.sleep(60))
    readahead.start({"a": (1, 1)})
    previous = signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(KeyboardInterrupt):
            readahead.take("a", 1, 1, "inet", "t", DEVICES)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    with pytest.raises(ChildProcessError):
        os.waitpid(readahead._readers[0]._pid, os.WNOHANG)
    assert readahead.take("a", 1, 1, "inet", "t", DEVICES) is readahead.MISSING


def test_the_child_keeps_no_descriptor_of_the_commands(monkeypatch):
    """Its sockets, and a lock it may hold (an apply's quick check holds the
    state lock, and a flock lives as long as any copy of its descriptor)."""
    import fcntl

    opened = os.open(os.devnull, os.O_RDONLY)
    held = fcntl.fcntl(opened, fcntl.F_DUPFD, 900)  # (high: none the child opens gets its number)
    os.close(opened)
    try:
        def read(kernel, name, cookie, generation, as_json=False):
            try:
                fcntl.fcntl(held, fcntl.F_GETFD)
                readahead._readings[(cookie, generation, "inet", "t")] = (DEVICES, "kept")
            except OSError:
                readahead._readings[(cookie, generation, "inet", "t")] = (DEVICES, "closed")

        monkeypatch.setattr(readahead, "_read", read)
        readahead.start({"a": (1, 1)})
        assert readahead.take("a", 1, 1, "inet", "t", DEVICES) == "closed"
    finally:
        os.close(held)


def test_the_child_writes_nothing_to_the_terminal(monkeypatch, capfd):
    def read(kernel, name, cookie, generation, as_json=False):
        print("from the child")
        os.write(2, b"from the child, raw\n")
        readahead._readings[(cookie, generation, "inet", "t")] = (DEVICES, "read")

    monkeypatch.setattr(readahead, "_read", read)
    readahead.start({"a": (1, 1)})
    assert readahead.take("a", 1, 1, "inet", "t", DEVICES) == "read"
    readahead.settle()
    out, err = capfd.readouterr()
    assert "from the child" not in out + err


def test_a_failed_read_leaves_nothing(monkeypatch):
    """The real _read against a namespace that does not exist: no reading, no error."""
    readahead.start({"netkeel-test-no-such-namespace": (1, 2)})
    assert readahead.take("netkeel-test-no-such-namespace", 1, 2, "inet", "netkeel_x", DEVICES) is readahead.MISSING


def test_a_reading_is_handed_over_before_its_listings_are_freed(monkeypatch):
    """Freeing a libnftables context that listed 10,000 rules takes 15-25 ms:
    the child sends the reading before its session's close (here: one that
    never ends)."""
    from toolkit.kernel.session import Kernel

    def read(kernel, name, cookie, generation, as_json=False):
        readahead._readings[(cookie, generation, "inet", "t")] = (DEVICES, "read")

    monkeypatch.setattr(Kernel, "close", lambda kernel: time.sleep(60))
    monkeypatch.setattr(readahead, "_read", read)
    readahead.start({"ns": (1, 2)})
    try:
        assert readahead.take("ns", 1, 2, "inet", "t", DEVICES) == "read"
    finally:
        readahead._readers[0]._end(kill=True)


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


def test_nothing_is_read_ahead_while_another_thread_runs(monkeypatch):
    """A fork copies the calling thread alone: a thread holding a lock the child
    needs would hang it."""
    monkeypatch.setattr(readahead, "_read", lambda *args: None)
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, args=(5,), daemon=True)
    thread.start()
    try:
        readahead.start({"a": (1, 1)})
    finally:
        stop.set()
        thread.join()
    assert readahead._readers == [] and not readahead.ahead("a", 1, 1, "inet", "t")
    assert readahead.take("a", 1, 1, "inet", "t", DEVICES) is readahead.MISSING


# A command that starts reading ahead (the reading never ends), says its child's
# pid, and is killed outright.
KILLED = """\
import os, signal, sys, time
from toolkit.kernel import readahead
said = sys.argv[1]  # (the child keeps no descriptor of the command's: it says so in a file)
readahead._read = lambda *args: (open(said, "w").close(), time.sleep(60))
readahead.start({"a": (1, 1)})
while not os.path.exists(said):  # until the child is reading
    time.sleep(0.01)
print(readahead._readers[0]._pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_the_child_dies_with_a_command_killed_outright(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "killed.py"
    script.write_text(KILLED)
    result = subprocess.run([sys.executable, str(script), str(tmp_path / "reading")], capture_output=True,
                            text=True, timeout=30, cwd=Path(__file__).parents[2])
    assert result.returncode == -signal.SIGKILL, result.stderr
    child = int(result.stdout)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{child}/stat") as stat:
                if stat.read().split(") ")[1].startswith("Z"):
                    break  # dead, waiting for init to reap it
        except FileNotFoundError:
            break
        time.sleep(0.02)
    else:
        pytest.fail(f"the child {child} outlived its parent by 5 s")


def test_ahead_says_whether_a_reading_may_still_be_taken(monkeypatch):
    """The reader lists a table's chains and sets beside a reading only where one
    may come: under way, or come and not taken (a second read lists nothing twice)."""
    def read(kernel, name, cookie, generation, as_json=False):
        readahead._readings[(cookie, generation, "inet", "t")] = (DEVICES, "read")

    monkeypatch.setattr(readahead, "_read", read)
    readahead.start({"a": (1, 1)})
    assert readahead.ahead("a", 1, 1, "inet", "t")  # under way (or come)
    assert readahead.take("a", 1, 1, "inet", "t", DEVICES) == "read"
    assert not readahead.ahead("a", 1, 1, "inet", "t")  # taken
    assert not readahead.ahead("a", 1, 2, "inet", "t") and not readahead.ahead("b", 1, 1, "inet", "t")


def test_a_process_forked_from_the_command_leaves_the_child_and_its_pipe_alone(monkeypatch, tmp_path):
    """A plan's proof child (or any fork) inherits the reader's objects: it takes
    nothing (it would read the command's frames off the pipe, and kill and wait
    for a process not its own), and the command still gets its reading."""
    go_on = tmp_path / "go-on"

    def read(kernel, name, cookie, generation, as_json=False):
        while not go_on.exists():
            time.sleep(0.01)
        readahead._readings[(cookie, generation, "inet", "t")] = (DEVICES, "read")

    monkeypatch.setattr(readahead, "_read", read)
    readahead.start({"a": (1, 1)})
    pid = os.fork()
    if pid == 0:
        ok = readahead.take("a", 1, 1, "inet", "t", DEVICES) is readahead.MISSING \
            and not readahead.ahead("a", 1, 1, "inet", "t")
        readahead.settle()
        os._exit(0 if ok else 1)
    assert os.waitpid(pid, 0)[1] == 0
    go_on.touch()
    assert readahead.take("a", 1, 1, "inet", "t", DEVICES) == "read"


def test_the_childs_python_streams_write_to_dev_null(monkeypatch):
    import sys

    def read(kernel, name, cookie, generation, as_json=False):
        streams = [os.readlink(f"/proc/self/fd/{stream.fileno()}") for stream in (sys.stdout, sys.stderr)]
        readahead._readings[(cookie, generation, "inet", "t")] = (DEVICES, streams)

    monkeypatch.setattr(readahead, "_read", read)
    readahead.start({"a": (1, 1)})
    assert readahead.take("a", 1, 1, "inet", "t", DEVICES) == [os.devnull, os.devnull]
