"""Kind "rule" in the kernel: policy routing rules, key (ns, family, priority, selector).

netkeel declares none: the kernel's own (local, main, default) are not read,
and any other rule in a managed namespace was made by hand. It changes where
traffic goes, so it is reported (drift exits 2) and never changed: netkeel
could not put a rule back exactly on a rollback.
"""

from __future__ import annotations

import socket

from ..core.owners import FOREIGN
from ..core.resource import Resource

KIND = "rule"
RTPROT_KERNEL = 2
_ACTIONS = {1: "lookup", 2: "goto", 3: "nop", 6: "blackhole", 7: "unreachable", 8: "prohibit"}


def to_resources(ns: str, rules) -> list:
    out = []
    for r in rules:
        if r.proto == RTPROT_KERNEL:
            continue
        family = "inet" if r.family == socket.AF_INET else "inet6"
        action = _ACTIONS.get(r.action, str(r.action))
        target = f"lookup {r.table}" if action == "lookup" else action
        out.append(Resource.make(KIND, (ns, family, r.priority, r.selector), owner=FOREIGN,
                                 reason=f"a policy routing rule ({r.selector} {target})"))
    return out
