"""Plans: ordered, immutable lists of actions, each a change to one resource."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .resource import Resource

CREATE, DELETE, MODIFY = "create", "delete", "modify"


@dataclass(frozen=True)
class Action:
    """One change to one resource.

    `changes` lists (field, desired, live) for a modify; `implicit` says why no
    kernel request is needed (the kernel does it as a side effect of another action).
    """

    op: str
    desired: Resource | None = None
    live: Resource | None = None
    changes: tuple = ()
    implicit: str = ""

    @property
    def resource(self) -> Resource:
        return self.desired if self.desired is not None else self.live

    @property
    def kind(self) -> str:
        return self.resource.kind

    @property
    def key(self) -> tuple:
        return self.resource.key

    @property
    def ns(self) -> str:
        return self.resource.ns

    def __str__(self) -> str:
        r = self.resource
        text = f"{self.op} {r.label} in {r.ns}"
        if self.changes:
            said = ", ".join(f"{f}: {l!r} -> {d!r}" for f, d, l in self.changes)
            text += f" ({said if len(said) <= 2000 else '; '.join(self._changes_said())})"
        return text

    def _changes_said(self, most: int = 5, width: int = 300) -> list:
        """The changes as the kind spells them out, for fields too long to print
        (a firewall table's whole chains: 10,000 rules, twice, in one error
        message, found by review): by chain, rule and element, the first `most`,
        each value cut at `width` characters."""
        from ..kinds import kind  # the registry, in the same (bottom) layer

        said: dict = {}  # each row once (a table's flags row comes with each change), in order
        for change in self.changes:
            try:
                rows = kind(self.kind).details(replace(self, changes=(change,)))
            except Exception:  # noqa: BLE001 - a message must still be made: the field as it is
                rows = []
            # A field the kind does not spell out (a table's map, counter, quota): as it is, cut.
            said.update(dict.fromkeys(tuple(map(str, row)) for row in rows
                                      or [(change[0], repr(change[1]), repr(change[2]))]))
        said = list(said)
        out = [f"{what}: {_cut(live, width)} -> {_cut(desired, width)}" for what, desired, live in said[:most]]
        if len(said) > most:
            out.append(f"and {len(said) - most} more")
        return out

    def sort_key(self):
        from ..kinds import RANK  # the registry, in the same (bottom) layer

        rank = RANK[self.kind]
        if self.op == DELETE:
            return (0, -rank, self.key)
        return (1, rank, 0 if self.op == CREATE else 1, self.key)


@dataclass(frozen=True)
class Plan:
    actions: tuple = ()

    @property
    def empty(self) -> bool:
        return not self.actions

    def counts(self) -> dict:
        out = {CREATE: 0, DELETE: 0, MODIFY: 0}
        for a in self.actions:
            out[a.op] += 1
        return out

    def requests(self) -> tuple:
        """The actions that need a kernel request (not implicit), in order."""
        return tuple(a for a in self.actions if not a.implicit)

    def namespaces(self) -> tuple:
        return tuple(sorted({a.ns for a in self.actions}))


def _cut(value, width: int) -> str:
    text = str(value)
    return text if len(text) <= width else f"{text[:width]}... ({len(text)} characters)"
