"""Kind "fdb" in the kernel: bridge forwarding entries added by hand, key (ns,
port, mac, vlan). netkeel declares none; a static or permanent entry in a
bridge's table that is not a device's own address is reported as foreign."""

from __future__ import annotations

from ..core.owners import FOREIGN
from ..core.resource import Resource
from .rtnl import Fdb

KIND = "fdb"
NUD_NOARP, NUD_PERMANENT = 0x40, 0x80  # `static` and `permanent` (local) to `bridge fdb`


def to_resources(ns: str, entries, links) -> list:
    """The entries of a bridge's table that a hand put there: static ones, and
    permanent ones whose address is no device's of the namespace (the kernel
    makes one for each port's own address). Learned ones come and go with
    traffic, and a device's own table (`self`) is the device's."""
    by_index = {link.index: link.ifname for link in links}
    own = {link.mac for link in links if getattr(link, "mac", None)}
    out = []
    for e in entries:
        # (in a bridge's table: NDA_MASTER names it; a device's own table, `self`, has none)
        if not isinstance(e, Fdb) or e.master is None or not e.state & (NUD_NOARP | NUD_PERMANENT):
            continue
        if e.state & NUD_PERMANENT and e.mac in own:
            continue
        port = by_index.get(e.index, f"#{e.index}")
        bridge = by_index.get(e.master, f"#{e.master}")
        state = "permanent" if e.state & NUD_PERMANENT else "static"
        vlan = f" vlan {e.vlan}" if e.vlan else ""
        out.append(Resource.make(
            KIND, (ns, port, e.mac, e.vlan), owner=FOREIGN, bridge=bridge, state=state,
            reason=f"a {state} forwarding entry in bridge {bridge}'s table, added by hand: netkeel makes none "
                   f"(bridge fdb del {e.mac} dev {port}{vlan} master)"))
    return out
