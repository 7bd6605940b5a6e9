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
    assert session._UNFREED == [("x", ref()) for ref in refs[:session.UNFREED_AT_MOST]]


def test_a_namespace_being_removed_keeps_no_context_for_the_exit(monkeypatch):
    """Its socket would hold the namespace (and its veth peers) until the exit:
    the tier's test_rtnl_requests.py watches the peer go."""
    import os

    monkeypatch.setattr(session, "_UNFREED", [])
    monkeypatch.setattr(processes, "leaves_by_exit", True)
    other = session.Namespace("y", -1, loop=lambda: None)
    kept_elsewhere = released(other)
    namespace = session.Namespace("x", os.open("/dev/null", os.O_RDONLY), loop=lambda: None)
    namespace.parked = []
    parked = released(namespace)
    namespace._nft = Context()
    held = weakref.ref(namespace._nft)
    namespace.close(gone=True)
    gc.collect()
    assert parked() is None and held() is None
    assert kept_elsewhere() is not None and session._UNFREED == [("y", kept_elsewhere())]  # another's stays


def test_the_context_kept_for_the_exit_is_freed_when_its_namespace_is_removed_later(monkeypatch):
    monkeypatch.setattr(session, "_UNFREED", [])
    monkeypatch.setattr(processes, "leaves_by_exit", True)
    kept = released(session.Namespace("x", -1, loop=lambda: None))
    assert kept() is not None
    session._free_those_of("y")
    assert kept() is not None
    session._free_those_of("x")
    gc.collect()
    assert kept() is None and session._UNFREED == []
