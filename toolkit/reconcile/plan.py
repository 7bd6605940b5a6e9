"""The planner: diff(desired, live) -> Plan. Pure, ordered, immutable, printable.

Kernel semantics the planner knows, so that a plan is exact:
- deleting a namespace removes everything in it, and the far end of every veth
  that crossed into it;
- deleting a veth end removes its peer;
- deleting (or re-creating) a device removes its addresses and routes, and
  releases its bridge ports;
- a new namespace comes with a loopback device, down;
- a device that loses its last IPv4 address loses its IPv4 routes;
- a subnet's primary IPv4 address takes its secondaries along;
- a device set down loses its IPv6 addresses and its routes;
- a re-created device comes back with default per-interface sysctls.
Such removals appear in the plan as implicit actions (no kernel request), and
anything that must come back afterwards is planned as a create.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from dataclasses import dataclass, field

from .resources import KIND_RANK, LINK_IDENTITY_FIELDS, Resource, changed_fields

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
            text += " (" + ", ".join(f"{f}: {l!r} -> {d!r}" for f, d, l in self.changes) + ")"
        return text

    def sort_key(self):
        rank = KIND_RANK[self.kind]
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


@dataclass
class _Planner:
    want: dict
    have: dict
    actions: list = field(default_factory=list)
    gone: dict = field(default_factory=dict)  # ident -> why it disappears with something else

    def run(self) -> Plan:
        self.namespaces()
        self.links()
        for kind in ("sysctl", "addr", "route", "nft_table"):
            self.simple(kind)
        return Plan(tuple(sorted(self.actions, key=Action.sort_key)))

    def of_kind(self, table: dict, kind: str) -> dict:
        return {i: r for i, r in table.items() if r.kind == kind}

    def namespaces(self) -> None:
        want, have = self.of_kind(self.want, "netns"), self.of_kind(self.have, "netns")
        for ident in have.keys() - want.keys():
            self.actions.append(Action(DELETE, live=have[ident]))
            self.gone[ident] = "with its namespace"
        for ident in want.keys() - have.keys():
            self.actions.append(Action(CREATE, desired=want[ident]))
            # A new namespace comes with its loopback device, down, as the kernel makes it.
            lo = Resource.make("link", (ident[1][0], "lo"), kind="loopback", state="down",
                               mtu=65536, mac="00:00:00:00:00:00", master="")
            self.have[lo.ident] = lo

    def links(self) -> None:
        want, have = self.of_kind(self.want, "link"), self.of_kind(self.have, "link")
        # 1. Devices that die with their deleted namespace.
        for ident, live in have.items():
            if ("netns", (live.ns,)) in self.gone:
                self.gone[ident] = "with its namespace"
        # 2. Devices removed or re-created; a veth takes its peer along. A veth
        #    whose peer's namespace goes is removed explicitly: the kernel tears a
        #    namespace down asynchronously, and its name may be wanted again at once.
        removed = set()
        for ident in sorted(have):
            live = have[ident]
            if ident in self.gone:
                continue
            desired = want.get(ident)
            peer = _peer_ident(live)
            peer_ns_gone = peer is not None and ("netns", peer[1][:1]) in self.gone
            if desired is None or peer_ns_gone or \
                    any(f in LINK_IDENTITY_FIELDS for f, _, _ in changed_fields(desired, live)):
                removed.add(ident)
                if peer in have and peer not in self.gone and peer not in removed:
                    self.gone[peer] = "with its peer"
        for ident, live in have.items():
            if ident in removed or ident in self.gone:
                self.actions.append(Action(DELETE, live=live, implicit=self.gone.get(ident, "")))
                if ident not in self.gone:
                    self.gone[ident] = "with its device"
        # 3. Bridges that go away release their ports.
        present = {i: self.released(r) for i, r in have.items() if i not in self.gone}
        created = set()
        for ident in sorted(want):
            desired = want[ident]
            live = present.get(ident)
            if live is None:
                peer = _peer_ident(desired)
                implicit = "with its peer" if peer in created else ""
                self.actions.append(Action(CREATE, desired=desired, implicit=implicit))
                created.add(ident)
            elif changes := changed_fields(desired, live):
                self.actions.append(Action(MODIFY, desired=desired, live=live, changes=changes))
                if ("state", "down", "up") in changes:
                    # Setting a device down takes its IPv6 addresses and its routes with it.
                    self.gone[("down", ident[1])] = "with its device going down"

    def released(self, live: Resource) -> Resource:
        master = live.get("master")
        if master and ("link", (live.ns, master)) in self.gone:
            return live.with_fields(master="")
        return live

    def simple(self, kind: str) -> None:
        want, have = self.of_kind(self.want, kind), self.of_kind(self.have, kind)
        for ident, live in have.items():
            why = self.vanishing(live)
            if ident not in want:
                if kind == "sysctl" and not why:
                    continue  # a sysctl cannot be removed: one no longer declared is left as it is
                self.actions.append(Action(DELETE, live=live, implicit=why))
            elif why:
                have[ident] = None  # it disappears: the desired one must be created again
        for ident in sorted(want):
            desired, live = want[ident], have.get(ident)
            if live is None:
                self.actions.append(Action(CREATE, desired=desired))
            elif changes := changed_fields(desired, live):
                self.actions.append(Action(MODIFY, desired=desired, live=live, changes=changes))
        if kind == "addr":
            self.secondaries_lost(have, want)
            self.note_ipv4_loss(have)

    def note_ipv4_loss(self, have: dict) -> None:
        """A device whose IPv4 addresses are all deleted loses its IPv4 routes too
        (the kernel flushes them when the last one goes), even if new addresses
        come back later in the same apply."""
        deleted = {a.key for a in self.actions if a.op == DELETE and a.kind == "addr" and not a.implicit}
        v4 = defaultdict(set)
        for ident, live in have.items():
            if live is not None and ":" not in live.key[2]:
                v4[live.key[:2]].add(live.key)
        for device, keys in v4.items():
            if keys <= deleted:
                self.gone[("ipv4", device)] = "with its device's last IPv4 address"

    def secondaries_lost(self, have: dict, want: dict) -> None:
        """Deleting a subnet's primary IPv4 address deletes its secondaries too (the
        kernel does, unless promote_secondaries is set): those still wanted come back."""
        deleted = [a.live for a in self.actions if a.op == DELETE and a.kind == "addr" and not a.implicit
                   and ":" not in a.key[2] and not a.live.get("secondary")]
        for primary in deleted:
            subnet = ipaddress.ip_interface(primary.key[2]).network
            for ident, live in list(have.items()):
                if live is not None and live.get("secondary") and live.key[:2] == primary.key[:2] \
                        and ipaddress.ip_interface(live.key[2]).network == subnet:
                    have[ident] = None
                    if ident in want:
                        self.actions.append(Action(CREATE, desired=want[ident]))
                    else:  # unwanted anyway: it goes with its primary
                        self.actions = [a for a in self.actions if a.resource.ident != ident]
                        self.actions.append(Action(DELETE, live=live, implicit="with its subnet's primary address"))

    def vanishing(self, resource: Resource) -> str:
        for parent in _parents(resource):
            if parent in self.gone:
                if parent[0] in ("ipv4", "down"):
                    return self.gone[parent]
                return "with its namespace" if parent[0] == "netns" else "with its device"
        return ""


def _peer_ident(link: Resource):
    peer = link.get("peer")
    if not peer:
        return None
    ns, _, ifname = peer.partition("/")
    return ("link", (ns, ifname))


def _parents(resource: Resource) -> tuple:
    """What `resource` disappears with: its namespace, its device, its device's
    last IPv4 address (IPv4 routes), its device going down (IPv6 addresses, routes)."""
    ns = resource.ns
    parents = [("netns", (ns,))]
    if resource.kind == "addr":
        parents.append(("link", (ns, resource.key[1])))
        if ":" in resource.key[2]:
            parents.append(("down", (ns, resource.key[1])))
    elif resource.kind == "route" and resource.get("dev"):
        dev = resource.get("dev")
        parents += [("link", (ns, dev)), ("down", (ns, dev))]
        if ":" not in resource.key[1]:
            parents.append(("ipv4", (ns, dev)))
    elif resource.kind == "sysctl" and (device := _sysctl_device(resource.key[1])):
        parents.append(("link", (ns, device)))
    return tuple(parents)


def _sysctl_device(name: str) -> str | None:
    """The interface of a per-interface sysctl (net.ipv4.conf.eth0.forwarding),
    which is gone when the device is (and comes back with defaults)."""
    parts = name.split(".")
    if len(parts) >= 5 and parts[1] in ("ipv4", "ipv6") and parts[2] in ("conf", "neigh") \
            and parts[3] not in ("all", "default"):
        return parts[3].replace("/", ".")
    return None


def diff(desired, live) -> Plan:
    """The plan that turns `live` into `desired` (both iterables of Resource)."""
    want = {r.ident: r for r in desired}
    have = {r.ident: r for r in live}
    return _Planner(want, have).run()
