"""A kernel session: netlink sockets per namespace, opened once, in place.

Sockets are created with the calling thread inside the namespace (setns), then
used from home: a netlink socket stays bound to the namespace it was created in.
Reads go through a lean dump socket (rtnl.py), and so do the link, address and
route changes an apply makes by the thousand (encoded in rtnl_requests.py);
the rest (neighbours, chaos devices, an orphaned VIP) through pyroute2, whose
objects all share one asyncio loop, so a thousand namespaces cost a thousand
sockets, not a thousand loops.
"""

from __future__ import annotations

import errno
import gc
import os
import resource
import socket
import sys
from collections import deque
from collections.abc import Callable


from ..core import processes
from ..errors import KernelError
from . import addresses, impairments, links, neighbours, netns, nftables, reader, routes, speakers, sysctls
from .rtnl import DumpSocket

COLLECT_EVERY = 256  # kernel requests between two collections of young cyclic garbage


# libnftables contexts a command that leaves by os._exit does not free: freeing
# one whose cache holds a 10,000-rule chain (every positioned rule change lists
# it) takes libnftables 26-37 ms, and the kernel frees the process at once. One:
# the rest are freed as ever (a read of a thousand namespaces makes and releases
# one in each, each with its socket; four kept raised a 10,000-rule plan's or
# cold apply's peak memory from 144 to 173 MB, one to 147 MB).
_UNFREED: list = []  # (namespace name, context)
_COMMITTED: deque = deque()  # sockets that committed, kept open until their session ends (close_later)
COMMITTED_OPEN = 32
UNFREED_AT_MOST = 1


def _leave_to_exit(contexts: list, owner: str) -> None:
    """Keep contexts about to be freed, while this process leaves by os._exit
    and there is room (core/processes.leaves_by_exit); the caller drops them.
    `owner` names their namespace (see _free_those_of)."""
    if processes.leaves_by_exit:
        room = UNFREED_AT_MOST - len(_UNFREED)
        _UNFREED.extend((owner, context) for context in contexts[:max(room, 0)])


def _free_those_of(owner: str) -> None:
    """Free the contexts kept for the exit that belong to namespace `owner`, under
    libnftables' lock: a context's netlink socket holds its namespace, and a
    namespace removed by name would live on, with the veth peers it holds in
    other namespaces, until this process left."""
    if any(name == owner for name, _ in _UNFREED):
        with nftables.LIBRARY:
            _UNFREED[:] = [kept for kept in _UNFREED if kept[0] != owner]


