"""A plan's proof of new firewall content, made in a throwaway namespace.

An apply verifies each table it commits by listing it back (as text: every
rule printed as sent, nftables._read_back_as_text), unless that very content
was listed back exactly so before (RulesetMemo.proven): then its commit is
followed by the ruleset generation alone (the kernel numbers every commit,
and netkeel's sending of that content is known to list back as it). For new
content the listing is a third of a 10,000-rule apply.

A plan has that time to spend: it knows what the apply will send. Each table
the apply would make whole (not rule by rule, which libnftables' echo
verifies), each content once, is made by a child process in a fresh network
namespace of its own, with stand-ins for the node's interfaces, by the kind's
own `run` (the text the apply sends) on a kernel session bound to that
namespace, and followed as the apply follows it: content that lists back
exactly as sent is proven, and the parent notes it in the memo, which the
state directory keeps, with the forms of its rules as that reading back
dumped them (state/rule_forms.py: a read after another tool's commit then
knows those rules from a dump). Content that does not, or that the child did not
answer for (it died, or stayed silent nft_scratch.TIMEOUT_S and was killed),
is noted refuted, and not tried again: its apply lists, as it always did.
What the kernel refuses there the plan says before the apply meets it. A
proven table's recipe (nft_recipes.py: the raw batch that makes it, read from
the kernel there and checked by making the table again with it alone, in a
second fresh namespace) goes back with the answer: its apply sends that.
Nothing of the machine is touched: each namespace dies with the child's
session in it, the child with the plan.

The child is forked: everything it needs is in memory already.
"""

from __future__ import annotations

import ctypes
import os
import signal
import struct

from ..core.children import bound_child
from . import nft_scratch
from .session import Kernel, Namespace

CLONE_NEWNET = 0x40000000


def prove(jobs: list) -> dict:
    """Run `jobs` ([(namespace name, device names, [create actions of its tables])])
    in a child, each table in a namespace of its own (one that does not read
    back as sent leaves the others their proof); {table key: {"proven": bool}
    or {"refused": libnftables' error}}. A table the child did not answer for
    (it died, or stayed silent nft_scratch.TIMEOUT_S and was killed) is missing."""
    if not jobs:
        return {}
    read_end, write_end = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_end)
        _child_main(jobs, write_end, parent)
    os.close(write_end)
    answers: dict = {}
    finished = False
    try:
        for message in nft_scratch.messages(read_end, pid):
            answers[tuple(message["key"])] = message["outcome"]
        finished = True
    finally:
        os.close(read_end)
        if not finished:  # interrupted or a bad line: not waited for alive
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        os.waitpid(pid, 0)
    return answers


def _child_main(jobs: list, fd: int, parent: int) -> None:
    status = 0
    try:
        libc = bound_child(parent)
        if libc is None:
            return
        for name, devices, actions in jobs:
            for action in actions:
                if libc.unshare(CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "unshare: " + os.strerror(ctypes.get_errno()))
                nft_scratch.make_devices(list(devices))
                outcome = _prove_here(name, action)
                if outcome.get("proven") is True:
                    learned = {digest: tuple(matches) for digest, (_, matches) in outcome["forms"].items()}
                    outcome["recipe"] = _recipe_here(libc, action.key[1], action.key[2], list(devices), learned,
                                                     outcome.pop("rules"))
                nft_scratch.send(fd, {"key": list(action.key), "outcome": outcome})
    except BaseException:  # noqa: BLE001 - whatever it is, nothing more is proven
        status = 1
    finally:
        os._exit(status)


def _prove_here(name: str, action) -> dict:
    """Send `action` (the create of one table) as the apply would, in the
    namespace this process is in, and say whether it read back as sent. The
    session is closed after: the namespace goes when the next is made."""
    from ..errors import KernelError
    from ..kinds.nft_table import KIND
    from .nftables import device_list

    kernel = _HereKernel()
    memo = kernel.nft_memo = _Proofs()
    forms = kernel.nft_forms = _Forms()
    try:
        ns = kernel.ns(name)
        devices = device_list((link.ifname, link.index) for link in ns.links())
        ns.read_devices = devices
        memo.put(name, ns.cookie(), ns.generation(), devices, [])  # what it holds: nothing yet
        try:
            KIND.run(kernel, "apply", [action])
        except KernelError as exc:
            return {"refused": exc.detail or str(exc)}
        if action.key not in memo.proved:
            return {"proven": False}
        return {"proven": True, "forms": {digest: [text, list(matches)] for digest, (text, matches)
                                          in forms.noted.items()}, "rules": forms.rules}
    finally:
        kernel.nft_memo = kernel.nft_forms = None
        kernel.close()


