"""An in-memory kernel implementing the backend protocol (toolkit/core/backend.py),
for unit tests of the runtime without root.

It keeps live resources the way the kernel reader reports them and mimics the
side effects the planner relies on: a namespace takes everything in it along,
and the far end of each veth into it; a device takes its addresses, routes and
neighbour entries, and releases its bridge ports; a veth end takes its peer; a
subnet's primary IPv4 address takes its secondaries; a device's last IPv4
address takes its IPv4 routes; a device set down loses its IPv6 addresses and
routes. nftables transactions are kept as the listing they would produce.

Test hooks: `fail(predicate)` makes a request refuse (KernelError) when
predicate(method, args) is true; `settle_after(n)` makes deletions of devices
show only after n further reads (the kernel's asynchronous teardown); `calls`
records every request; `intruder(name)` makes a namespace as another party would.
"""

from __future__ import annotations

import ipaddress
import itertools
import json

from toolkit.core.owners import FOREIGN, TABLE_PREFIX
from toolkit.core.resource import Resource
from toolkit.errors import KernelError
from toolkit.kinds.link import PORT_DEFAULTS
from toolkit.kinds.nft_canon import live_table_specs
from toolkit.kinds.sysctl import interface_of

_cookies = itertools.count(1000)
_macs = itertools.count(1)


