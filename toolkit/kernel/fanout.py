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
    processor this process may run on, each with at least MIN_SHARE items."""
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
    started = []
    results: dict = {}
    by_helper: set = set()
    try:
        for share in shares[1:]:
            try:
                started.append(_start(share, read_in_helper))
            except OSError:  # no process to be had (a limit): read here
                here += share
        for item in here:
            results[item] = read_here(item)
        while started:
            pid, fd, share = started.pop(0)
            answer = _collect(pid, fd)  # reaps the helper, whatever happens
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


def _start(share: list, read) -> tuple:
    read_end, write_end = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(read_end)
        os.close(write_end)
        raise
    if pid == 0:  # the helper: never returns
        status = 1
        try:
            import pickle

            os.close(read_end)
            signal.signal(signal.SIGINT, signal.SIG_DFL)  # a Ctrl-C ends it at once
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            data = memoryview(pickle.dumps({item: read(item) for item in share}, pickle.HIGHEST_PROTOCOL))
            while data:
                data = data[os.write(write_end, data):]
            status = 0
        except BaseException:  # noqa: BLE001 - the caller reads this share again
            pass
        finally:
            os._exit(status)
    os.close(write_end)
    return pid, read_end, share


def _collect(pid: int, fd: int):
    """The helper's answer, or None if it failed; the helper reaped."""
    chunks = []
    try:
        with os.fdopen(fd, "rb", closefd=True) as pipe:
            while chunk := pipe.read(1 << 20):
                chunks.append(chunk)
    finally:
        _, status = os.waitpid(pid, 0)
    if status != 0:
        return None
    try:
        import pickle

        return pickle.loads(b"".join(chunks))
    except Exception:  # noqa: BLE001 - a torn answer: the share is read again
        return None


def _end(pid: int, fd: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.close(fd)
    except OSError:
        pass
    os.waitpid(pid, 0)
