"""The protocol every resource kind implements, with the common defaults.

A kind is one module in this package holding one `Kind` instance, `KIND`. It
says everything the rest of netkeel needs to know about its resources:

    identity        name, and the key layout in its docstring (key[0] is the namespace)
    compile         compile(topology, prefix) -> desired resources from the model
    canonical form  canonical(resource): applied to desired and live alike, before
                    every comparison (drift, plan and post-apply verification)
    comparison      closed: fields only the live side has count as differences
    dependencies    parents(resource): what it vanishes with (its namespace,
                    its device, ...), and plan(planner): the kernel's side effects
    phases          forward_phases / before_devices / delete_phase: when its requests run
    reports         label, describe, details, show_rows
    actions         run(backend, phase, actions): requests against a backend
                    (core/backend.py), batched per namespace when `batched`
    checks          key_arity, check_key(key), check_spec(spec): what a resource
                    read from a file (a snapshot) must be, so that a damaged one
                    is refused on load and never reaches the kernel or a report

Nothing outside a kind's own module branches on the kind's name: the planner,
the runtime, the reader, snapshots and reports iterate over the registry
(kinds/__init__.py) and call these.
"""

from __future__ import annotations

import json

from ..core.action import CREATE, DELETE, MODIFY, Action
from ..core.resource import changed_fields


