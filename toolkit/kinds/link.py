"""Kind "link": a network device (veth end, bridge, loopback), key (ns, ifname).

Spec fields: kind, peer ("ns/ifname" for a veth), mtu, state, mac, master, arp
("on", as the kernel makes a veth or bridge; "off" set by hand stops it
answering and asking: drift); a bridge's stp ("off"), a bridge port's isolated,
learning, flood and bcast_flood (off, on, on, on): as the kernel makes them,
each of which, set otherwise by hand, cuts a LAN in pieces.
A device is created bare in one phase and configured in a later one, so that
every bridge exists before its ports are enslaved.
"""

from __future__ import annotations

from ..core.owners import FOREIGN
from ..core.resource import Resource
from . import netns
from .base import CREATE, DELETE, MODIFY, Action, Kind, check_fields, is_integer, is_text

# Fields that cannot change on a live device: a different value means delete
# and create again.
IDENTITY_FIELDS = ("kind", "peer")
# On/off settings a device keeps as the kernel makes it (see the module's docstring).
PORT_DEFAULTS = {"isolated": "off", "learning": "on", "flood": "on", "bcast_flood": "on"}
DEFAULTS = {"arp": "on", "stp": "off", **PORT_DEFAULTS}
SWITCHES = tuple(DEFAULTS)
# What netkeel can create, and so may delete.
CREATABLE = ("veth", "bridge", "loopback")


