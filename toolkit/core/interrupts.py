"""Holding off Ctrl-C and SIGTERM while netkeel puts the kernel back.

A first signal starts a restore (an apply's snapshot, a fault's revert); a
second one, pressed while that runs, must not leave the kernel half restored:
it waits until the restore ends, then arrives as usual."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

HELD = {signal.SIGINT, signal.SIGTERM}


@contextmanager
def uninterrupted():
    """Block SIGINT and SIGTERM in this thread for the block's lifetime (only the
    main thread receives them: elsewhere this does nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, HELD)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def hold():
    """Block SIGINT and SIGTERM now (in the main thread); returns the function that
    lets them in again, to be called where they can be handled: a signal that came
    meanwhile is raised there."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, HELD)
    released = []

    def release():
        if not released:
            released.append(True)
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return release


def let_in() -> None:
    """For a process netkeel starts that lives on (a speaker, a keeper, a guard,
    a worker): take SIGINT and SIGTERM as they come. A process inherits the
    signals its starter held off (uninterrupted()): a speaker a fault's revert
    started again ignored SIGTERM for good, and could not be stopped (found by
    review). (The VRRP speaker, the standard library's alone, does the same itself.)"""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD)
