"""The protocol a backend implements: what kinds ask of the kernel.

The runtime (toolkit/runtime) is handed a backend and never imports one:
toolkit/kernel is the real one (netlink, /proc/sys, libnftables), and the unit
tests have an in-memory fake with the same methods. Each method either does
what it says or raises KernelError (toolkit.errors) naming the request and
the kernel's answer.
"""

from __future__ import annotations

from typing import Protocol


class Backend(Protocol):
    # -- namespaces ----------------------------------------------------------------
    def exists(self, name: str) -> bool: ...
    def list_namespaces(self) -> list: ...
    def cookie(self, name: str) -> int | None:
        """The namespace's identity (SO_NETNS_COOKIE: new for every namespace,
        never reused while the system runs); None if it does not exist."""
    announce: object  # None, or called (name, cookie) as a namespace is created, before it is visible
    def create_namespace(self, name: str) -> None:
        """Create it; call `announce` with its cookie before it can be seen by name."""
    def remove_namespace(self, name: str) -> None: ...
    def tidy(self, name: str) -> None:
        """Remove what a namespace create cut short left under the name (nothing mounted there)."""

    # -- reading ---------------------------------------------------------------------
    def read(self, names, hints: dict) -> list:
        """Live resources of the namespaces `names` that exist, each with its owner
        (core/owners.py). `hints` (kinds.read_hints) names the sysctls to read and
        where each veth's peer is expected."""

    # -- links -----------------------------------------------------------------------
    def link_add_veth(self, ns: str, ifname: str, peer_ns: str, peer_ifname: str) -> None: ...
    def link_add_bridge(self, ns: str, ifname: str) -> None: ...
    def link_delete(self, ns: str, ifname: str, peer: str | None) -> None: ...
    def link_set(self, ns: str, ifname: str, mark: bool = False, **settings) -> None:
        """settings: mtu, mac, master ("" to release), state ("up"/"down");
        `mark` writes netkeel's ownership mark (the ifalias)."""
    def link_move(self, ns: str, ifname: str, to_ns: str) -> None:
        """Move a device into another namespace (by name)."""

    # -- addresses, routes, neighbours, sysctls --------------------------------------------
    def addr_add(self, ns: str, ifname: str, address: str, replace: bool = False) -> None:
        """Add a permanent address; with `replace`, make an existing one permanent again."""
    def addr_delete(self, ns: str, ifname: str, address: str, peer: str | None = None) -> None: ...
    def route_set(self, ns: str, prefix: str, metric: int, replace: bool = False,
                  via: str | None = None, dev: str | None = None, type: str | None = None,
                  src: str | None = None, metrics: str | None = None, proto: int | None = None,
                  scope: int | None = None) -> None: ...
    def route_delete(self, ns: str, prefix: str, metric: int, via=None, dev=None, type=None, scope=None,
                     proto=None) -> None: ...
    def neigh_set(self, ns: str, ifname: str, address: str, mac: str) -> None: ...
    def neigh_delete(self, ns: str, ifname: str, address: str) -> None: ...
    def sysctl_write(self, ns: str, name: str, value: str) -> None: ...
    def impair_set(self, ns: str, ifname: str, spec: dict) -> None:
        """Make the device's root qdisc the declared impairment (kinds/impair.py spec)."""
    def impair_clear(self, ns: str, ifname: str) -> None: ...

    # -- VRRP speakers (processes in a namespace) -----------------------------------------
    def speaker_start(self, ns: str, group: str, spec: dict) -> None:
        """Start the VIP group's speaker in `ns` with this configuration (kinds/vrrp.py
        spec); return once it runs."""
    def speaker_stop(self, ns: str, group: str) -> None:
        """Stop it gracefully (it hands over at once); idempotent."""
    def speakers_in(self, ns: str) -> dict:
        """group -> {"config": its configuration, "status": what it says (None when it
        does not run)}, for every speaker with files in `ns`."""

    # -- what the doctor reads (toolkit/doctor) ----------------------------------------------
    def route_get(self, ns: str, dst: str, src: str | None = None, iif: str | None = None) -> dict | None:
        """The kernel's route lookup for `dst` in `ns` (as `ip route get`): {"dev", "gateway",
        "src", "type"}; None when the kernel has no route (unreachable)."""
    def sysctl_value(self, ns: str, name: str) -> str | None:
        """A sysctl's value in `ns` (net.*), None if it does not exist."""
    def neighbour_entries(self, ns: str) -> list:
        """Every neighbour entry: [{"dev", "address", "mac", "state"}] (state names: reachable, stale, failed, ...)."""
    def address_flags(self, ns: str) -> list:
        """Every address with its flags: [{"dev", "address", "flags"}] (flags: dadfailed, tentative, ...)."""
    def conntrack_entries(self, ns: str) -> list:
        """The connection tracking table: [{"proto", "src", "dst", "sport", "dport", "reply_src",
        "reply_dst", "seen_reply", "assured", "state"}]."""

    # -- nftables ------------------------------------------------------------------------
    def nft_transaction(self, ns: str, commands, what: str, script: str | None = None,
                        tables=None, echo: bool = False, json_tables=None, rule_changes=None):
        """Run one libnftables transaction (all or nothing) in namespace `ns`:
        `script` (nft text) if given, else `commands` (JSON text, or a function
        that makes it: made only if needed). With `echo`, return [(chain, handle,
        rule JSON)] of every rule it added, as the kernel took them, in order.
        `tables` maps each table key the transaction creates, replaces or changes
        to the resource it then holds (None: removed), or is a function of the
        echoed rules giving that (which may raise, to fail the step: what it
        gives stands verified), for a
        backend that remembers what it read; `json_tables` replaces it when
        the script is refused and `commands` go instead. `rule_changes`
        ([(family, table, desired fields, nft_delta.Delta.rule_commands)]):
        the script changes those tables rule by rule alone, and may be sent so
        (the same echo returned)."""
    def nft_rule_handles(self, ns: str, family: str, table: str):
        """[(chain, handle)] of a table's rules in order, if the namespace still holds
        the ruleset this backend last read there; else None."""
    def nft_rule_texts(self, ns: str, family: str, table: str) -> dict:
        """rule handle -> the rule as `nft list` prints it, for reports."""

    # -- faults (toolkit/chaos: operations are chaos/plan.py's dicts) ------------------------
    def fault_kernel_identity(self) -> str:
        """Changes when the kernel does: what a capability probe stays valid for."""
    def fault_capabilities(self) -> list:
        """What this kernel can do for faults (netem, tbf, ifb, mirred, nft, dup)."""
    def fault_apply(self, op: dict) -> dict:
        """Make one fault operation; returns it with what to restore (settings before)."""
    def fault_revert(self, op: dict) -> None:
        """Undo one fault operation; what is already gone is fine."""
    def fault_in_place(self, op: dict) -> str:
        """"" if the operation is in effect, else what is missing."""
    def fault_device_up(self, op: dict) -> None:
        """Bring up a device a fault took down, with the routes and IPv6 addresses that went."""
