"""A command that leaves by os._exit (the `netkeel` script) does not free the
libnftables context it releases first (one: memory): libnftables' teardown of one
whose cache holds a 10,000-rule chain took 26-37 ms, and the kernel frees the
process at once. Any other process (invoke's, a test's, a keeper) frees them."""

import gc
import weakref

from toolkit.core import processes
from toolkit.kernel import session


class Context:
    """Stands for a libnftables context: only whether it was freed matters."""


def released(namespace: session.Namespace) -> weakref.ref:
    namespace._nft = Context()
    gone = weakref.ref(namespace._nft)
    namespace.release_nft()
    gc.collect()
    return gone


def test_released_contexts_are_freed_unless_the_process_leaves_by_exit(monkeypatch):
    monkeypatch.setattr(session, "_UNFREED", [])
    namespace = session.Namespace("x", -1, loop=lambda: None)
    monkeypatch.setattr(processes, "leaves_by_exit", False)
    assert released(namespace)() is None  # freed at once
    monkeypatch.setattr(processes, "leaves_by_exit", True)
    kept = [released(namespace) for _ in range(session.UNFREED_AT_MOST + 3)]
    assert [ref() is not None for ref in kept] == [True] * session.UNFREED_AT_MOST + [False] * 3
    assert namespace._nft is None  # made again on next use, as ever


def test_parked_contexts_are_left_to_the_exit_too_when_closed(monkeypatch):
    monkeypatch.setattr(session, "_UNFREED", [])
    monkeypatch.setattr(processes, "leaves_by_exit", True)
    import os

    namespace = session.Namespace("x", os.open("/dev/null", os.O_RDONLY), loop=lambda: None)  # (closed with it)
    namespace.parked = []
    refs = [released(namespace) for _ in range(session.UNFREED_AT_MOST + 1)]
    assert namespace.parked and all(ref() is not None for ref in refs)
    namespace.close()
    gc.collect()
    kept = [ref() is not None for ref in refs]
    assert kept == [True] * session.UNFREED_AT_MOST + [False]
    assert session._UNFREED == [ref() for ref in refs[:session.UNFREED_AT_MOST]]
