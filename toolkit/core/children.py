"""Forked children of a command: bound to it, quiet, and work left to one.

netkeel forks where a child has everything it needs in memory already: the
throwaway namespaces that compile and prove firewall content
(kernel/nft_scratch.py, kernel/nft_proof.py), the reading ahead of tables
(kernel/readahead.py), and the writing of caches while the command goes on
(`Behind`). Each such child must not outlive the command (`bound_child`): a
parent killed outright (SIGKILL) cannot kill it, and it holds what it
inherited while it lives; nor write to the user's terminal (`quiet_child`).
"""

from __future__ import annotations

import ctypes
import faulthandler
import os
import resource
import select
import signal
import sys
import threading

PR_SET_PDEATHSIG = 1
WAIT_S = 60  # a child left work longer than this is killed (Behind.wait): a cache, never needed


def quiet_child() -> None:
    """For a forked child about to use libnftables: its own crash messages
    ("*** stack smashing detected ***") are not for the user's terminal, and a
    core file is not wanted."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.dup2(devnull, 1)
    os.close(devnull)
    # And Python's own, on those two: they may have written elsewhere (a test's capture).
    sys.stdout = open(1, "w", closefd=False)
    sys.stderr = open(2, "w", closefd=False)
    faulthandler.disable()  # (it writes to the stderr it was given, a copy of the old one)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def bound_child(parent: int):
    """For a forked child that must not outlive the command `parent`: quiet
    (quiet_child), Ctrl-C as its default (the parent kills it if it must),
    killed with its parent (PR_SET_PDEATHSIG). libc, or None if the parent died
    before that was asked (the child then leaves)."""
    quiet_child()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    return libc if os.getppid() == parent else None


def detached_child(parent: int, keep: int | None = None):
    """For a forked child that works on alone: none of the command's descriptors
    but its standard ones and `keep` (the command's sockets, and a lock it may
    hold, are the command's), bound to it (bound_child), SIGTERM at its default
    (the command's own handling of it is the command's). libc, or None if the
    command died before that was asked (the child then leaves)."""
    top = os.sysconf("SC_OPEN_MAX")
    if keep is None:
        os.closerange(3, top)
    else:
        os.closerange(3, keep)
        os.closerange(keep + 1, top)
    libc = bound_child(parent)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    return libc


class Behind:
    """`work()` done by a forked child while the command goes on, then
    `wait()`ed for before the command ends, so that what it wrote is there when
    the command is over, as if written in line. For work that never raises and
    needs nothing of the command but memory: keeping caches of megabytes
    (cli/reconcile.py: a one-rule edit of a 10,000-rule policy writes 15 MB,
    0.1 s of the edit's 0.6 s, which then overlaps the kernel work). A process,
    not a thread: the encoding is Python, and shares no interpreter lock so.

    Forked only before the command takes its lock or opens a kernel session (the
    child closes every descriptor but its standard ones, which point nowhere),
    and only with no other thread running (a fork copies the calling thread
    alone, and a lock another one held would stay held in the child): else, and
    where the fork fails, the work is done at once, here. The child takes Ctrl-C
    and SIGTERM as their default and dies with the command (PR_SET_PDEATHSIG);
    killed in the middle, it leaves a temporary file, which the state directory
    sweeps (statedir: STALE_TEMP_S)."""

    def __init__(self, work):
        self._pid = None
        if threading.active_count() == 1:
            parent = os.getpid()
            try:
                pid = os.fork()
            except OSError:
                pid = None
            if pid == 0:  # the child: never returns
                _work_in_child(work, parent)
            self._pid = pid
        if self._pid is None:
            work()

    def wait(self) -> None:
        """Until the child is over (at most WAIT_S: then it is killed). Twice is once."""
        pid, self._pid = self._pid, None
        if pid is None:
            return
        try:
            done = os.pidfd_open(pid)
        except OSError:  # (a kernel without pidfds: waited for without a bound)
            done = None
        try:
            if done is not None and not select.select([done], [], [], WAIT_S)[0]:
                os.kill(pid, signal.SIGKILL)
        finally:
            if done is not None:
                os.close(done)
            os.waitpid(pid, 0)


def _work_in_child(work, parent: int) -> None:
    status = 0
    try:
        if detached_child(parent) is None:
            return
        work()
    except BaseException:  # noqa: BLE001 - nothing more is done; the command goes on without it
        status = 1
    finally:
        os._exit(status)