class Namespace:
    """An open namespace: its fd, a dump socket (reads, and most changes), a
    pyroute2 IPRoute for the other changes (opened on first use) and an ifname -> index cache."""

    def __init__(self, name: str, fd: int, loop: Callable):
        self.name = name
        self.fd = fd
        self._dump = None  # made on first use: a helper process may have read here instead
        self._loop = loop  # the session's asyncio loop, made on first need
        self._ipr = None  # pyroute2's IPRoute, opened on first use
        self._nft = None
        self._nfgen = None  # nfnetlink socket for the ruleset generation
        self._committed: list = []  # sockets that committed a transaction, closed by close() (close_later)
        # A list: libnftables contexts released are kept here until close()
        # instead of freed at once (freeing one that listed 10,000 rules takes
        # 15-25 ms: the reader ahead hands its listing over first).
        self.parked: list | None = None
        self.read_generation = None  # the generation of the nftables ruleset last read here
        self.read_devices = None     # and the devices it was read with (nftables.read)
        self._index: dict[str, int] | None = None
        self._nsids: dict[str, int | None] = {}

    @property
    def dump(self) -> DumpSocket:
        """A plain rtnetlink socket made inside this namespace (kernel/rtnl.py);
        a fresh one if the last request on it was cut off (its dump unread: found
        by review, a restore after a Ctrl-C refused with EBUSY)."""
        self._drop_spent_sockets()
        if self._dump is None:
            with netns.entered(self.fd):
                self._dump = DumpSocket()
        return self._dump

    def close_later(self, sock) -> None:
        """Keep `sock`, an nfnetlink socket that sent an nf_tables transaction,
        open until close(). Closing such a socket makes the kernel first finish
        destroying what the transaction removed (nf_tables flushes its destroy
        work, which waits out an RCU grace period: 9-12 ms here, a tenth of a
        one-rule edit's kernel work); by the session's end that is done. At most
        COMMITTED_OPEN are kept open in the process, the oldest closed first (a
        descriptor each: a 1,000-node lab must not need a thousand more)."""
        self._committed.append(sock)
        _COMMITTED.append(sock)
        while len(_COMMITTED) > COMMITTED_OPEN:
            _COMMITTED.popleft().close()  # (its grace period is long over; closed twice is harmless)

    def _drop_spent_sockets(self) -> None:
        """Forget a socket a cut-off request left unusable (made again on next use)."""
        if self._dump is not None and self._dump.unsettled:
            self._dump.close()
            self._dump = None
        if self._nfgen is not None and self._nfgen.fileno() == -1:
            self._nfgen = None  # (nftgen._ask closed it)

    @property
    def ipr(self):
        if self._ipr is None:
            # pyroute2 is imported on the first change: reads, nftables and tc never need it.
            from pyroute2 import IPRoute

            with netns.entered(self.fd):
                sock = netns.socket_kept_high(socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM,
                                                            socket.NETLINK_ROUTE))
            self._ipr = IPRoute(use_socket=sock, use_event_loop=self._loop())
        return self._ipr

    @property
    def nft(self):
        """A libnftables context bound to this namespace (made with the thread inside it)."""
        if self._nft is None:
            from .nftables import context

            with netns.entered(self.fd):
                self._nft = context()
        return self._nft

    def release_nft(self, gone: bool = False) -> None:
        """Free the libnftables context (made again on next use), or park it
        (see `parked`); `gone`: the namespace is being removed, so it is freed
        now, never parked or kept for the exit (its socket would hold the namespace)."""
        if self._nft is None:
            # Nothing to free, so libnftables' lock is not waited for: reading
            # ahead holds it for a whole listing, and the quick check closing
            # its session right after starting that waited for all of it
            # (0.3 s of a drift, that the command meant to spend importing).
            return
        with nftables.LIBRARY:
            if gone:
                pass
            elif self.parked is not None:
                self.parked.append(self._nft)
            else:
                _leave_to_exit([self._nft], self.name)
            self._nft = None

    def nfgen_socket(self):
        """An nfnetlink socket bound to this namespace (made on first use, and
        again after one closed because a request on it was cut off: nftgen._ask)."""
        self._drop_spent_sockets()
        if self._nfgen is None:
            self.open_reading_sockets()
        return self._nfgen

    def open_reading_sockets(self) -> None:
        """Make the dump and nfnetlink sockets a read needs, both in one visit
        to the namespace (a read of each of a thousand namespaces makes both)."""
        self._drop_spent_sockets()
        if self._dump is not None and self._nfgen is not None:
            return
        from . import nftgen

        with netns.entered(self.fd):
            if self._dump is None:
                self._dump = DumpSocket()
            if self._nfgen is None:
                self._nfgen = nftgen.open_socket()

    def generation(self) -> int | None:
        """The namespace's nftables ruleset generation (kernel/nftgen.py); None if
        the kernel will not say."""
        from . import nftgen

        try:
            return nftgen.generation(self.nfgen_socket())
        except OSError:
            return None

    def cookie(self) -> int:
        """The namespace's cookie (SO_NETNS_COOKIE), from its dump socket."""
        return self.dump.cookie()

    def still_named(self) -> bool:
        """Whether the name still leads to this namespace (nsfs inode numbers are
        unique among live namespaces, and our fd keeps this one alive)."""
        try:
            named = os.stat(netns.path_of(self.name))
        except OSError:
            return False
        mine = os.fstat(self.fd)
        return (named.st_ino, named.st_dev) == (mine.st_ino, mine.st_dev)

    def links(self) -> list:
        """A fresh link dump (also refreshes the index cache)."""
        return self.note_links(self.dump.links())

    def note_links(self, links: list) -> list:
        """Take `links`, a fresh dump of this namespace's, as the index cache."""
        self._index = {link.ifname: link.index for link in links}
        return links

    def note_read(self, links: list, nsids: dict) -> None:
        """Take what a helper process read here (kernel/fanout.py): a fresh link
        dump, and the ids this namespace has for others ({name: nsid}), those
        namespaces held open by this process (so the ids cannot change)."""
        self.note_links(links)
        self._nsids.update(nsids)

    def index(self, ifname: str) -> int | None:
        if self._index is None or ifname not in self._index:
            self.links()
        return self._index.get(ifname)

    def forget_links(self) -> None:
        self._index = None

    def nsid_of(self, other: "Namespace") -> int | None:
        """The id under which this namespace knows `other` (None if it has none).
        Cached: ids never change while both namespaces live."""
        if other.name not in self._nsids:
            self._nsids[other.name] = self.dump.nsid_of(other.fd)
        return self._nsids[other.name]

    def close(self, gone: bool = False) -> None:
        """Close what is open here; `gone`: the namespace is being removed, and no
        libnftables context of it is kept for the exit (release_nft)."""
        try:
            if self._ipr is not None:
                self._ipr.close()
            self.release_nft(gone)  # frees the libnftables context and its socket
            parked, self.parked = self.parked, None
            if parked:
                with nftables.LIBRARY:
                    if not gone:
                        _leave_to_exit(parked, self.name)
                    parked.clear()  # and those parked, freed under the lock (but those left to the exit)
            if gone:
                _free_those_of(self.name)
            if self._nfgen is not None:
                self._nfgen.close()
            for sock in self._committed:
                sock.close()
                if sock in _COMMITTED:
                    _COMMITTED.remove(sock)
            self._committed.clear()
            if self._dump is not None:
                self._dump.close()
        finally:
            os.close(self.fd)


