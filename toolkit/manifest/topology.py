"""Topology manifests: YAML -> schema check -> semantic checks -> frozen model.

Every problem is collected (YAML syntax aside, which stops parsing) and raised
together in one ManifestError; nothing here touches the kernel.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import os
from dataclasses import dataclass, field, replace

from ..errors import ManifestError, Problem
from ..model.defaults import DEFAULT_METRIC, DEFAULT_MTU
from ..model.topology import Interface, Neighbour, Node, Route, Topology
from . import checks
from .files import outside_problem, read_file, read_text  # read_file: how manifests are read
from .loader import Document, format_path, load_document, mapping, sequence
from .policy import load_policy_text, resolve_native_rules
from .schema import problems_of
from .text import clean_problem, listing, quote
from .vips import build_vips


def load_topology(path, read=read_file, natives=None, policies=None) -> Topology:
    """Load and validate the topology manifest at `path` and the policy files it
    names, read with `read(path) -> bytes`. With `natives` (a resolver such as
    kernel/nft_scratch.resolve), native firewall rules are checked and compiled
    by libnftables too; without it they stay unresolved (rule.expr None).
    `policies(text, path) -> (tables, problems)` reads each policy file
    (load_policy_text; state/policy_loads.py's reads again only what changed).

    Raises ManifestError listing every problem (unreadable files included).
    """
    text, problem = read_text(str(path), read, "manifest")
    if problem:
        raise _invalid([problem])
    return load_topology_text(text, str(path), read, natives, policies)


def load_topology_text(text: str, file: str, read=read_file, natives=None, policies=None) -> Topology:
    """Like load_topology, for manifest text already in hand (named `file` in errors)."""
    doc = load_document(text, file)
    if doc.data is None and not doc.problems:
        doc.problems.append(Problem(file, 1, "", "the manifest is empty; a topology needs `name` and `nodes`"))
    if doc.data is None:
        raise _invalid(doc.problems)
    problems = problems_of(doc, "topology")
    builder = _Builder(doc, read, policies or load_policy_text)
    topology = builder.build()
    problems += builder.problems
    if natives is not None:
        topology, native_problems = resolve_native_rules(topology, natives)
        problems += native_problems
    if problems:
        raise _invalid(problems)
    files = ((file, hashlib.sha256(text.encode()).hexdigest()),) + tuple(sorted(builder.policy_hashes.items()))
    return replace(topology, files=files)


def _invalid(problems) -> ManifestError:
    """The error for `problems`, each made safe to print (one line, bounded), duplicates merged."""
    return ManifestError({clean_problem(p) for p in problems})


MAX_LINK_RATE = 1000 * 10 ** 9      # bits/s: tc's tbf and netem rates go no further here
MAX_LINK_DELAY_US = 3600 * 10 ** 6  # an hour, as faults' delays


@dataclass
class _Draft:
    """An interface while the model is being assembled (mutable until frozen)."""

    node: str
    name: str
    kind: str
    path: tuple
    addresses: list = field(default_factory=list)
    mtu: int | None = DEFAULT_MTU
    state: str = "up"
    mac: str | None = None
    master: str | None = None
    peer: tuple | None = None
    impair: tuple = ()

    def freeze(self) -> Interface:
        return Interface(self.name, self.kind, tuple(self.addresses), self.mtu, self.state,
                         self.mac, self.master, self.peer, self.impair)


class _Builder:
    def __init__(self, doc: Document, read=read_file, load_policy=load_policy_text):
        self.doc = doc
        self.read = read
        self.load_policy = load_policy
        self.policies: dict = {}       # path -> tables, each file loaded once
        self.policy_hashes: dict = {}  # path -> sha256 of its text
        self.data = doc.data if isinstance(doc.data, dict) else {}
        self.problems: list[Problem] = []
        self.ifaces: dict[str, dict[str, _Draft]] = {}   # node -> ifname -> draft
        self.addresses: dict = {}                        # ip -> path of first use

    # -- helpers -------------------------------------------------------------
    def fail(self, path, message: str) -> None:
        self.problems.append(self.doc.problem(path, message))

    def check(self, path, fn, *args):
        try:
            return fn(*args)
        except ValueError as exc:
            self.fail(path, str(exc))
            return None

    def where(self, path) -> str:
        return f"{format_path(path)}, line {self.doc.line_of(path)}"

    # -- the build -----------------------------------------------------------
    def build(self) -> Topology:
        nodes = mapping(self.data.get("nodes"))
        for name, spec in nodes.items():
            self.ifaces[name] = {}
            lo = self.add_iface(name, "lo", "loopback", ("nodes", name), reserved_ok=True)
            lo.mtu = None  # lo's MTU is the kernel's business (65536), not the manifest's
            loopback = mapping(mapping(spec).get("loopback"))
            self.add_addresses(lo, loopback.get("addresses"), ("nodes", name, "loopback", "addresses"))
            for br, bspec in mapping(mapping(spec).get("bridges")).items():
                path = ("nodes", name, "bridges", br)
                draft = self.add_iface(name, br, "bridge", path)
                if draft:
                    self.apply_settings(draft, mapping(bspec), path)
        for i, link in enumerate(sequence(self.data.get("links"))):
            self.add_link(i, mapping(link), nodes)
        for name, spec in nodes.items():
            for br, bspec in mapping(mapping(spec).get("bridges")).items():
                self.add_ports(name, br, sequence(mapping(bspec).get("ports")))
        built = []
        for name, spec in nodes.items():
            routes = self.build_routes(name, sequence(mapping(spec).get("routes")))
            sysctls = self.build_sysctls(name, mapping(mapping(spec).get("sysctls")))
            tables = self.build_tables(name, sequence(mapping(spec).get("policies")))
            neighbours = self.build_neighbours(name, sequence(mapping(spec).get("neighbours")))
            self.check_ipv6_enabled(name, dict(sysctls))
            ifaces = tuple(d.freeze() for d in self.ifaces[name].values())
            self.check_ipv6_mtu(name)
            built.append(Node(name, ifaces, routes, sysctls, tables, neighbours))
        name = self.data.get("name") if isinstance(self.data.get("name"), str) else "?"
        vips = build_vips(self, mapping(self.data.get("vips")), tuple(built))
        return Topology(name=name, source=self.doc.file, nodes=tuple(built), vips=vips)

    def add_iface(self, node, ifname, kind, path, reserved_ok=False) -> _Draft | None:
        if not isinstance(ifname, str):
            return None
        if ifname == "lo" and not reserved_ok:
            self.fail(path, f"'lo' is the loopback interface; configure it under nodes.{node}.loopback")
            return None
        if not ifname:
            return None  # the schema already said it is empty
        if self.check(path, checks.interface_name, ifname) is None:
            return None
        known = self.ifaces.setdefault(node, {})
        if ifname in known:
            self.fail(path, f"duplicate interface {quote(ifname)} in node '{node}' "
                            f"(also at {self.where(known[ifname].path)})")
            return None
        known[ifname] = draft = _Draft(node, ifname, kind, path)
        return draft

    def apply_settings(self, draft: _Draft, spec: dict, path) -> None:
        self.add_addresses(draft, spec.get("addresses"), path + ("addresses",))
        if _is_int(spec.get("mtu")):
            draft.mtu = spec["mtu"]
        if spec.get("state") in ("up", "down"):
            draft.state = spec["state"]
        if isinstance(spec.get("mac"), str) and checks.MAC.fullmatch(spec["mac"]):
            draft.mac = self.check(path + ("mac",), checks.mac_address, spec["mac"])

    def add_addresses(self, draft: _Draft, addresses, path) -> None:
        for k, text in enumerate(sequence(addresses)):
            if not isinstance(text, str):
                continue  # the schema already said what it should be
            canonical = self.check(path + (k,), checks.interface_address, text)
            if canonical is None:
                continue
            ip = ipaddress.ip_interface(canonical).ip
            if ip in self.addresses:
                self.fail(path + (k,), f"duplicate address {ip} (also at {self.where(self.addresses[ip])})")
                continue
            self.addresses[ip] = path + (k,)
            draft.addresses.append(canonical)

    def add_link(self, i: int, link: dict, nodes: dict) -> None:
        ends = []
        for j, ep in enumerate(sequence(link.get("endpoints"))):
            ep = mapping(ep)
            path = ("links", i, "endpoints", j)
            node = ep.get("node")
            if isinstance(node, str) and node not in nodes:
                close = difflib.get_close_matches(node, list(nodes), n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                known = listing(sorted(nodes)) or "none"
                self.fail(path + ("node",), f"unknown node '{node}' ({hint}declared nodes: {known})")
            if node not in nodes:
                # Still check the endpoint's other fields, so every problem shows at once.
                if isinstance(ep.get("interface"), str) and ep["interface"]:
                    self.check(path + ("interface",), checks.interface_name, ep["interface"])
                self.apply_settings(_Draft("?", "?", "veth", path), ep, path)
                continue
            draft = self.add_iface(node, ep.get("interface"), "veth", path + ("interface",))
            if draft is None:
                self.apply_settings(_Draft(node, "?", "veth", path), ep, path)
                continue
            if _is_int(link.get("mtu")):
                draft.mtu = link["mtu"]
            self.apply_settings(draft, ep, path)
            merged = {**mapping(link.get("impair")), **mapping(ep.get("impair"))}
            if merged:
                where = path + ("impair",) if "impair" in ep else ("links", i, "impair")
                draft.impair = self.impairment(merged, where)
            ends.append(draft)
        if len(ends) == 2:
            a, b = ends
            a.peer, b.peer = (b.node, b.name), (a.node, a.name)

    def impairment(self, spec: dict, path) -> tuple:
        """A permanent impairment, in canonical units; problems for what netem would refuse."""
        from .fault import duration_ms, percent, rate_bits

        out = {}
        if isinstance(spec.get("rate"), str):
            out["rate"] = rate_bits(spec["rate"])
            if out["rate"] < 8000:
                self.fail(path + ("rate",), f"rate {quote(spec['rate'])} is below 8kbit: nothing usable would pass")
            elif out["rate"] > MAX_LINK_RATE:
                self.fail(path + ("rate",), f"rate {quote(spec['rate'])} is above 1000gbit, more than tc can shape")
                del out["rate"]
        for name in ("delay", "jitter"):
            if isinstance(spec.get(name), str):
                us = duration_ms(spec[name]) * 1000
                if not us <= MAX_LINK_DELAY_US:
                    self.fail(path + (name,), f"{name} {quote(spec[name])} is more than an hour: not a link's")
                    continue
                out[f"{name}_us"] = int(round(us))
        if "loss" in spec and isinstance(spec["loss"], (str, int, float)):
            out["loss"] = percent(spec["loss"])
        if isinstance(spec.get("distribution"), str):
            out["distribution"] = spec["distribution"]
        if "jitter_us" in out and "delay_us" not in out:
            self.fail(path + ("jitter",), "a jitter needs a delay to spread around")
        if "distribution" in out and "jitter_us" not in out:
            self.fail(path + ("distribution",), "a distribution needs a jitter to shape")
        return tuple(sorted(out.items()))

    def add_ports(self, node: str, bridge: str, ports: list) -> None:
        for k, port in enumerate(ports):
            path = ("nodes", node, "bridges", bridge, "ports", k)
            if not isinstance(port, str):
                continue
            draft = self.ifaces.get(node, {}).get(port)
            if draft is None:
                self.fail(path, f"bridge port {quote(port)} is not an interface of node '{node}'")
            elif draft.kind != "veth":
                self.fail(path, f"{quote(port)} is a {draft.kind}; only veth endpoints can be bridge ports")
            elif draft.master is not None:
                self.fail(path, f"{quote(port)} is already a port of bridge '{draft.master}'")
            else:
                draft.master = bridge

    def build_routes(self, node: str, routes: list) -> tuple:
        connected = {name: [ipaddress.ip_interface(a).network for a in d.addresses]
                     for name, d in self.ifaces.get(node, {}).items()}
        built, seen = [], {}
        for k, spec in enumerate(routes):
            spec = mapping(spec)
            path = ("nodes", node, "routes", k)
            if not isinstance(spec.get("to"), str) or not isinstance(spec.get("via", ""), str):
                continue  # the schema already said what they should be
            via = self.check(path + ("via",), checks.gateway, spec["via"]) if "via" in spec else None
            if "via" in spec and via is None:
                continue
            dev = spec.get("dev") if isinstance(spec.get("dev"), str) else None
            dst = self.check(path + ("to",), checks.route_destination, spec["to"],
                             via.version if via else None)
            if dst is None:
                # A bad destination says nothing of the gateway: every problem at once
                # (found by review: the gateway's was said only once `to` was fixed).
                if dev is not None and dev not in connected:
                    self.fail(path + ("dev",), f"{quote(dev)} is not an interface of node '{node}'")
                elif via is not None and (why := self.bad_gateway(node, via, dev, connected)):
                    self.fail(path + ("via",), why)
                continue
            prefix, family = dst
            if via is not None and via.version != family:
                self.fail(path + ("via",), f"gateway {via} is IPv{via.version} but destination {prefix} is IPv{family}")
                continue
            if dev is not None and dev not in connected:
                self.fail(path + ("dev",), f"{quote(dev)} is not an interface of node '{node}'")
                continue
            down = {name for name, d in self.ifaces.get(node, {}).items() if d.state == "down"}
            if dev in down:
                self.fail(path + ("dev",), f"interface {quote(dev)} is declared down: the kernel installs no route "
                                           "through a device that is down")
                continue
            if via is not None and (why := self.bad_gateway(node, via, dev, connected)):
                self.fail(path + ("via",), why)
                continue
            metric = spec.get("metric") if _is_int(spec.get("metric")) else None
            # Duplicates as the kernel sees them: no metric is metric 0 (IPv4) or 1024 (IPv6).
            ident = (prefix, metric if metric is not None else DEFAULT_METRIC[family])
            if ident in seen:
                self.fail(path + ("to",), f"duplicate route to {prefix} (also at {self.where(seen[ident])})")
                continue
            if why := checks.connected_clash(prefix, ident[1], connected):
                self.fail(path + ("to",), why)
                continue
            seen[ident] = path
            built.append(Route(prefix, family, str(via) if via else None, dev, metric))
        return tuple(built)

    def bad_gateway(self, node: str, via, dev, connected) -> str | None:
        """Why the kernel would refuse `via` as a gateway of `node`, or None."""
        if via.version == 6 and via.is_link_local:
            # A link-local gateway is reachable on the link it is named with.
            return None if dev else f"gateway {via} is link-local: name its interface with `dev`"
        own = {ipaddress.ip_interface(a).ip for d in self.ifaces.get(node, {}).values() for a in d.addresses}
        if via in own:
            return f"gateway {via} is an address of node '{node}' itself"
        nets = [net for name, nets in connected.items() if dev in (None, name) for net in nets
                if net.version == via.version]
        inside = [net for net in nets if via in net]
        down = {name for name, d in self.ifaces.get(node, {}).items() if d.state == "down"}
        through = {name for name, ns in connected.items() if dev in (None, name) for n in ns if via in n}
        if inside and through <= down:
            return (f"gateway {via} is reachable only through {', '.join(sorted(through))}, declared down: "
                    "the kernel installs no route through a device that is down")
        if not inside:
            scope = f"interface {quote(dev)}" if dev else f"node '{node}'"
            shown = ", ".join(sorted({str(n) for n in nets})) or "it has no addresses of that family"
            return f"gateway {via} is not in any connected prefix of {scope} ({shown})"
        if via.version == 4 and all(n.prefixlen < 31 and via == n.broadcast_address for n in inside):
            return f"gateway {via} is the broadcast address of {inside[0]}"
        return None

    def check_ipv6_mtu(self, node: str) -> None:
        """IPv6 needs an MTU of at least 1280; the kernel refuses IPv6 addresses below it."""
        for draft in self.ifaces.get(node, {}).values():
            if draft.mtu is not None and draft.mtu < 1280 and any(":" in a for a in draft.addresses):
                self.fail(draft.path, f"interface '{draft.name}' has IPv6 addresses but an MTU of {draft.mtu}; "
                                      "IPv6 needs at least 1280")

    def build_tables(self, node: str, paths: list) -> tuple:
        """The firewall tables of `node`, from its policy files (relative to the manifest)."""
        tables, seen, listed = [], {}, {}
        for k, relative in enumerate(paths):
            if not isinstance(relative, str) or not relative:
                continue
            path = os.path.normpath(os.path.join(os.path.dirname(self.doc.file), relative))
            if path in listed:
                self.fail(("nodes", node, "policies", k), f"{quote(relative)} is listed twice (also policies[{listed[path]}])")
                continue
            listed[path] = k
            if path not in self.policies and (why := outside_problem(path, relative, self.doc.file, self.read)):
                self.fail(("nodes", node, "policies", k), why)
                self.policies[path] = ()
            if path not in self.policies:
                text, problem = read_text(path, self.read, "policy file")
                if problem:
                    self.fail(("nodes", node, "policies", k), problem.message)
                    self.policies[path] = ()
                    continue
                self.policy_hashes[path] = hashlib.sha256(text.encode()).hexdigest()
                self.policies[path], problems = self.load_policy(text, path)
                self.problems.extend(problems)
            for table in self.policies[path]:
                ident = (table.family, table.name)
                if ident in seen:
                    self.fail(("nodes", node, "policies", k),
                              f"table {table.family} {table.name} of {path} is also in {seen[ident]}")
                    continue
                seen[ident] = path
                tables.append(table)
        return tuple(tables)

    def build_neighbours(self, node: str, entries: list) -> tuple:
        """Static neighbour entries: a unicast address and MAC on a veth or bridge
        of this node, each (interface, address) once."""
        out, seen = [], {}
        for k, entry in enumerate(entries):
            path = ("nodes", node, "neighbours", k)
            entry = mapping(entry)
            address, mac, ifname = entry.get("address"), entry.get("mac"), entry.get("interface")
            if not all(isinstance(v, str) for v in (address, mac, ifname)) or not checks.MAC.fullmatch(mac):
                continue  # the schema already said what is wrong
            ip = self.check(path + ("address",), checks.neighbour_address, address)
            mac = self.check(path + ("mac",), checks.neighbour_mac, mac)
            draft = self.ifaces.get(node, {}).get(ifname)
            if draft is None or draft.kind == "loopback":
                known = listing(sorted(i for i, d in self.ifaces.get(node, {}).items() if d.kind != "loopback"))
                self.fail(path + ("interface",), f"{quote(ifname)} is not a veth or bridge of node '{node}' "
                                                 f"(its interfaces: {known or 'none'})")
                continue
            if ip is None or mac is None:
                continue
            if (ifname, ip) in seen:
                self.fail(path + ("address",), f"duplicate neighbour {ip} on {ifname} (also at {self.where(seen[ifname, ip])})")
                continue
            seen[ifname, ip] = path
            out.append(Neighbour(ip, mac, ifname))
        return tuple(sorted(out, key=lambda n: (n.interface, n.address)))

    def check_ipv6_enabled(self, node: str, sysctls: dict) -> None:
        """IPv6 addresses on a device whose IPv6 is disabled: the kernel refuses them."""
        for draft in self.ifaces.get(node, {}).values():
            if not any(":" in a for a in draft.addresses):
                continue
            own = f"net.ipv6.conf.{draft.name.replace('.', '/')}.disable_ipv6"
            for name in ("net.ipv6.conf.all.disable_ipv6", "net.ipv6.conf.default.disable_ipv6", own):
                # `all` is written first, `default` before the device is made (which takes
                # it; lo is made with the namespace, before), and the interface's own
                # value after both (kinds/sysctl.py).
                if draft.name == "lo" and ".default." in name:
                    continue
                if sysctls.get(name) == "1" and not (name != own and sysctls.get(own) == "0"):
                    self.fail(("nodes", node, "sysctls", name),
                              f"{name} = 1, yet {draft.name} has IPv6 addresses: the kernel refuses them")

    def build_sysctls(self, node: str, sysctls: dict) -> tuple:
        out = {}
        for name, value in sysctls.items():
            path = ("nodes", node, "sysctls", name)
            if self.check(path, checks.sysctl_name, name) is None:
                continue
            if self.check(path, checks.sysctl_exists, name, node, set(self.ifaces.get(node, {}))) is None:
                continue
            # YAML 1.1 reads 010 as 8 and 1:30 as 90; the kernel should get what was written.
            written = self.doc.written.get(path)
            if written is not None and not isinstance(value, bool):
                value = written
            canonical = self.check(path, checks.sysctl_value, value)
            if canonical is not None:
                out[name] = canonical
        one, other = ALIASES
        if one in out and other in out and out[one] != out[other]:
            self.fail(("nodes", node, "sysctls", other),
                      f"{other} = {out[other]}, yet {one} = {out[one]}: they are one setting (the kernel keeps "
                      "whichever is written last); declare one of them")
        return tuple(sorted(out.items()))


# Two names of one kernel setting.
ALIASES = ("net.ipv4.ip_forward", "net.ipv4.conf.all.forwarding")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