class Kind:
    name = ""
    # Whose spec is compared whole: a field only the live side has is a difference.
    closed = False
    # Requests in these phases, in order, for a create or modify; a delete runs in
    # `delete_phase` (None: a resource of this kind is never deleted).
    forward_phases: tuple = ("create",)
    delete_phase: str | None = "delete"
    # Forward phases that run as soon as the namespaces are made, before any other
    # kind's: what a device takes from its namespace as it is made (a sysctl's
    # `conf.default`). Those of phases_of()'s answers that are not forward_phases.
    before_devices: tuple = ()
    # Whether run() takes every action of one (phase, namespace) in one call.
    batched = False
    # How many parts a key has, the namespace first, and which of them are
    # integers (a route's metric); the others are non-empty strings.
    key_arity = 2
    key_integers: tuple = ()

    @property
    def foreign_name(self) -> str:
        """What JSON format 1 calls a foreign object of this kind (`link_foreign`)."""
        return f"{self.name}_foreign"

    @classmethod
    def unknown(cls, name: str) -> "Kind":
        """A stand-in with the defaults, for a kind this version does not know."""
        stand_in = cls()
        stand_in.name = name
        return stand_in

    # -- what a file says (a snapshot) -------------------------------------------
    def check_key_shape(self, key) -> str:
        """What is wrong with the shape of `key` (a list read from a file), or "":
        `key_arity` parts, integers where `key_integers` says, non-empty strings
        elsewhere. Enough for any resource to be sorted, compared and reported."""
        if len(key) != self.key_arity:
            return f"{self.name} keys have {self.key_arity} part(s), not {len(key)}"
        for i, part in enumerate(key):
            if i in self.key_integers and not is_integer(part, 0, 2**64 - 1):
                return f"key part {i + 1} must be a whole number, not {shown(part)}"
            if i not in self.key_integers and not (isinstance(part, str) and part):
                return f"key part {i + 1} must be a non-empty string, not {shown(part)}"
        return ""

    def check_key(self, key) -> str:
        """What is wrong with `key` as the key of a resource netkeel may make or
        remove, or "": its shape, and what the kind's requests need of it."""
        return self.check_key_shape(key)

    def check_spec(self, spec: dict) -> str:
        """What is wrong with `spec` (a dict read from a file) for this kind, or "":
        by default each value must be a JSON scalar or a list of strings and numbers.
        A kind checks its own fields on top (see check_fields): whatever passes
        must be safe to hand to its run() and reports."""
        for name, value in spec.items():
            if isinstance(value, list):
                if not all(isinstance(v, (str, int, float)) for v in value):
                    return f"{name} must be a list of strings and numbers, not {shown(value)}"
            elif value is not None and not isinstance(value, (str, int, float, bool)):
                return f"{name} must be a string, number or list, not {shown(value)}"
        return ""

    def reaches(self, key, spec: dict) -> set:
        """The namespaces that making a resource with this (checked) key and spec
        changes: its own, and any other it reaches into."""
        return {key[0]}

    # -- model -> desired ------------------------------------------------------
    def compile(self, topology, prefix: str) -> list:
        return []

    def canonical(self, resource):
        return resource

    # -- what the reader needs ---------------------------------------------------
    def read_hints(self, resources) -> dict:
        """What the backend must know to read this kind (sysctl names, veth peers),
        from the desired state or a snapshot: merged into backend.read's hints."""
        return {}

    def settle_owners(self, resources, live) -> list:
        """`live` with owners only the whole live state can tell (see kinds/vrrp.py),
        `resources` being the desired state or a snapshot. By default: unchanged."""
        return live

    # -- planning ----------------------------------------------------------------
    def parents(self, resource) -> tuple:
        """What `resource` disappears with besides its namespace: (ident, why)
        pairs, `why` None to say why that parent went."""
        return ()

    def changes(self, desired, live) -> tuple:
        return changed_fields(desired, live, closed=self.closed)

    def plan(self, planner) -> None:
        """Add this kind's actions to `planner` (planner/diff.py): by default a
        plain diff, where what vanishes with a parent is deleted implicitly and
        created again if still wanted."""
        want, have = planner.of_kind(planner.want, self.name), planner.of_kind(planner.have, self.name)
        for ident, live in have.items():
            why = planner.vanishing(live)
            if ident not in want:
                if self.delete_phase is None and not why:
                    continue  # cannot be removed: one no longer declared is left as it is
                planner.actions.append(Action(DELETE, live=live, implicit=why))
            elif why:
                have[ident] = None  # it disappears: the desired one must be created again
        for ident in sorted(want):
            desired, live = want[ident], have.get(ident)
            if live is None:
                planner.actions.append(Action(CREATE, desired=desired))
            elif changes := self.changes(desired, live):
                planner.actions.append(Action(MODIFY, desired=desired, live=live, changes=changes))
        self.after_plan(planner, have, want)

    def after_plan(self, planner, have: dict, want: dict) -> None:
        """Side effects among this kind's own actions (a primary address taking
        its secondaries along)."""

    def phases_of(self, action) -> tuple:
        """The phases in which `action` needs a request (none if implicit)."""
        if action.op == DELETE:
            return () if action.implicit or self.delete_phase is None else (self.delete_phase,)
        if action.implicit:
            return ()
        return self.forward_phases

    def place(self, resource):
        """(namespace, device or None) of what deleting `resource` takes away with
        all that acts on it (a namespace, a device); None for other kinds."""
        return None

    def harm_outside(self, resource) -> str:
        """What removing `resource`'s namespace would also destroy outside netkeel's
        scope ("" for nothing): such a namespace is not removed."""
        return ""

    # -- reports -------------------------------------------------------------------
    def label(self, resource) -> str:
        return f"{self.name} {' '.join(map(str, resource.key[1:]))}"

    def describe(self, resource) -> str:
        return ""

    def details(self, action) -> list:
        """[(what, desired, live)] for a modify, readable."""
        return [(field, show(d), show(l)) for field, d, l in action.changes]

    def show_rows(self, resources, addresses_of) -> list:
        """Rows (what, value) for `show`'s object table; the link kind fills the
        interface table instead (see link.interface_rows)."""
        return [(r.label, r.describe()) for r in sorted(resources)]

    # -- actions -------------------------------------------------------------------
    def run(self, backend, phase: str, actions) -> None:
        raise NotImplementedError(f"kind {self.name} makes no requests")


def check_fields(spec: dict, **rules) -> str:
    """What is wrong with the fields `rules` names (field=(test, "what it must be")),
    or "": a field that is absent or None is left unmanaged, never wrong."""
    for name, (test, what) in rules.items():
        value = spec.get(name)
        if value is not None and not test(value):
            return f"{name} must be {what}, not {shown(value)}"
    return ""


def is_integer(value, low: int = 0, high: int = 2**32 - 1) -> bool:
    """An integer (not a bool) from `low` to `high`."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def is_number(value, low: float = 0, high: float = float("inf")) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high


def is_text(value) -> bool:
    return isinstance(value, str)


def shown(value) -> str:
    """A value read from a file, for a message: as JSON, cut short."""
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def short(text: str, limit: int = 60) -> str:
    """Plain text for a plan line or message, cut to `limit` characters with its length said."""
    return text if len(text) <= limit else f"{text[:limit - 3]}... ({len(text):,} characters)"


def show(value) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) or "(none)"
    return "(none)" if value in (None, "") else str(value)


__all__ = ["Kind", "CREATE", "DELETE", "MODIFY", "Action", "short", "show", "shown", "check_fields",
           "is_integer", "is_number", "is_text"]