class FakeKernel:
    def __init__(self):
        self.cookies: dict = {}          # namespace -> cookie
        self.objects: dict = {}          # ident -> Resource
        self.sysctls: dict = {}          # (ns, name) -> value
        self.nft: dict = {}              # ns -> [listing items]
        self.calls: list = []
        self._failures: list = []
        self._pending: list = []         # [reads left, idents to remove]
        self._settle = 0
        self.reads = 0
        self.announce = None

    # -- test hooks ---------------------------------------------------------------------
    def fail(self, predicate) -> None:
        self._failures.append(predicate)

    def settle_after(self, reads: int) -> None:
        self._settle = reads

    def intruder(self, name: str, cookie: int | None = None) -> None:
        """A namespace made by someone else (as `ip netns add` would)."""
        self.cookies[name] = cookie or next(_cookies)
        self._add(Resource.make("netns", (name,)))
        self._add(self._lo(name))

    def _request(self, method: str, *args) -> None:
        self.calls.append((method,) + args)
        for predicate in self._failures:
            if predicate(method, args):
                raise KernelError(f"{method} {' '.join(map(str, args))}", "refused by the fake kernel", 1)

    # -- namespaces ------------------------------------------------------------------------
    def exists(self, name):
        return name in self.cookies

    def list_namespaces(self):
        return sorted(self.cookies)

    def tidy(self, name):
        self.calls.append(("tidy", name))

    def cookie(self, name):
        return self.cookies.get(name)

    def create_namespace(self, name):
        self._request("create_namespace", name)
        if name in self.cookies:
            raise KernelError(f"netns add in {name}", "File exists", 17)
        cookie = next(_cookies)
        if self.announce is not None:
            self.announce(name, cookie)
        self.intruder(name, cookie)

    def remove_namespace(self, name):
        self._request("remove_namespace", name)
        self._need_ns(name)
        for ident, r in list(self.objects.items()):
            if r.ns == name:
                if r.kind == "link" and r.get("peer"):
                    self._remove_link(*self._split(r.get("peer")))
                self.objects.pop(ident, None)
        del self.cookies[name]
        self.nft.pop(name, None)
        for key in [k for k in self.sysctls if k[0] == name]:
            del self.sysctls[key]

    # -- reading -----------------------------------------------------------------------------
    def read(self, names, hints):
        self.reads += 1
        for entry in list(self._pending):
            entry[0] -= 1
            if entry[0] <= 0:
                for ident in entry[1]:
                    self.objects.pop(ident, None)
                self._pending.remove(entry)
        names = set(names)
        out = [r for r in self.objects.values() if r.ns in names and r.ns in self.cookies]
        out = [self._owned(r, names) for r in out]
        for ns, wanted in hints.get("sysctls", {}).items():
            if ns in names and ns in self.cookies:
                # A device's own sysctls are there while it is (/proc/sys/net/ipv4/conf/DEV).
                out += [Resource.make("sysctl", (ns, n), value=self.sysctls.get((ns, n), "0")) for n in wanted
                        if interface_of(n) is None or ("link", (ns, interface_of(n))) in self.objects]
        for ns in names & set(self.nft):
            owned, foreign = live_table_specs(self.nft[ns], TABLE_PREFIX)
            out += [Resource.make("nft_table", (ns, f, n), owner=FOREIGN) for f, n in foreign]
            out += [Resource.make("nft_table", (ns, f, n), **fields) for (f, n), fields in owned.items()]
        return out

    def _owned(self, r, scope):
        if r.kind == "link" and r.get("kind") == "veth" and self._split(r.get("peer"))[0] not in scope:
            return Resource.make("link", r.key, owner=FOREIGN, reason="a veth into a namespace not in scope",
                                 peer=r.get("peer"))
        return r

    # -- links ---------------------------------------------------------------------------------
    def link_add_veth(self, ns, ifname, peer_ns, peer_ifname):
        self._request("link_add_veth", ns, ifname, peer_ns, peer_ifname)
        self._need_ns(ns)
        self._need_ns(peer_ns)
        for n, i in ((ns, ifname), (peer_ns, peer_ifname)):
            if ("link", (n, i)) in self.objects:
                raise KernelError(f"link add {i} in {n}", "File exists", 17)
        self._add(self._device(ns, ifname, "veth", f"{peer_ns}/{peer_ifname}"))
        self._add(self._device(peer_ns, peer_ifname, "veth", f"{ns}/{ifname}"))

    def link_add_bridge(self, ns, ifname):
        self._request("link_add_bridge", ns, ifname)
        self._need_ns(ns)
        if ("link", (ns, ifname)) in self.objects:
            raise KernelError(f"link add {ifname} in {ns}", "File exists", 17)
        self._add(self._device(ns, ifname, "bridge", None).with_fields(stp="off"))

    def link_delete(self, ns, ifname, peer):
        self._request("link_delete", ns, ifname, peer)
        link = self._need_link(ns, ifname)
        gone = self._remove_link(ns, ifname, now=not self._settle)
        if link.get("peer"):
            gone += self._remove_link(*self._split(link.get("peer")), now=not self._settle)
        if gone:
            self._pending.append([self._settle, gone])

    def link_set(self, ns, ifname, mark=False, **settings):
        self._request("link_set", ns, ifname, mark, tuple(sorted(settings.items())))
        link = self._need_link(ns, ifname)
        if settings.get("master"):
            self._need_link(ns, settings["master"])
        if "master" in settings and not link.get("master"):  # enslaved: a port, as the kernel makes one
            settings = {**PORT_DEFAULTS, **settings} if settings["master"] else settings
        elif settings.get("master") == "":  # released: no longer a port
            settings = {**settings, **{option: None for option in PORT_DEFAULTS}}
        self._add(link.with_fields(**settings))
        if settings.get("state") == "down" and link.get("state") == "up":
            for ident, r in list(self.objects.items()):
                if r.ns == ns and ((r.kind == "addr" and r.key[1] == ifname and ":" in r.key[2])
                                   or (r.kind == "route" and r.get("dev") == ifname)):
                    del self.objects[ident]

    def link_move(self, ns, ifname, to_ns):
        self._request("link_move", ns, ifname, to_ns)
        link = self._need_link(ns, ifname)
        self._need_ns(to_ns)
        self._remove_link(ns, ifname)
        self._add(Resource.make("link", (to_ns, ifname), **link.fields()))
        if link.get("peer"):
            peer = self._need_link(*self._split(link.get("peer")))
            self._add(peer.with_fields(peer=f"{to_ns}/{ifname}"))

    # -- addresses, routes, neighbours, sysctls ------------------------------------------------------
    def addr_add(self, ns, ifname, address, replace=False):
        self._request("addr_add", ns, ifname, address)
        self._need_link(ns, ifname)
        if replace and ("addr", (ns, ifname, address)) in self.objects:
            self._add(self.objects[("addr", (ns, ifname, address))].with_fields(expires=None))
            return
        if ("addr", (ns, ifname, address)) in self.objects:
            raise KernelError(f"addr add {address} dev {ifname} in {ns}", "File exists", 17)
        net = ipaddress.ip_interface(address).network
        secondary = net.version == 4 and any(
            r.kind == "addr" and r.key[:2] == (ns, ifname) and ":" not in r.key[2]
            and ipaddress.ip_interface(r.key[2]).network == net for r in self.objects.values())
        self._add(Resource.make("addr", (ns, ifname, address), secondary=True if secondary else None))

    def addr_delete(self, ns, ifname, address, peer=None):
        self._request("addr_delete", ns, ifname, address)
        ident = ("addr", (ns, ifname, address))
        if ident not in self.objects:
            raise KernelError(f"addr del {address} dev {ifname} in {ns}", "Cannot assign requested address", 99)
        removed = self.objects.pop(ident)
        if ":" in address:
            return
        net = ipaddress.ip_interface(address).network
        if not removed.get("secondary"):  # a primary takes its subnet's secondaries along
            for i, r in list(self.objects.items()):
                if r.kind == "addr" and r.key[:2] == (ns, ifname) and r.get("secondary") \
                        and ipaddress.ip_interface(r.key[2]).network == net:
                    del self.objects[i]
        if not any(r.kind == "addr" and r.key[:2] == (ns, ifname) and ":" not in r.key[2]
                   for r in self.objects.values()):  # the last IPv4 address takes the IPv4 routes
            for i, r in list(self.objects.items()):
                if r.kind == "route" and r.ns == ns and r.get("dev") == ifname and ":" not in r.key[1]:
                    del self.objects[i]

    def route_set(self, ns, prefix, metric, replace=False, via=None, dev=None, type=None, src=None, metrics=None,
                  proto=None, scope=None):
        self._request("route_set", ns, prefix, metric, replace, via, dev, type)
        self._need_ns(ns)
        if dev:
            self._need_link(ns, dev)
        ident = ("route", (ns, prefix, metric))
        if ident in self.objects and not replace:
            raise KernelError(f"route {prefix} add in {ns}", "File exists", 17)
        self._add(Resource.make("route", (ns, prefix, metric), via=via or "", dev=dev, type=type, src=src,
                                metrics=metrics))

    def route_delete(self, ns, prefix, metric, via=None, dev=None, type=None, scope=None, proto=None):
        self._request("route_delete", ns, prefix, metric)
        if self.objects.pop(("route", (ns, prefix, metric)), None) is None:
            raise KernelError(f"route {prefix} del in {ns}", "No such process", 3)

    def neigh_set(self, ns, ifname, address, mac):
        self._request("neigh_set", ns, ifname, address, mac)
        self._need_link(ns, ifname)
        self._add(Resource.make("neigh", (ns, ifname, address), mac=mac))

    def neigh_delete(self, ns, ifname, address):
        self._request("neigh_delete", ns, ifname, address)
        if self.objects.pop(("neigh", (ns, ifname, address)), None) is None:
            raise KernelError(f"neigh del {address} in {ns}", "No such file or directory", 2)

    def impair_set(self, ns, ifname, spec):
        self._request("impair_set", ns, ifname, tuple(sorted(spec.items())))
        self._need_link(ns, ifname)
        self._add(Resource.make("impair", (ns, ifname), **{k: v for k, v in spec.items() if not k.startswith("_")}))

    def impair_clear(self, ns, ifname):
        self._request("impair_clear", ns, ifname)
        self.objects.pop(("impair", (ns, ifname)), None)

    def speaker_start(self, ns, group, spec):
        self._request("speaker_start", ns, group)
        self._need_link(ns, spec["interface"])
        self._add(Resource.make("vrrp", (ns, group), **spec, running=True))

    def speaker_stop(self, ns, group):
        self._request("speaker_stop", ns, group)
        self.objects.pop(("vrrp", (ns, group)), None)  # idempotent, as the real one

    def speakers_in(self, ns):
        return {r.key[1]: {"config": r.fields(), "status": {"state": "active", "pid": 1}}
                for r in self.objects.values() if r.kind == "vrrp" and r.ns == ns}

    def sysctl_write(self, ns, name, value):
        self._request("sysctl_write", ns, name, value)
        self._need_ns(ns)
        self.sysctls[(ns, name)] = value

    # -- nftables ---------------------------------------------------------------------------------------
    def nft_rule_handles(self, ns, family, table):
        return None  # the fake's rules have no handles: tables are replaced whole

    def nft_transaction(self, ns, commands, what, script=None, tables=None, echo=False, json_tables=None,
                        rule_changes=None):
        self._request("nft_transaction", ns, what)
        self._need_ns(ns)
        if callable(commands):
            commands = commands()
        items = list(self.nft.get(ns, []))
        for command in json.loads(commands)["nftables"]:
            (verb, body), = command.items()
            (thing, spec), = body.items()
            table = (spec.get("family"), spec.get("table", spec.get("name") if thing == "table" else None))
            if verb == "delete" and thing == "table":
                items = [i for i in items if _table_of(i) != table]
            elif verb == "add" and not (thing == "table" and any(_table_of(i) == table and "table" in i
                                                                  for i in items)):
                items.append({thing: dict(spec)})
        self.nft[ns] = items

    def nft_rule_texts(self, ns, family, table):
        return {}

    # -- the state, as a test sees it ---------------------------------------------------------------------
    def state(self) -> set:
        """Everything, as comparable resources (sysctls and nft tables included)."""
        out = set(self.objects.values())
        out |= {Resource.make("sysctl", k, value=v) for k, v in self.sysctls.items()}
        for ns, items in self.nft.items():
            owned, foreign = live_table_specs(items, TABLE_PREFIX)
            out |= {Resource.make("nft_table", (ns, f, n), **{k: v for k, v in fields.items() if k[0] != "_"})
                    for (f, n), fields in owned.items()}
        return out

    # -- helpers ------------------------------------------------------------------------------------------
    def _add(self, r):
        self.objects[r.ident] = r

    @staticmethod
    def _split(peer: str) -> tuple:
        ns, _, ifname = peer.partition("/")
        return ns, ifname

    def _lo(self, ns):
        return Resource.make("link", (ns, "lo"), kind="loopback", state="down", mtu=65536,
                             mac="00:00:00:00:00:00", master="")

    def _device(self, ns, ifname, kind, peer):
        n = next(_macs)
        return Resource.make("link", (ns, ifname), kind=kind, peer=peer, mtu=1500, state="down", arp="on",
                             mac=f"02:00:00:00:{n // 256:02x}:{n % 256:02x}", master="")

    def _need_ns(self, ns):
        if ns not in self.cookies:
            raise KernelError(f"open namespace {ns}", "No such file or directory", 2)

    def _need_link(self, ns, ifname):
        self._need_ns(ns)
        link = self.objects.get(("link", (ns, ifname)))
        if link is None:
            raise KernelError(f"link {ifname} in {ns}", "No such device", 19)
        return link

    def _remove_link(self, ns, ifname, now=True) -> list:
        """Remove a device and what goes with it; returns the idents (removed now,
        or to remove later when `now` is false)."""
        idents = [("link", (ns, ifname))]
        for ident, r in self.objects.items():
            if r.ns != ns:
                continue
            if (r.kind in ("addr", "neigh") and r.key[1] == ifname) or (r.kind == "impair" and r.key[1] == ifname) or (r.kind == "route" and r.get("dev") == ifname):
                idents.append(ident)
        for ident, r in list(self.objects.items()):
            if r.kind == "link" and r.ns == ns and r.get("master") == ifname:
                self.objects[ident] = r.with_fields(master="")
        for key in [k for k in self.sysctls if k[0] == ns and f".{ifname}." in k[1]]:
            del self.sysctls[key]
        if now:
            for ident in idents:
                self.objects.pop(ident, None)
            return []
        return idents


def _table_of(item: dict) -> tuple:
    (thing, spec), = item.items()
    return (spec.get("family"), spec.get("name") if thing == "table" else spec.get("table"))
