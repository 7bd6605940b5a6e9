"""Resources: the one shape desired state, live state, drift and snapshots share.

A resource is (kind, key, spec, owner). `key` identifies it within its kind and
always starts with the namespace; `spec` is a sorted tuple of (field, value)
pairs in canonical form. Desired specs name only the fields the manifest
manages; live specs carry every field the reader knows. Comparison therefore
looks only at the fields the desired side names (see `changed_fields`).

`owner` says whose a live object is (core/owners.py); it is not part of a
resource's identity or equality: the same route is the same route whoever
made it.
"""

from __future__ import annotations

from .owners import TOPOLOGY

_set = object.__setattr__


class Resource:
    """(kind, key, spec, owner): see above. Immutable; equal, hashed and ordered
    by (kind, key, spec).

    A plain class, not a dataclass: a quick answer (cli/quick.py) reads the
    kernel into resources, and `dataclasses` (its import, with `inspect`'s, and
    its class making) was a fifth of that answer's time."""

    __slots__ = ("kind", "key", "spec", "owner")

    def __init__(self, kind: str, key: tuple, spec: tuple = (), owner: str = TOPOLOGY):
        _set(self, "kind", kind)
        _set(self, "key", key)
        _set(self, "spec", spec)
        _set(self, "owner", owner)

    def __setattr__(self, name, value):
        raise AttributeError(f"cannot assign to field {name!r}: a resource is immutable")

    def __delattr__(self, name):
        raise AttributeError(f"cannot delete field {name!r}: a resource is immutable")

    def __reduce__(self):
        return (self.__class__, (self.kind, self.key, self.spec, self.owner))

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(kind={self.kind!r}, key={self.key!r}, spec={self.spec!r}, "
                f"owner={self.owner!r})")

    def __hash__(self) -> int:
        return hash((self.kind, self.key, self.spec))

    # Compared as the dataclass compared: with its own class only, by (kind, key, spec).
    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return (self.kind, self.key, self.spec) == (other.kind, other.key, other.spec)

    def __lt__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return (self.kind, self.key, self.spec) < (other.kind, other.key, other.spec)

    def __le__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return (self.kind, self.key, self.spec) <= (other.kind, other.key, other.spec)

    def __gt__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return (self.kind, self.key, self.spec) > (other.kind, other.key, other.spec)

    def __ge__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return (self.kind, self.key, self.spec) >= (other.kind, other.key, other.spec)

    @classmethod
    def make(cls, kind: str, key: tuple, /, owner: str = TOPOLOGY, **spec) -> "Resource":
        """Build a resource; fields whose value is None are left unmanaged."""
        return cls(kind, tuple(key), tuple(sorted((k, v) for k, v in spec.items() if v is not None)), owner)

    @property
    def ns(self) -> str:
        return self.key[0]

    @property
    def ident(self) -> tuple:
        return (self.kind, self.key)

    def get(self, name: str, default=None):
        for key, value in self.spec:
            if key == name:
                return value
        return default

    def fields(self) -> dict:
        return dict(self.spec)

    def with_fields(self, **changes) -> "Resource":
        spec = self.fields()
        spec.update(changes)
        return Resource.make(self.kind, self.key, owner=self.owner, **spec)

    def owned_by(self, owner: str) -> "Resource":
        return Resource(self.kind, self.key, self.spec, owner)

    @property
    def label(self) -> str:
        """A short human name, without the namespace: `addr 10.0.1.2/24 on veth_c1`."""
        return _kind(self.kind).label(self)

    def describe(self) -> str:
        """The spec in a line: `veth peer ns_server/veth_srv_c1 mtu 1500 up`; for an
        object the topology does not own, why it is not (its `reason`, if read with one)."""
        if self.owner != TOPOLOGY:
            return self.get("reason", "")
        return _kind(self.kind).describe(self)


def _kind(name: str):
    """The kind `name` from the registry (in the same, bottom, layer); an unknown
    kind (a newer snapshot's, say) gets the protocol's defaults."""
    from ..kinds import BY_NAME, Kind

    return BY_NAME.get(name) or Kind.unknown(name)


def changed_fields(desired: Resource, live: Resource, closed: bool | None = None) -> tuple:
    """(field, desired value, live value) for each field desired names that differs
    (and, when `closed`, each field only live has; by default as the kind says).
    Fields whose name starts with "_" are information for reports, never compared."""
    if closed is None:
        closed = _kind(desired.kind).closed
    changes = [(name, value, live.get(name)) for name, value in desired.spec
               if not name.startswith("_") and live.get(name) != value]
    if closed:
        named = {name for name, _ in desired.spec}
        changes += [(name, None, value) for name, value in live.spec
                    if not name.startswith("_") and name not in named]
    return tuple(changes)
