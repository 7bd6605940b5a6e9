"""Kind "fdb": a bridge forwarding entry added by hand, key (ns, port, mac,
vlan: 0 for none), spec {bridge, state, reason}.

netkeel declares none, and reads only the ones a hand adds to a bridge's table
(`bridge fdb add MAC dev PORT master static`): they steer the bridge's traffic
as no manifest says (a static entry sends a host's frames to the wrong port).
Such an entry is foreign: reported as unmanaged (drift exits 2), never changed
(it could not be put back by a rollback), and it goes with its device.
"""

from __future__ import annotations

import re

from . import link
from .base import Kind, check_fields, is_integer, is_text, shown

_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")


class Fdb(Kind):
    name = "fdb"
    key_arity = 4
    key_integers = (3,)  # the VLAN
    forward_phases = ()
    delete_phase = None

    def check_key(self, key) -> str:
        if problem := super().check_key(key):
            return problem
        if not _MAC.fullmatch(key[2]):
            return f"key part 3 must be a MAC address, not {shown(key[2])}"
        return "" if is_integer(key[3]) and 0 <= key[3] < 4096 else f"key part 4 (the VLAN) must be 0-4095, not " \
                                                                    f"{shown(key[3])}"

    def check_spec(self, spec) -> str:
        return super().check_spec(spec) or check_fields(spec, bridge=(is_text, "a string"), state=(is_text, "a string"),
                                                        reason=(is_text, "a string"))

    def compile(self, topology, prefix):
        return []

    def parents(self, resource) -> tuple:
        ns, port, _, _ = resource.key
        return ((link.device_ident(ns, port), "with its device"),)

    def label(self, resource) -> str:
        _, port, mac, vlan = resource.key
        return f"forwarding entry {mac} on {port}" + (f" vlan {vlan}" if vlan else "")

    def describe(self, resource) -> str:
        return f"{resource.get('state')} in bridge {resource.get('bridge')}"


KIND = Fdb()