class Link(Kind):
    name = "link"
    forward_phases = ("create", "configure")
    key_arity = 2

    def check_spec(self, spec) -> str:
        if spec.get("kind") == "veth" and not (is_text(spec.get("peer")) and "/" in spec["peer"]):
            return 'a veth needs its peer, "ns/ifname"'
        return super().check_spec(spec) or check_fields(
            spec, kind=(is_text, "a string"), peer=(is_text, 'a string "ns/ifname"'),
            mtu=(is_integer, "an integer"), state=(lambda v: v in ("up", "down"), '"up" or "down"'),
            mac=(is_text, "a string"), master=(is_text, "a string"), reason=(is_text, "a string"),
            **{name: (lambda v: v in ("on", "off"), '"on" or "off"') for name in SWITCHES})

    def reaches(self, key, spec) -> set:
        """A veth is made with both its ends: its peer's namespace too."""
        peer = spec.get("peer")
        return {key[0], peer.partition("/")[0]} if peer else {key[0]}

    def compile(self, topology, prefix):
        out = []
        for node in topology.nodes:
            ns = netns.namespace_name(prefix, node.name)
            for iface in node.interfaces:
                peer = f"{netns.namespace_name(prefix, iface.peer[0])}/{iface.peer[1]}" if iface.peer else None
                # "" means "managed, and none": a port enslaved by hand is drift.
                master = None if iface.kind == "loopback" else (iface.master or "")
                switches = {} if iface.kind == "loopback" else {"arp": "on"}
                if iface.kind == "bridge":
                    switches["stp"] = "off"
                if master:
                    switches.update(PORT_DEFAULTS)
                out.append(Resource.make(self.name, (ns, iface.name), kind=iface.kind, peer=peer,
                                         mtu=iface.mtu, state=iface.state, mac=iface.mac, master=master,
                                         **switches))
        return out

    def read_hints(self, resources) -> dict:
        return {"veth_peers": {r.key: r.get("peer").partition("/")[0] for r in resources
                               if r.kind == self.name and r.get("peer")}}

    def changes(self, desired, live) -> tuple:
        """As declared; but a device that is not the port it should be has no port
        options to compare: it becomes one with the kernel's, which are declared."""
        changes = super().changes(desired, live)
        if desired.get("master") != live.get("master"):
            # Enslaved anew, it gets the kernel's port options: those that differ
            # (a snapshot's) are set after.
            changes = tuple(c for c in changes if c[0] not in PORT_DEFAULTS or c[1] != PORT_DEFAULTS[c[0]])
        return changes

    def born_in(self, ns: str) -> Resource:
        """The loopback device a new namespace comes with, as the kernel makes it."""
        return Resource.make(self.name, (ns, "lo"), kind="loopback", state="down", mtu=65536,
                             mac="00:00:00:00:00:00", master="")

    def plan(self, planner) -> None:
        want, have = planner.of_kind(planner.want, self.name), planner.of_kind(planner.have, self.name)
        gone = planner.gone
        # 1. Devices that die with their deleted namespace.
        for ident, live in have.items():
            if netns.ident(live.ns) in gone:
                gone[ident] = "with its namespace"
        # 2. Devices removed or re-created; a veth takes its peer along. A veth
        #    whose peer's namespace goes is removed explicitly: the kernel tears a
        #    namespace down asynchronously, and its name may be wanted again at once.
        removed = set()
        for ident in sorted(have):
            live = have[ident]
            if ident in gone:
                continue
            desired = want.get(ident)
            peer = peer_ident(live)
            peer_ns_gone = peer is not None and netns.ident(peer[1][0]) in gone
            if desired is None or peer_ns_gone or \
                    any(f in IDENTITY_FIELDS for f, _, _ in self.changes(desired, live)):
                removed.add(ident)
                if peer in have and peer not in gone and peer not in removed:
                    gone[peer] = "with its peer"
        for ident, live in have.items():
            if ident in removed or ident in gone:
                planner.actions.append(Action(DELETE, live=live, implicit=gone.get(ident, "")))
                if ident not in gone:
                    gone[ident] = "with its device"
        # 3. Bridges that go away release their ports.
        present = {i: self._released(r, gone) for i, r in have.items() if i not in gone}
        created = set()
        for ident in sorted(want):
            desired = want[ident]
            live = present.get(ident)
            if live is None:
                implicit = "with its peer" if peer_ident(desired) in created else ""
                planner.actions.append(Action(CREATE, desired=desired, implicit=implicit))
                created.add(ident)
            elif changes := self.changes(desired, live):
                planner.actions.append(Action(MODIFY, desired=desired, live=live, changes=changes))
                if ("state", "down", "up") in changes:
                    # Setting a device down takes its IPv6 addresses and its routes with it.
                    gone[down_ident(ident[1])] = "with its device going down"

    def _released(self, live: Resource, gone: dict) -> Resource:
        master = live.get("master")
        if master and (self.name, (live.ns, master)) in gone:
            return live.with_fields(master="")
        return live

    def phases_of(self, action) -> tuple:
        if action.op == DELETE:
            return () if action.implicit else ("delete",)
        if action.op == CREATE:
            return ("configure",) if action.implicit else ("create", "configure")
        return ("configure",)

    def place(self, resource):
        return resource.key

    def harm_outside(self, resource) -> str:
        """A veth whose other end is outside the scope (another party's namespace,
        the root namespace): the kernel deletes that end with this one."""
        if resource.owner == FOREIGN and resource.get("peer"):
            return f"its other end {resource.get('peer')} would be deleted with it"
        return ""

    def label(self, resource) -> str:
        return f"link {resource.key[1]}"

    def describe(self, resource) -> str:
        f = resource.fields()
        parts = [f.get("kind", "")]
        for name in ("peer", "master", "mtu", "mac"):
            if f.get(name):
                parts.append(f"{name} {f[name]}")
        if f.get("state"):
            parts.append(f["state"])
        return " ".join(p for p in parts if p)

    def interface_rows(self, links, addresses_of) -> list:
        """(interface, kind, state, mtu, addresses, peer or master, dim) for `show`."""
        rows = []
        for link in sorted(links):
            f = link.fields()
            other = f.get("peer") or (f"master {f['master']}" if f.get("master") else "")
            rows.append((link.key[1], f.get("kind"), f.get("state"), str(f.get("mtu", "")),
                         "\n".join(addresses_of.get(link.key[1], [])), other, f.get("state") != "up"))
        return rows

    def run(self, backend, phase, actions) -> None:
        for action in actions:
            ns, ifname = action.key
            if phase == "delete":
                backend.link_delete(ns, ifname, action.live.get("peer"))
            elif phase == "create":
                desired = action.desired
                if desired.get("kind") == "veth":
                    peer_ns, _, peer_if = desired.get("peer").partition("/")
                    backend.link_add_veth(ns, ifname, peer_ns, peer_if)
                elif desired.get("kind") == "bridge":
                    backend.link_add_bridge(ns, ifname)
                else:
                    raise ValueError(f"netkeel cannot create a {desired.get('kind')} device ({ifname})")
            else:
                # A new device gets every managed field (and the ownership mark);
                # a changed one only what differs.
                new = action.op == CREATE
                fields = None if new else {f for f, _, _ in action.changes}
                wanted = {f: v for f, v in action.desired.spec if fields is None or f in fields}
                settings = {f: wanted[f] for f in ("mtu", "mac", "master", "state", *SWITCHES)
                            if wanted.get(f) is not None}
                if not settings.get("mac"):
                    settings.pop("mac", None)  # "" is "the kernel's choice": nothing to set
                if new:  # a new device (or port) is as the kernel makes it: only what differs is set
                    for switch in SWITCHES:
                        if settings.get(switch) == DEFAULTS[switch]:
                            settings.pop(switch)
                mark = new and action.desired.get("kind") != "loopback"
                if settings or mark:
                    backend.link_set(ns, ifname, mark=mark, **settings)


def peer_ident(link: Resource):
    peer = link.get("peer")
    if not peer:
        return None
    ns, _, ifname = peer.partition("/")
    return (KIND.name, (ns, ifname))


def device_ident(ns: str, ifname: str) -> tuple:
    return (KIND.name, (ns, ifname))


def down_ident(key: tuple) -> tuple:
    """What vanishes when device `key` is set down: its IPv6 addresses and routes."""
    return ("link down", key)


def ipv4_lost_ident(key: tuple) -> tuple:
    """What vanishes when device `key` loses its last IPv4 address: its IPv4 routes."""
    return ("link ipv4", key)


KIND = Link()
