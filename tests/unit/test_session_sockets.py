"""kernel/session.Namespace: a socket that sent an nf_tables transaction is
closed with the namespace's session, not at once: closing it makes the kernel
first finish destroying what the transaction removed (an RCU grace period)."""

from __future__ import annotations

import os

from toolkit.kernel.session import Namespace


class Socket:
    def __init__(self):
        self.closed = False

    def close(self):
        self.closed = True


def test_a_committing_socket_is_closed_with_the_session_not_before():
    ns = Namespace("x", os.open("/proc/self/ns/net", os.O_RDONLY), loop=None)
    first, second = Socket(), Socket()
    ns.close_later(first)
    ns.close_later(second)
    assert not first.closed and not second.closed
    ns.close()
    assert first.closed and second.closed


def test_a_namespace_being_removed_closes_them_too():
    ns = Namespace("x", os.open("/proc/self/ns/net", os.O_RDONLY), loop=None)
    kept = Socket()
    ns.close_later(kept)
    ns.close(gone=True)  # (a socket holds its namespace: never kept past this)
    assert kept.closed


def test_no_more_than_a_bound_are_kept_open_the_oldest_closed_first(monkeypatch):
    """A descriptor each: a 1,000-node lab's commits must not keep a thousand open."""
    from toolkit.kernel import session

    monkeypatch.setattr(session, "COMMITTED_OPEN", 3)
    namespaces = [Namespace(f"n{i}", os.open("/proc/self/ns/net", os.O_RDONLY), loop=None) for i in range(5)]
    sockets = [Socket() for _ in namespaces]
    for ns, sock in zip(namespaces, sockets):
        ns.close_later(sock)
    assert [s.closed for s in sockets] == [True, True, False, False, False]
    for ns in namespaces:
        ns.close()
    assert all(s.closed for s in sockets) and not session._COMMITTED
