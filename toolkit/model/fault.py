"""The fault model: one fault file, validated. Frozen, canonical units.

A fault is a set of impairments on one target (an interface of a node, in a
direction, optionally narrowed to a peer prefix, a protocol and a port), or a
partition between two sets of nodes, for a duration. Times are in
milliseconds, rates in bits per second, percentages as floats 0-100.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_DURATION_MS = 60_000
DIRECTIONS = ("egress", "ingress", "both")
DISTRIBUTIONS = ("uniform", "normal", "pareto", "paretonormal")
# What each impairment needs of the kernel, per backend that can do it, in order of preference.
# netem: sch_netem; nft: nftables (numgen, dup, sets with timeouts); tbf: sch_tbf;
# link: plain netlink (link state, MTU); userspace: NFQUEUE (iptables-nft) and a worker
# process holding the verdicts (toolkit/kernel/nfqworker.py), for kernels without netem.
BACKENDS = {
    "loss": ("netem", "nft", "userspace"),
    "duplicate": ("netem", "nft"),
    "delay": ("netem", "userspace"),
    "reorder": ("netem", "userspace"),
    "corrupt": ("netem", "userspace"),
    "rate": ("netem", "tbf"),
    "partition": ("nft",),
    "link_down": ("link",),
    "flap": ("link",),
    "mtu": ("link",),
    # VIP groups' faults (topology vips:): aimed at whichever member is active when injected.
    "speaker_kill": ("process",),
    "speaker_stop": ("process",),
    "vrrp_partition": ("nft",),
    "master_cut": ("link",),
}
# Kinds that change the device itself: one target interface, direction does not apply.
DEVICE_KINDS = ("link_down", "flap", "mtu")
# Kinds aimed at a VIP group (their value: the group's name), no target of their own:
# SIGKILL or SIGTERM of the active member's speaker, VRRP cut between the members
# (a split brain), the active member's switch port down.
VIP_KINDS = ("speaker_kill", "speaker_stop", "vrrp_partition", "master_cut")


@dataclass(frozen=True)
class Target:
    node: str
    interface: str
    direction: str = "egress"
    peer: str | None = None       # a prefix: only traffic to/from it
    protocol: str | None = None   # tcp, udp, icmp, icmpv6
    port: int | None = None       # with tcp/udp: the peer's port (egress: dport; ingress: sport)

    @property
    def narrowed(self) -> bool:
        return any(v is not None for v in (self.peer, self.protocol, self.port))

    def text(self) -> str:
        extra = "".join(f" {k} {v}" for k, v in (("peer", self.peer), ("protocol", self.protocol),
                                                   ("port", self.port)) if v is not None)
        return f"{self.node}/{self.interface} {self.direction}{extra}"


@dataclass(frozen=True)
class Partition:
    a: tuple            # node names
    b: tuple
    direction: str = "both"  # both, a-to-b, b-to-a

    def text(self) -> str:
        arrow = {"both": "<->", "a-to-b": "->", "b-to-a": "<-"}[self.direction]
        return f"{{{', '.join(self.a)}}} {arrow} {{{', '.join(self.b)}}}"


@dataclass(frozen=True)
class Impairment:
    """One kind with its parameters (a sorted tuple of (name, value) pairs)."""

    kind: str
    params: tuple = ()

    def get(self, name: str, default=None):
        return dict(self.params).get(name, default)

    def text(self) -> str:
        p = dict(self.params)
        if self.kind in ("loss", "duplicate", "corrupt", "reorder"):
            text = f"{self.kind} {p['percent']:g}%"
            if "gilbert" in p:
                text += " gemodel " + " ".join(f"{k} {v:g}%" for k, v in p["gilbert"])
            return text
        if self.kind == "delay":
            text = f"delay {p['time_ms']:g}ms"
            if p.get("jitter_ms"):
                text += f" {p['jitter_ms']:g}ms distribution {p.get('distribution', 'normal')}"
            return text
        if self.kind == "rate":
            return f"rate {format_rate(p['bits'])}"
        if self.kind == "flap":
            cycles = f" x{p['cycles']}" if p.get("cycles") else ""
            return f"flap every {p['period_ms']:g}ms, down {p['down_ms']:g}ms{cycles}"
        if self.kind == "mtu":
            return f"mtu {p['mtu']}"
        if self.kind in VIP_KINDS:
            return {"speaker_kill": "SIGKILL of the active speaker", "speaker_stop": "graceful stop of the active "
                    "speaker", "vrrp_partition": "VRRP cut between the members", "master_cut": "the active member's "
                    "switch port down"}[self.kind] + f" of VIP group {p['group']}"
        return self.kind.replace("_", " ")


@dataclass(frozen=True)
class Fault:
    name: str
    source: str                      # the fault file
    duration_ms: int = DEFAULT_DURATION_MS
    description: str = ""
    topology: str | None = None      # the topology it is meant for
    target: Target | None = None
    impairments: tuple = ()          # Impairment, at most one per kind
    partition: Partition | None = None
    backend: str | None = None       # force one backend ("netem", "nft", ...); None: choose
    lines: dict = field(default_factory=dict, compare=False)  # kind -> its line in the file

    def impairment(self, kind: str) -> Impairment | None:
        return next((i for i in self.impairments if i.kind == kind), None)

    @property
    def kinds(self) -> tuple:
        return tuple(i.kind for i in self.impairments) + (("partition",) if self.partition else ())

    def text(self) -> str:
        what = ", ".join(i.text() for i in self.impairments)
        if self.partition:
            what = (what + ", " if what else "") + f"partition {self.partition.text()}"
        where = ""
        if self.target:
            device_only = all(i.kind in DEVICE_KINDS for i in self.impairments)
            where = f" on {self.target.node}/{self.target.interface}" if device_only else f" on {self.target.text()}"
        return f"{what}{where}"


def format_rate(bits: int) -> str:
    for unit, size in (("gbit", 10**9), ("mbit", 10**6), ("kbit", 10**3)):
        if bits >= size and bits % size == 0:
            return f"{bits // size}{unit}"
    return f"{bits}bit"
