"""Reading a namespace's tables ahead, on the second processor, while the command loads.

A drift check whose quick answer failed because a namespace's ruleset moved
(another tool committed there: cli/quick.py) will read that namespace's tables
by their text listings (nftables._table_by_text): hundreds of milliseconds in
libnftables for a large table, with nothing else to do meanwhile. The same
hundreds of milliseconds go, in the main thread, to importing the CLI
framework, loading the manifest and taking the lock. So the quick check starts
those listings here, in one thread (libnftables runs without Python's
interpreter lock), namespace after namespace in the order the reader goes,
and the reader takes each as it is done (where a table of ours does not read
by its text, the whole ruleset's JSON listing, which the reader makes then:
nftables._listed; that listing alone where the verdict says a table of ours
has no text to send, which no text reading is taken for). One thread: libnftables is used by
one thread at a time anyway (nftables.LIBRARY: it keeps an interface cache for
the whole process, filled in whatever namespace the calling thread is in, and
two threads in it at once printed one namespace's rules with another's
interface names, or crashed: found by review), and on two processors more
threads only slowed the main thread they are meant to hide behind.

Nothing here is believed on trust: a reading is kept under the namespace's
cookie and the ruleset generation it was made at (the same before and after
it), and the reader takes it only for the cookie and generation it finds
itself, before and after its own use: one commit anywhere in between and the
reading is not of the ruleset the reader would list, so it lists as ever. A
thread that fails in any way leaves nothing, and the reader reads. A command
reads ahead once (its quick check asks once): LIMIT counts every namespace
read ahead in the process, and a reading never taken stays until it exits.

The thread is a daemon (a command that never asks does not wait for it at
exit) with every signal blocked (Ctrl-C and SIGTERM reach the main thread,
which defers them where it must: kernel/fanout.py), and it is joined
before the command forks a child that runs Python (os.register_at_fork:
fanout's helpers, the throwaway namespace's checker), which a thread caught
mid-call could leave holding a lock.
"""

from __future__ import annotations

import os
import sys
import threading

from ..core.background import Background

LIMIT = 4  # namespaces read ahead at most: a command reads the rest itself
# Python's switch interval while the reader runs (the default is 5 ms). Each
# system call the reader makes gives up the interpreter's lock, and taking it
# back from a main thread busy importing waited a whole interval: the twenty
# calls before its listing (entering the namespace, making its sockets, the
# generation, the devices) took 75-100 ms instead of 2. A waiting thread asks
# for the lock after this long; a main thread alone is never interrupted.
SWITCH_INTERVAL = 0.0005

_done: dict = {}       # namespace name -> an Event set once its reading is over (made or given up)
_readers: list = []    # the Background threads reading
_readings: dict = {}   # (cookie, generation, family, table) -> (devices, nftables.TextReading or None)
_hooked = False
_interval = {"readers": 0, "before": None}  # threads reading, and the switch interval before the first
_interval_lock = threading.Lock()


def start(marks: dict, by_json=(), forms=None) -> None:
    """Read ahead the tables of ours in each namespace of `marks` ({name:
    (cookie, generation)}, as the quick check found them), up to LIMIT; in
    those named in `by_json` (a table of ours there has no text to send, as
    the verdict says: the reader lists such a namespace as JSON, never by
    text), the whole ruleset's JSON listing alone. `forms`: the rule forms
    known (state/rule_forms.RuleForms, used by this thread alone), so that a
    table whose rules are all known is read from their dump."""
    global _hooked
    if not marks:
        return
    # What the threads use, imported here first: the main thread goes on
    # importing the command's modules, and two threads importing into the same
    # import cycle at once can make Python's deadlock detection fail an import
    # in either. (The command imports these anyway.)
    import nftables as _binding  # noqa: F401 - libnftables' binding
    from ..kinds import nft_text  # noqa: F401
    from . import nft_forms, nftables, nftgen, session  # noqa: F401
    if not _hooked:
        os.register_at_fork(before=settle)  # a forked child runs Python: no thread of ours mid-read then
        _hooked = True
    todo = [(name, cookie, generation, name in by_json) for name, (cookie, generation) in sorted(marks.items())
            if name not in _done and isinstance(cookie, int) and isinstance(generation, int)]
    todo = todo[:max(0, LIMIT - len(_done))]
    if todo:
        for name, *_ in todo:
            _done[name] = threading.Event()
        with _interval_lock:  # the first reader lowers it, the last one out puts it back
            if _interval["readers"] == 0:
                _interval["before"] = sys.getswitchinterval()
                sys.setswitchinterval(min(_interval["before"], SWITCH_INTERVAL))
            _interval["readers"] += 1
        _readers.append(Background(_read_each, todo, forms))


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


def _taken(name: str, key: tuple, devices):
    done = _done.get(name)
    if done is None or devices is None:
        return MISSING
    done.wait()
    found = _readings.pop(key, None)
    if found is None or found[0] != devices:
        return MISSING
    return found[1]


def settle() -> None:
    """Wait for every read under way (a fork copies only the calling thread)."""
    for reader in list(_readers):
        reader.join()


def _read_each(todo: list, forms) -> None:
    from .session import Kernel

    try:
        for name, cookie, generation, as_json in todo:
            try:
                with Kernel() as kernel:
                    kernel.nft_forms = forms
                    try:
                        _read(kernel, name, cookie, generation, as_json)
                    finally:
                        # Handed over before the listings' contexts are freed (close).
                        _done[name].set()
            except Exception:  # noqa: BLE001 - nothing read ahead there: the reader reads
                pass
    finally:
        with _interval_lock:
            _interval["readers"] -= 1
            if _interval["readers"] == 0:
                sys.setswitchinterval(_interval["before"])
        for name, *_ in todo:
            _done[name].set()  # whatever happened, no reader waits for good


def _read(kernel, name: str, cookie: int, generation: int, as_json: bool = False) -> None:
    from . import nftables, nftgen

    ns = kernel.ns(name)
    ns.parked = []
    if ns.cookie() != cookie or ns.generation() != generation:
        return  # another namespace under the name, or another commit since: nothing to gain
    devices = _devices(ns)
    found = {}
    tables = nftgen.tables(ns.nfgen_socket())
    for family, table in nftables.tables_read_by_text(tables):
        if as_json:  # not read by text there: the ruleset as JSON, below
            found[(cookie, generation, family, table)] = (devices, None)
            continue
        reading = nftables.read_table_text(kernel, ns, name, family, table)
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
