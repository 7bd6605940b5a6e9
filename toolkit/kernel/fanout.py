"""Spread a read of many namespaces over this machine's processors.

Reading a namespace is six netlink dumps, most of it time the kernel spends
building messages, and namespaces are independent of each other: one process
asking a thousand of them in turn leaves the other processors idle (0.8 s for
1,000 namespaces on 2 processors here; 0.5 s with one helper). So shares of a
long list are read by forked helper processes at the same time as the rest is
read here, and come back pickled through a pipe.

A helper only reads, with sockets of its own made in namespaces the caller has
already opened (the fds it inherits): what it reads is those namespaces,
whatever happened to their names meanwhile. A helper that fails in any way (an
error, a signal, an answer that does not unpickle) costs only time: its share
is read here again, where an error is raised as it always was. A helper left
behind by an interrupted caller is killed and reaped.
"""

from __future__ import annotations

import os
import signal

MIN_SHARE = 100   # items a helper must have: fewer, and forking costs more than it saves
MAX_HELPERS = 3   # beyond this the dumps wait on the kernel's own locks
HERE_WEIGHT = 1.25  # this process reads 1.25 times a helper's share (measured best of 1, 1.25, 1.5)


def helpers_for(count: int) -> int:
    """How many helper processes to read `count` items with: one per spare
    processor this process may run on, each share about MIN_SHARE items or more."""
    try:
        processors = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        processors = os.cpu_count() or 1
    return max(0, min(processors - 1, MAX_HELPERS, count // MIN_SHARE - 1))


def read_all(items: list, read_here, read_in_helper, helpers: int) -> tuple[dict, set]:
    """({item: result} in the order of `items`, the items a helper read).

    `read_here(item)` runs in this process; `read_in_helper(item)` in a forked
    helper, and must return something picklable. With `helpers` 0 everything
    is read here."""
    shares = _shares(items, helpers)
    here = list(shares[0])
    started: list = []
    results: dict = {}
    by_helper: set = set()
    try:
        for share in shares[1:]:
            try:
                _start(share, read_in_helper, started)
            except OSError:  # no process to be had (a limit): read here
                here += share
        for item in here:
            results[item] = read_here(item)
        while started:
            share = started[0][2]
            answer = _collect(started)  # takes the first helper off the list and reaps it, whatever happens
            if isinstance(answer, dict) and list(answer) == share:
                results.update(answer)
                by_helper.update(share)
            else:
                for item in share:  # the helper failed: read its share here, errors raised as ever
                    results[item] = read_here(item)
    finally:
        for pid, fd, _ in started:  # interrupted: nothing more is wanted of them
            _end(pid, fd)
    return {item: results[item] for item in items}, by_helper


def _shares(items: list, helpers: int) -> list:
    """[this process's share, each helper's]: a helper's answer costs a fork,
    pickling and unpickling, so this process takes HERE_WEIGHT times a helper's."""
    if helpers <= 0:
        return [list(items)]
    here = round(len(items) * HERE_WEIGHT / (HERE_WEIGHT + helpers))
    rest = items[here:]
    return [list(items[:here])] + [rest[i::helpers] for i in range(helpers)]


_STOPS = {signal.SIGINT, signal.SIGTERM}


def _start(share: list, read, started: list) -> None:
    """Fork a helper reading `share`; (pid, read end of its pipe, share) goes
    into `started` before a Ctrl-C or SIGTERM can be taken (they wait, blocked,
    across the fork): an interrupted caller always knows whom to kill."""
    read_end, write_end = os.pipe()
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS)
    try:
        try:
            pid = os.fork()
        except OSError:
            os.close(read_end)
            os.close(write_end)
            raise
        if pid == 0:  # the helper: never returns
            _helper(share, read, write_end, [read_end] + [fd for _, fd, _ in started])
        os.close(write_end)
        started.append((pid, read_end, share))
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def _helper(share: list, read, write_end: int, others: list) -> None:
    status = 1
    try:
        # The read ends of its own pipe and of earlier helpers' are the caller's
        # alone: a helper holding another's, that one could never see its
        # reader gone, and would wait on a full pipe for good.
        for fd in others:
            os.close(fd)
        for stop in _STOPS:  # a Ctrl-C or SIGTERM ends it at once, whatever the caller was in
            try:
                signal.signal(stop, signal.SIG_DFL)
            except ValueError:  # forked from a thread other than the main one: the handler raises
                pass
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPS)
        import pickle

        data = memoryview(pickle.dumps({item: read(item) for item in share}, pickle.HIGHEST_PROTOCOL))
        while data:
            data = data[os.write(write_end, data):]
        status = 0
    except BaseException:  # noqa: BLE001 - the caller reads this share again
        pass
    finally:
        os._exit(status)


def _collect(started: list):
    """The answer of the first helper in `started`, or None if it failed; that
    helper taken off the list and reaped (killed first if reading its answer
    was interrupted). Ctrl-C and SIGTERM wait while it changes hands: a helper
    is always either on the list or this function's to kill."""
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS)
    pid, fd, _ = started.pop(0)
    chunks = []
    opened = read = False
    try:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        with os.fdopen(fd, "rb", closefd=True) as pipe:
            opened = True
            while chunk := pipe.read(1 << 20):
                chunks.append(chunk)
        read = True
    finally:
        if not opened:
            os.close(fd)
        if not read:
            _kill(pid)
        _, status = os.waitpid(pid, 0)
    if status != 0:
        return None
    try:
        import pickle

        return pickle.loads(b"".join(chunks))
    except Exception:  # noqa: BLE001 - a torn answer: the share is read again
        return None


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _end(pid: int, fd: int) -> None:
    _kill(pid)
    try:
        os.close(fd)
    except OSError:
        pass
    os.waitpid(pid, 0)
