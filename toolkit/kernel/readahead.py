"""Reading a namespace's tables ahead, in a child process, while the command loads.

A drift check whose quick answer failed because a namespace's ruleset moved
(another tool committed there: cli/quick.py) will read that namespace's tables
(nftables._table_by_text): its rules' dump, each known by its form or listed
as text, its chains and sets: 0.15-0.25 s of Python and kernel for a
10,000-rule table, with nothing else to do meanwhile. The same time goes, in
the command, to importing the CLI framework, loading the manifest and taking
the lock. So the quick check forks a child that makes those readings,
namespace after namespace in the order the reader goes, and the reader takes
each as it is sent (where a table of ours does not read by its text, the whole
ruleset's JSON listing, which the reader makes then: nftables._listed; that
listing alone where the verdict says a table of ours has no text to send,
which no text reading is taken for). A process, not a thread: the reading is
mostly Python, and a thread shared the interpreter's lock with the main
thread's imports (each took twice as long; a drift after another tool's
commit took 0.38-0.44 s with a thread, 0.31-0.38 s with a child), and the child
has a libnftables of its own (its interface cache is per process:
nftables.LIBRARY).

Nothing here is believed on trust: a reading is kept under the namespace's
cookie and the ruleset generation it was made at (the same before and after
it), and the reader takes it only for the cookie and generation it finds
itself, before and after its own use: one commit anywhere in between and the
reading is not of the ruleset the reader would list, so it lists as ever. A
child that fails in any way, or stays silent nft_scratch.TIMEOUT_S, leaves
nothing, and the reader reads. A command reads ahead once (its quick check
asks once): LIMIT counts every namespace read ahead in the process, and a
reading never taken stays until it exits.

The child is forked before the command starts any thread (the quick check
runs first), takes Ctrl-C and SIGTERM as their default (the command's own
handling is the parent's), dies with its parent (PR_SET_PDEATHSIG), writes
nothing to the terminal, and leaves by os._exit (its libnftables contexts are
not freed one by one: 15-25 ms for one that listed 10,000 rules). Its readings
come back pickled, over a pipe of its own: it is this very program, forked.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import struct
import threading

LIMIT = 4  # namespaces read ahead at most: a command reads the rest itself
_FRAME = struct.Struct("=Q")  # each namespace's readings: their pickle's length, then it

_done: dict = {}       # namespace name -> the _Child reading it (or that read it)
_readers: list = []    # the _Child processes started
_readings: dict = {}   # (cookie, generation, family, table) -> (devices, nftables.TextReading or None)


def start(marks: dict, by_json=(), forms=None) -> None:
    """Read ahead the tables of ours in each namespace of `marks` ({name:
    (cookie, generation)}, as the quick check found them), up to LIMIT; in
    those named in `by_json` (a table of ours there has no text to send, as
    the verdict says: the reader lists such a namespace as JSON, never by
    text), the whole ruleset's JSON listing alone. `forms`: the rule forms
    known (state/rule_forms.RuleForms: the child's copy is used by it alone),
    so that a table whose rules are all known is read from their dump."""
    if not marks:
        return
    # What the child uses, imported here (its own imports would be its own cost).
    import nftables as _binding  # noqa: F401 - libnftables' binding
    from ..kinds import nft_text  # noqa: F401
    from . import nft_forms, nft_scratch, nftables, nftgen, session  # noqa: F401
    todo = [(name, cookie, generation, name in by_json) for name, (cookie, generation) in sorted(marks.items())
            if name not in _done and isinstance(cookie, int) and isinstance(generation, int)]
    todo = todo[:max(0, LIMIT - len(_done))]
    # A fork copies the calling thread alone: with another running (holding a lock
    # the child would need), nothing is read ahead. The quick check runs first.
    if todo and threading.active_count() == 1:
        _readers.append(_Child(todo, forms))


MISSING = object()  # take(): nothing read ahead for that table at that generation
RULESET = "ruleset"  # the key's last part of a whole ruleset listed ahead as JSON


def take(name: str, cookie: int, generation: int, family: str, table: str, devices):
    """The reading of the table made ahead at exactly this cookie and
    generation, with these devices (nftables.device_list: a rule naming a
    device by index prints the name it has when listed, and renaming one moves
    no generation), waiting for it if it is under way: a TextReading, None
    where the table does not read by text there, MISSING if nothing was read
    ahead for it so."""
    return _taken(name, (cookie, generation, family, table), devices)


def take_ruleset(name: str, cookie: int, generation: int, devices):
    """The namespace's whole ruleset listed ahead as JSON (its items), at
    exactly this cookie, generation and devices, where a table of ours did not
    read by its text (a rule printing a string holding a quote, a listing
    not followed); MISSING otherwise. Taken once, waiting for it if under way."""
    return _taken(name, (cookie, generation, RULESET), devices)


def ahead(name: str, cookie: int, generation: int, family: str, table: str) -> bool:
    """Whether a reading of the table made ahead at this cookie and generation
    may be taken: the namespace's is under way, or it came and was not taken."""
    child = _done.get(name)
    if child is None or not child.ours():
        return False
    return not child.sent(name) or (cookie, generation, family, table) in _readings


def _taken(name: str, key: tuple, devices):
    child = _done.get(name)
    if child is None or devices is None or not child.ours():
        return MISSING  # (a process forked from the command's: the child and its pipe are not its own)
    child.wait(name)
    found = _readings.pop(key, None)
    if found is None or found[0] != devices:
        return MISSING
    return found[1]


def settle() -> None:
    """Wait for every reading under way to be over (tests)."""
    for child in list(_readers):
        if child.ours():
            child.wait()


class _Child:
    """A forked child reading `todo` ([(name, cookie, generation, as JSON)])
    with the rule forms `forms`; its readings are put in _readings as they come."""

    def __init__(self, todo: list, forms):
        self._names = {name for name, *_ in todo}
        self._sent: set = set()
        self._buffer = bytearray()  # (a reading of 100,000 rules is tens of megabytes)
        read_end, write_end = os.pipe()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(read_end)
            _child_main(todo, forms, write_end, parent)
        os.close(write_end)
        self._pid, self._fd, self._owner = pid, read_end, parent
        for name in self._names:
            _done[name] = self

    def ours(self) -> bool:
        """Whether this process started it (a process forked since inherits the
        object, and must leave the pipe and the child alone)."""
        return os.getpid() == self._owner

    def sent(self, name: str) -> bool:
        """Whether `name`'s readings came (or never will)."""
        return name in self._sent

    def wait(self, name: str | None = None) -> None:
        """Take what the child sends until `name`'s readings came (None: all),
        or it is gone (exited, died, or silent nft_scratch.TIMEOUT_S: killed)."""
        from .nft_scratch import TIMEOUT_S

        try:
            while self._fd is not None and (name is None or name not in self._sent):
                ready, _, _ = select.select([self._fd], [], [], TIMEOUT_S)
                chunk = os.read(self._fd, 1 << 20) if ready else b""
                if not chunk:
                    self._end(kill=not ready)
                    return
                self._buffer += chunk
                self._unpack()
        except BaseException:  # interrupted (Ctrl-C): the child goes, nothing more is taken
            self._end(kill=True)
            raise

    def _unpack(self) -> None:
        buffer, at = self._buffer, 0
        while len(buffer) - at >= _FRAME.size:
            size = _FRAME.unpack_from(buffer, at)[0]
            if len(buffer) - at - _FRAME.size < size:
                break
            with memoryview(buffer) as view:
                name, found = pickle.loads(view[at + _FRAME.size:at + _FRAME.size + size])
            at += _FRAME.size + size
            self._sent.add(name)
            _readings.update(found)
        del buffer[:at]

    def _end(self, kill: bool) -> None:
        os.close(self._fd)
        self._fd = None
        self._sent |= self._names  # whatever did not come never will
        if kill:
            try:
                os.kill(self._pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        os.waitpid(self._pid, 0)


def _child_main(todo: list, forms, fd: int, parent: int) -> None:
    status = 0
    try:
        from ..core.children import detached_child
        from .session import Kernel

        # None of the command's descriptors but its pipe: its sockets, and a lock
        # it may hold (an apply's quick check holds the state lock), are its own.
        if detached_child(parent, keep=fd) is None:
            return
        for name, cookie, generation, as_json in todo:
            before = set(_readings)
            with Kernel() as kernel:
                kernel.nft_forms = forms
                try:
                    _read(kernel, name, cookie, generation, as_json)
                except Exception:  # noqa: BLE001 - nothing read ahead there: the reader reads
                    pass
                # Sent before the session's close frees its listings' contexts.
                data = pickle.dumps((name, {key: value for key, value in _readings.items() if key not in before}),
                                    protocol=pickle.HIGHEST_PROTOCOL)
                data = _FRAME.pack(len(data)) + data
                while data:
                    data = data[os.write(fd, data):]
    except BaseException:  # noqa: BLE001 - whatever it is (the parent gone: a broken pipe), nothing more
        status = 1
    finally:
        os._exit(status)


def _read(kernel, name: str, cookie: int, generation: int, as_json: bool = False) -> None:
    from . import nftables, nftgen

    ns = kernel.ns(name)
    ns.parked = []  # its listings' contexts kept, not freed after each (the child leaves without freeing)
    if ns.cookie() != cookie or ns.generation() != generation:
        return  # another namespace under the name, or another commit since: nothing to gain
    devices = _devices(ns)
    found = {}
    tables = nftgen.tables(ns.nfgen_socket())
    for family, table in nftables.tables_read_by_text(tables):
        if as_json:  # not read by text there: the ruleset as JSON, below
            found[(cookie, generation, family, table)] = (devices, None)
            continue
        # (Its chains and sets are listed by the reader, while it waits for this.)
        reading = nftables.read_table_text(kernel, ns, name, family, table, items=False)
        if reading is None and ns.generation() == generation:
            found[(cookie, generation, family, table)] = (devices, None)  # does not read by text: JSON then
            continue
        if reading is None or reading.generation != generation:
            return
        found[(cookie, generation, family, table)] = (devices, reading)
    if any(reading is None for _, reading in found.values()) and not any(flags for _, _, flags in tables):
        # The reader will list the whole ruleset as JSON (nftables._listed): list it now.
        items = nftables.ruleset_items(kernel, ns, name)
        if ns.generation() != generation:
            return
        found[(cookie, generation, RULESET)] = (devices, items)
    if _devices(ns) == devices:  # no device renamed, made or removed while listing
        _readings.update(found)


def _devices(ns) -> list:
    from .nftables import device_list

    return device_list((link.ifname, link.index) for link in ns.links())
