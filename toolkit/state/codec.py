"""Resources as plain JSON, every field kept (information fields too): the
caches' form (state/rulesets.py, state/compiled.py). Snapshots have their own,
checked kind by kind (snapshots.py), since a rollback applies them.

A resource is [kind, key, owner, [[field, value], ...]]; values are text,
numbers, None, or lists of those (tuples in a resource).
"""

from __future__ import annotations

from ..core.owners import FOREIGN, TOPOLOGY, is_overlay
from ..core.resource import Resource


def encode(r: Resource) -> list:
    return [r.kind, list(r.key), r.owner, [[name, _thawed(value)] for name, value in r.spec]]


def decode(item) -> Resource:
    """The resource `item` holds. Raises ValueError if it is not what encode() writes."""
    if not (isinstance(item, list) and len(item) == 4):
        raise ValueError("not a [kind, key, owner, spec] list")
    kind, key, owner, spec = item
    if not isinstance(kind, str) or not (isinstance(key, list) and key and all(isinstance(k, (str, int))
                                                                                 for k in key)):
        raise ValueError("bad kind or key")
    if not (owner in (TOPOLOGY, FOREIGN) or (isinstance(owner, str) and is_overlay(owner))):
        raise ValueError(f"unknown owner {owner!r}")
    if not isinstance(spec, list):
        raise ValueError("bad spec")
    fields = {}
    for pair in spec:
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)) or pair[0] in fields:
            raise ValueError("bad spec field")
        try:
            fields[pair[0]] = _frozen(pair[1])
        except RecursionError:  # a damaged file's thousand nested lists: damage like any other
            raise ValueError("a spec field nested too deeply") from None
    return Resource(kind, tuple(key), tuple(sorted(fields.items())), owner)


_SCALARS = (str, int, float, type(None))


def _frozen(value):
    """A JSON value as a spec holds it (lists as tuples). Raises ValueError for
    anything a spec never holds (objects)."""
    if type(value) is list:
        if all(type(v) is str for v in value):  # the common case: rules, elements
            return tuple(value)
        return tuple(_frozen(v) for v in value)
    if isinstance(value, _SCALARS):
        return value
    raise ValueError(f"a spec never holds {type(value).__name__}")


def _thawed(value):
    if isinstance(value, tuple):
        return [_thawed(v) for v in value]
    return value
