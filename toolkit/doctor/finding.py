"""A finding of the doctor, and how findings are ordered and written as data."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Finding:
    check: str                 # the check that found it (checks/NAME.py)
    title: str                 # one line: what is wrong
    where: str                 # a node, an interface, or a pair "a -> b"
    evidence: tuple = ()       # what was measured or read, a line each
    why: str = ""              # why it breaks traffic
    fix: str = ""              # what to do about it
    diff: str = ""             # the manifest change that fixes it (unified diff), where one applies
    severity: str = "error"    # error, or warning (it may break traffic, or it will later)
    nodes: tuple = field(default=(), compare=False)  # the nodes it concerns (marked on the graph)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["evidence"], out["nodes"] = list(self.evidence), list(self.nodes)
        return out


def ordered(findings) -> list:
    """Errors first, then by check and place: the same lab gives the same report."""
    return sorted(set(findings), key=lambda f: (f.severity != "error", f.check, f.where, f.title))
