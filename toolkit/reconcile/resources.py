"""Resources: the one shape desired state, live state, drift and snapshots share.

A resource is (kind, key, spec). `key` identifies it within its kind and always
starts with the namespace; `spec` is a sorted tuple of (field, value) pairs in
canonical form. Desired specs name only the fields the manifest manages; live
specs carry every field the reader knows. Comparison therefore looks only at the
fields the desired side names (see `changed_fields`).
"""

from __future__ import annotations

from dataclasses import dataclass

# Creation order; deletion runs in reverse. Links come before sysctls because
# per-interface sysctls (net.ipv4.conf.<if>.*) need their interface. Firewall
# tables come last: they match interfaces by name, so nothing depends on them.
KINDS = ("netns", "link", "sysctl", "addr", "route", "nft_table")
# Kinds whose specs are compared whole: a field only the live side has (a chain
# added by hand to a table) is a difference too.
CLOSED_KINDS = ("nft_table",)
# Read from the kernel and reported, never planned: things in a managed
# namespace that netkeel must not change or could not recreate (a table
# someone else made, a veth whose other end is in a namespace netkeel does not
# manage, a device kind it cannot create, a multipath route).
UNMANAGED_KINDS = ("nft_foreign", "link_foreign", "route_foreign")
KIND_RANK = {kind: i for i, kind in enumerate(KINDS)}

# Link fields that cannot change on a live device: a different value means
# delete and create again.
LINK_IDENTITY_FIELDS = ("kind", "peer")


@dataclass(frozen=True, order=True)
class Resource:
    kind: str
    key: tuple
    spec: tuple = ()

    @classmethod
    def make(cls, kind: str, key: tuple, /, **spec) -> "Resource":
        """Build a resource; fields whose value is None are left unmanaged."""
        return cls(kind, tuple(key), tuple(sorted((k, v) for k, v in spec.items() if v is not None)))

    @property
    def ns(self) -> str:
        return self.key[0]

    @property
    def ident(self) -> tuple:
        return (self.kind, self.key)

    def get(self, field: str, default=None):
        for name, value in self.spec:
            if name == field:
                return value
        return default

    def fields(self) -> dict:
        return dict(self.spec)

    def with_fields(self, **changes) -> "Resource":
        spec = self.fields()
        spec.update(changes)
        return Resource.make(self.kind, self.key, **spec)

    @property
    def label(self) -> str:
        """A short human name, without the namespace: `addr 10.0.1.2/24 on veth_c1`."""
        k = self.key
        if self.kind == "netns":
            return "namespace"
        if self.kind == "link":
            return f"link {k[1]}"
        if self.kind == "addr":
            return f"addr {k[2]} on {k[1]}"
        if self.kind == "route":
            default_metric = 1024 if ":" in k[1] else 0
            metric = f" metric {k[2]}" if k[2] != default_metric else ""
            return f"route {_dst(k[1])}{metric}"
        if self.kind == "sysctl":
            return f"sysctl {k[1]}"
        if self.kind in ("nft_table", "nft_foreign"):
            return f"nft table {k[1]} {k[2]}"
        if self.kind == "link_foreign":
            return f"link {k[1]}"
        if self.kind == "route_foreign":
            return f"route {_dst(k[1])}"
        return f"{self.kind} {' '.join(map(str, k[1:]))}"

    def describe(self) -> str:
        """The spec in a line: `veth peer ns_server/veth_srv_c1 mtu 1500 up`."""
        f = self.fields()
        if self.kind == "link":
            parts = [f.get("kind", "")]
            if f.get("peer"):
                parts.append(f"peer {f['peer']}")
            if f.get("master"):
                parts.append(f"master {f['master']}")
            if f.get("mtu"):
                parts.append(f"mtu {f['mtu']}")
            if f.get("mac"):
                parts.append(f"mac {f['mac']}")
            if f.get("state"):
                parts.append(f["state"])
            return " ".join(p for p in parts if p)
        if self.kind == "route":
            parts = []
            if f.get("via"):
                parts.append(f"via {f['via']}")
            if f.get("dev"):
                parts.append(f"dev {f['dev']}")
            return " ".join(parts)
        if self.kind == "sysctl":
            return f"= {f.get('value')}"
        if self.kind in UNMANAGED_KINDS:
            return f.get("reason", "")
        if self.kind == "nft_table":
            chains = sum(1 for name in f if name.startswith("chain "))
            rules = sum(len(v) for name, v in f.items() if name.startswith("rules "))
            sets = sum(1 for name in f if name.startswith("set "))
            return f"{chains} chain(s), {rules} rule(s), {sets} set(s)"
        return ""


def _dst(prefix: str) -> str:
    return "default" if prefix in ("0.0.0.0/0", "::/0") else prefix


def changed_fields(desired: Resource, live: Resource) -> tuple:
    """(field, desired value, live value) for each field desired names that differs
    (and, for closed kinds, each field only live has). Fields whose name starts
    with "_" are information for reports, never compared."""
    changes = [(name, value, live.get(name)) for name, value in desired.spec
               if not name.startswith("_") and live.get(name) != value]
    if desired.kind in CLOSED_KINDS:
        named = {name for name, _ in desired.spec}
        changes += [(name, None, value) for name, value in live.spec
                    if not name.startswith("_") and name not in named]
    return tuple(changes)
