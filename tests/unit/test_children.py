"""core/children.Behind: work left to a forked child while the command goes on."""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import threading
import time

from toolkit.core import children
from toolkit.core.processes import alive
from toolkit.core.children import Behind


def _write_pid(path):
    def work():
        with open(path, "w") as f:
            f.write(str(os.getpid()))
    return work


def test_the_work_is_done_by_a_child_and_is_there_after_wait(tmp_path):
    out = tmp_path / "pid"
    behind = Behind(_write_pid(out))
    behind.wait()
    assert out.exists(), "the work was not done before wait() returned"
    assert int(out.read_text()) != os.getpid()  # a child did it
    behind.wait()  # twice is once


def test_with_another_thread_running_the_work_is_done_here(tmp_path):
    out = tmp_path / "pid"
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        behind = Behind(_write_pid(out))
        assert int(out.read_text()) == os.getpid()  # done at once, in this process: no fork
        behind.wait()
    finally:
        stop.set()
        other.join()


def test_a_child_past_its_bound_is_killed(tmp_path, monkeypatch):
    monkeypatch.setattr(children, "WAIT_S", 0.3)
    out = tmp_path / "done"
    behind = Behind(lambda: (time.sleep(30), out.write_text("late")))
    started = time.monotonic()
    behind.wait()
    assert time.monotonic() - started < 5
    assert not out.exists()


def test_the_child_writes_nothing_to_the_terminal_and_holds_no_descriptor(tmp_path, capfd):
    opened = os.open(tmp_path / "held", os.O_WRONLY | os.O_CREAT)
    keep_open = fcntl.fcntl(opened, fcntl.F_DUPFD, 100)  # (not a number the child's own listing may take)
    os.close(opened)
    out = tmp_path / "fds"

    def work():
        print("to the terminal")
        print("to its errors", file=sys.stderr)
        out.write_text(" ".join(sorted(os.listdir("/proc/self/fd"))))

    try:
        Behind(work).wait()
    finally:
        os.close(keep_open)
    captured = capfd.readouterr()
    assert "terminal" not in captured.out and "errors" not in captured.err
    fds = {int(n) for n in out.read_text().split()}
    assert keep_open not in fds, "the child kept a descriptor of the command's (the state lock may be one)"


def test_the_child_dies_with_the_command(tmp_path):
    """A command killed outright (SIGKILL) cannot wait for its child: the child
    goes with it (PR_SET_PDEATHSIG), and leaves no file it had not finished."""
    child_pid = tmp_path / "child"
    done = tmp_path / "done"
    read_end, write_end = os.pipe()
    command = os.fork()
    if command == 0:  # the command: starts the child, says so, and waits to be killed
        try:
            os.close(read_end)

            def work():
                child_pid.write_text(str(os.getpid()))
                time.sleep(30)
                done.write_text("late")

            Behind(work)
            os.write(write_end, b"x")
            time.sleep(30)
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        assert os.read(read_end, 1) == b"x"
        deadline = time.monotonic() + 5
        while not child_pid.exists() or not child_pid.read_text():
            assert time.monotonic() < deadline, "the child never started"
            time.sleep(0.01)
        pid = int(child_pid.read_text())
        os.kill(command, signal.SIGKILL)
        os.waitpid(command, 0)
        deadline = time.monotonic() + 2
        while alive(pid):
            assert time.monotonic() < deadline, "the child outlived the command"
            time.sleep(0.01)
        assert not done.exists()
    finally:
        os.close(read_end)