class Kernel:
    """The kernel backend (core/backend.py): namespaces by name, and the requests
    the kinds make, each carried out by the module of its kind here. Use as a
    context manager; not thread-safe.

    `log(ns, text)` is called before every request (the CLI's --verbose).
    """

    def __init__(self, log: Callable[[str, str], None] | None = None):
        self.log = log or (lambda ns, text: None)
        # Called with (name, cookie) as each namespace is created, before it is
        # visible: the runtime records what it creates by identity.
        self.announce = None
        # What the nftables reader found per namespace, by (cookie, generation,
        # devices): state/rulesets.RulesetMemo, handed in by a command that has a
        # state directory. Without one every read lists the ruleset.
        self.nft_memo = None
        # The text nft printed for each rule form seen (state/rule_forms.RuleForms),
        # handed in alike: a read after another tool's commit then dumps a
        # table's rules instead of listing it, where every rule's form is known.
        self.nft_forms = None
        # A quick check (cli/quick.py) sets this to a dict: a read then takes each
        # namespace's nftables marks (cookie, generation, devices) into it instead
        # of its tables. Every read also notes in `nft_settled` the namespaces
        # whose tables those marks alone determine (nftables.read), and keeps
        # (names, hints, resources) in `last_read`: an in-sync verdict is made of
        # them (state/verdicts.py).
        self.nft_marks = None
        # A plan (an apply's, a drift check's) sets this to the desired resources
        # by key: a read may then read those tables by their text listings or
        # their rules' dump (nftables.read).
        self.nft_expected = None
        # What this process's own last nft commit in each namespace made: (cookie,
        # generation after it, {table key: resource}). A listing at that
        # generation that finds those tables so proves their content (what
        # netkeel sends for it lists back as it): nftables.read.
        self.nft_committed: dict = {}
        self.nft_settled: dict = {}
        self.last_read = None
        self._requests = 0
        self._open: dict[str, Namespace] = {}
        self._event_loop = None  # asyncio (14 ms to import) only once pyroute2 needs it
        _raise_fd_limit()

    def __enter__(self) -> "Kernel":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- namespaces -----------------------------------------------------------
    def exists(self, name: str) -> bool:
        return netns.exists(name)

    def list_namespaces(self) -> list[str]:
        return netns.list_names()

    def cookie(self, name: str) -> int | None:
        """The namespace's identity now (SO_NETNS_COOKIE); None if it does not exist.
        Read from the namespace's own dump socket (made inside it), which a read
        needs anyway: no second trip into the namespace."""
        if not netns.exists(name):
            return None  # (a placeholder file a create cut short left is no namespace)
        try:
            handle = self.ns(name)
        except KernelError:
            return netns.cookie(name)  # replaced since this command opened it: the new one's
        return handle.cookie()

    def tidy(self, name: str) -> None:
        """Remove a placeholder a killed namespace create left under the name."""
        netns.remove_placeholder(name)

    def create_namespace(self, name: str) -> None:
        def announce(ns_name, cookie):  # the thread is inside the new namespace, not yet named
            if self.announce is not None:
                self.announce(ns_name, cookie)
            if self.nft_memo is not None:
                # Nobody else can reach it yet: its ruleset is empty at this generation.
                from . import nftgen

                try:
                    with nftgen.open_socket() as sock:  # and its one device: lo, index 1
                        self.nft_memo.put(ns_name, cookie, nftgen.generation(sock), nftables.device_list([("lo", 1)]),
                                          [])
                except OSError:
                    pass
        self.request(name, "netns add", netns.create, name, announce)
        if self.nft_memo is not None:  # what a read of it now would find: see announce
            self.ns(name).read_devices = nftables.device_list([("lo", 1)])

    def remove_namespace(self, name: str) -> None:
        self.ns(name)  # still the namespace this command read (KernelError otherwise)
        # Speakers we started in it would keep it alive (a process holds its namespace):
        # they stop first; so would our own socket and fd.
        speakers.stop_all(self, name)
        self.release(name, gone=True)
        self.request(name, "netns del", netns.remove, name)

    def ns(self, name: str) -> Namespace:
        """The open namespace `name`. Raises KernelError if it does not exist, or if
        the name no longer leads to the namespace opened under it earlier in this
        command (deleted, or deleted and made again by someone else): netkeel then
        touches neither the old one nor the new one."""
        handle = self._open.get(name)
        if handle is not None and not handle.still_named():
            raise KernelError(f"namespace {name}", "it was deleted or replaced by someone else during this "
                              "command; netkeel does not touch it", errno.ESTALE)
        if handle is None:
            if not netns.exists(name):
                raise KernelError(f"open namespace {name}", "no such namespace", errno.ENOENT)
            try:
                fd = netns.open_fd(name)
            except OSError as exc:
                raise KernelError(f"open namespace {name}", exc.strerror, exc.errno) from None
            handle = self._open[name] = Namespace(name, fd, self._loop)
        return handle

    def release(self, name: str, gone: bool = False) -> None:
        handle = self._open.pop(name, None)
        if handle is not None:
            handle.close(gone)
        elif gone:
            _free_those_of(name)

    def close(self) -> None:
        if self.nft_memo is not None:
            self.nft_memo.save()
        if self.nft_forms is not None:
            self.nft_forms.save()
        for name in list(self._open):
            self.release(name)
        loop = self._event_loop
        if loop is not None and not loop.is_closed():
            # pyroute2 leaves async generators suspended on the shared loop;
            # finish them so closing the loop is quiet.
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def _loop(self):
        """The one asyncio loop every namespace's pyroute2 socket shares."""
        if self._event_loop is None:
            import asyncio

            self._event_loop = asyncio.new_event_loop()
        return self._event_loop

    # -- the backend protocol: reading and the kinds' requests -------------------------
    def read(self, names, hints: dict) -> list:
        self.nft_settled = {}
        live = reader.read_live(self, names, hints)
        self.last_read = (sorted(set(names)), hints, live)
        return live

    def link_add_veth(self, ns, ifname, peer_ns, peer_ifname) -> None:
        links.add_veth(self, ns, ifname, peer_ns, peer_ifname)

    def link_add_bridge(self, ns, ifname) -> None:
        links.add_bridge(self, ns, ifname)

    def link_delete(self, ns, ifname, peer) -> None:
        links.delete(self, ns, ifname, peer)

    def link_set(self, ns, ifname, mark=False, **settings) -> None:
        links.configure(self, ns, ifname, mark=mark, **settings)

    def link_move(self, ns, ifname, to_ns) -> None:
        links.move(self, ns, ifname, to_ns)

    def addr_add(self, ns, ifname, address, replace=False) -> None:
        addresses.add(self, ns, ifname, address, replace=replace)

    def addr_delete(self, ns, ifname, address, peer=None) -> None:
        addresses.delete(self, ns, ifname, address, peer)

    def route_set(self, ns, prefix, metric, replace=False, via=None, dev=None, type=None, src=None,
                  metrics=None, proto=None, scope=None) -> None:
        routes.set_route(self, ns, prefix, metric, replace=replace, via=via, dev=dev, type=type, src=src,
                         metrics=metrics, proto=proto, scope=scope)

    def route_delete(self, ns, prefix, metric, via=None, dev=None, type=None, scope=None, proto=None) -> None:
        routes.delete(self, ns, prefix, metric, via=via, dev=dev, type=type, scope=scope, proto=proto)

    def neigh_set(self, ns, ifname, address, mac) -> None:
        neighbours.set_entry(self, ns, ifname, address, mac)

    def neigh_delete(self, ns, ifname, address) -> None:
        neighbours.delete(self, ns, ifname, address)

    def impair_set(self, ns, dev, spec) -> None:
        impairments.set_impairment(self, ns, dev, spec)

    def impair_clear(self, ns, dev) -> None:
        impairments.clear(self, ns, dev)

    def sysctl_write(self, ns, name, value) -> None:
        sysctls.write(self, ns, name, value)

    def nft_transaction(self, ns, commands, what, script=None, tables=None, echo=False, json_tables=None,
                        rule_changes=None):
        return nftables.transaction(self, ns, commands, what, script=script, tables=tables, echo=echo,
                                    json_tables=json_tables, rule_changes=rule_changes)

    def nft_prove(self, jobs) -> list:
        return nftables.prove_in_scratch(self, jobs)

    def nft_rule_handles(self, ns, family, table):
        return nftables.rule_handles(self, ns, family, table)

    def nft_rule_texts(self, ns, family, table) -> dict:
        return nftables.rule_texts(self, ns, family, table)

    def speaker_start(self, ns, group, spec) -> None:
        speakers.start(self, ns, group, spec)

    def speaker_stop(self, ns, group) -> None:
        speakers.stop(self, ns, group)

    def speakers_in(self, ns) -> dict:
        return speakers.found(ns)

    # -- what the doctor reads (kernel/lookup.py, kernel/inspect.py) -------------------
    def route_get(self, ns, dst, src=None, iif=None):
        from . import lookup

        return lookup.route_get(self, ns, dst, src=src, iif=iif)

    def sysctl_value(self, ns, name):
        from . import lookup

        return lookup.sysctl_value(self, ns, name)

    def neighbour_entries(self, ns):
        from . import inspect

        return inspect.neighbour_entries(self, ns)

    def address_flags(self, ns):
        from . import inspect

        return inspect.address_flags(self, ns)

    def conntrack_entries(self, ns):
        from . import inspect

        return inspect.conntrack_entries(self, ns)

    # -- faults (kernel/chaos.py) ---------------------------------------------------
    def fault_kernel_identity(self) -> str:
        return _chaos().kernel_identity()

    def fault_capabilities(self) -> list:
        return _chaos().probe()

    def fault_apply(self, op: dict) -> dict:
        return _chaos().apply(self, op)

    def fault_revert(self, op: dict) -> None:
        _chaos().revert(self, op)

    def fault_in_place(self, op: dict) -> str:
        return _chaos().in_place(self, op)

    def fault_device_up(self, op: dict) -> None:
        _chaos().device_up(self, op)

    # -- requests -------------------------------------------------------------
    def request(self, ns: str, what: str, call, *args, **kwargs):
        """Run one netlink request, logging it; kernel refusals become KernelError."""
        self.log(ns, what)
        self._requests += 1
        if self._requests % COLLECT_EVERY == 0 and not gc.isenabled() and "pyroute2" in sys.modules:
            # Commands run without the cyclic collector (cli/program.py), and
            # pyroute2 leaves a cycle or two behind per request: collected here
            # now and then, the young ones only, a 2,000-node apply stays small.
            # Reads alone (drift, a no-op apply) never load pyroute2 and leave none.
            gc.collect(1)
        try:
            return call(*args, **kwargs)
        except _netlink_error() as exc:
            detail = os.strerror(exc.code) if exc.code else str(exc)
            raise KernelError(f"{what} in {ns}", detail, exc.code) from None
        except OSError as exc:
            raise KernelError(f"{what} in {ns}", exc.strerror or str(exc), exc.errno) from None

    def in_namespace(self, name: str):
        """Context manager: the calling thread inside namespace `name` (for /proc/sys)."""
        return netns.entered(self.ns(name).fd)


def _netlink_error():
    """pyroute2's NetlinkError; nothing to catch while pyroute2 is not loaded
    (nothing can have raised it then)."""
    module = sys.modules.get("pyroute2.netlink.exceptions")
    return module.NetlinkError if module is not None else ()


def _raise_fd_limit() -> None:
    """Each open namespace holds two fds; lift the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


def _chaos():
    """kernel/chaos.py (tc, NFQUEUE workers, the fault model), imported by the
    commands that inject or revert faults only."""
    from . import chaos

    return chaos
