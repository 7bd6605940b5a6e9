"""A call run in a thread of its own, for work that waits outside Python's lock.

Used where the kernel or libnftables does the work while the main thread goes
on (the rule-handle dump beside a text listing: kernel/nftables.py). The thread is a daemon, so a command that
never asks for the result does not wait for it at exit, and it runs with
every signal blocked, so Ctrl-C and SIGTERM reach the main thread, which
defers them where it must (kernel/fanout.py).
"""

from __future__ import annotations

import signal
import threading


class Background:
    """A call run in a daemon thread with every signal blocked; result() joins it."""

    def __init__(self, call, *args):
        self._call, self._args = call, args
        self._value = self._error = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        # The thread takes the signal mask of the thread starting it: block first.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        try:
            self._thread.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    def _run(self) -> None:
        try:
            self._value = self._call(*self._args)
        except BaseException as exc:  # noqa: BLE001 - handed to whoever asks for the result
            self._error = exc

    def result(self):
        """The call's value; raises what it raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value

    def join(self) -> None:
        self._thread.join()