def _recipe_here(libc, family: str, table: str, devices: list, learned: dict, rules=None) -> str | None:
    """The recipe of the table just proven in the namespace this process is in
    (kernel/nft_recipes.py), base64, if it has one and it makes the same table
    again by itself in another fresh namespace with the same stand-in devices
    (this process is left in that one); else None. `learned`: the forms the
    proof's reading back noted (learnable), for nft_recipes.check. `rules`:
    (generation, its rules' attributes) as that reading dumped them, taken for
    a new dump's at that generation (a dump of 50,000 rules takes the kernel a
    second: it walks the chain from its head for every part of the dump)."""
    import base64

    from . import nft_recipes, nftgen

    try:
        with nftgen.open_socket() as sock:
            dump = nftgen.table_dump(sock, family, table, rules=rules)
        number = nftgen.FAMILIES[family]
        nft_recipes.check(number, dump, learned)
        made = nft_recipes.recipe(number, dump)
        if libc.unshare(CLONE_NEWNET) != 0:
            return None
        nft_scratch.make_devices(devices)
        with nftgen.open_socket() as sock:
            nftgen.commit(sock, nft_recipes.batch([(number, table, made)]))
            again = nftgen.table_dump(sock, family, table)
        if nft_recipes.comparable(again) != nft_recipes.comparable(dump):
            return None
    except (nft_recipes.NoRecipe, OSError, ValueError, KeyError, struct.error):
        return None
    return base64.b64encode(made).decode()


class _Proofs:
    """What a transaction asks of the ruleset memo (state/rulesets.RulesetMemo)
    to follow its commit, kept in memory: what the namespace held before it,
    and which tables were read back as sent (nftables._follow)."""

    trust = False

    def __init__(self):
        self.held: dict = {}
        self.proved: list = []

    def get(self, ns: str, cookie: int, generation: int, devices):
        known = self.held.get(ns)
        return list(known[3]) if known is not None and known[:3] == (cookie, generation, devices) else None

    def put(self, ns: str, cookie: int, generation: int, devices, resources) -> None:
        self.held[ns] = (cookie, generation, devices, tuple(resources))

    def prove(self, tables) -> None:
        self.proved += [table.key for table in tables]

    def proven(self, table) -> bool:
        return table.key in self.proved

    def recipe(self, table) -> None:
        return None  # the proof sends the text: it is what is proven


class _Forms:
    """What a reading back notes of the rules' forms (state/rule_forms.RuleForms),
    kept in memory for the parent to merge: every table here is proven alone."""

    def __init__(self):
        self.noted: dict = {}  # digest -> (text, counter matches)
        self.rules = None  # (generation, [each rule's attributes]) as the reading back dumped them

    def rules_dumped(self, generation: int, dumped: list, raw: dict) -> None:
        self.rules = (generation, [data[start:end] for data, start, end in (raw[handle] for _, handle in dumped)])

    def table(self, ns: str, family: str, name: str) -> "_Forms":
        return self

    def serves(self) -> bool:
        return False  # nothing known here: the reading back lists

    def blocker(self):
        return None

    def text(self, form):
        found = self.noted.get(form.digest)
        return found[0] if found is not None and found[1] == form.matches else None

    def note(self, form, text: str) -> None:
        self.noted[form.digest] = (text, form.matches)

    def note_blocker(self, text) -> None:
        pass


class _Here(Namespace):
    """The namespace this process is in, under the name the apply will use."""

    def still_named(self) -> bool:
        return True


class _HereKernel(Kernel):
    """A kernel session whose every namespace is the one this process is in."""

    def ns(self, name: str) -> Namespace:
        handle = self._open.get(name)
        if handle is None:
            handle = self._open[name] = _Here(name, os.open("/proc/self/ns/net", os.O_RDONLY), self._loop)
        return handle
