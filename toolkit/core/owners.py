"""Who a live object belongs to, and the markers netkeel writes to tell.

- TOPOLOGY: what `apply` made (it carries the markers below), and anything
  else inside a namespace the topology instance owns: a hand-made address or
  route there is the topology's drift, and apply repairs it.
- an overlay (`overlay:NAME`): an object a fault lease or a VIP group put into
  an owned namespace. Reported under its owner, never removed by an apply of
  the topology. Recognised by its own marker values (see `Claim`).
- KERNEL: what the kernel makes by itself (IPv6 link-local addresses,
  connected routes, 127.0.0.1 on lo). Not read as resources at all.
- FOREIGN: something in an owned namespace that netkeel must not change or
  could not recreate (another tool's nft table, a veth into a namespace
  netkeel does not manage, a device kind it cannot create). Reported as
  unmanaged, never touched.
"""

from __future__ import annotations

from collections import namedtuple

TOPOLOGY = "topology"
KERNEL = "kernel"
FOREIGN = "foreign"
OVERLAY_PREFIX = "overlay:"

# The markers on what the topology makes: route protocol, address protocol
# (IFA_PROTO) and interface alias. 144 is unassigned in iproute2's rt_protos.
RT_PROTO = 144
IFA_PROTO = 144
ALIAS_TAG = "netkeel"
# nftables tables netkeel owns carry this name prefix (libnftables 1.0.6 does
# not list table comments in JSON, so a comment cannot carry the mark).
TABLE_PREFIX = "netkeel_"
# nftables tables of fault leases: netkeel's, but never the topology's.
CHAOS_TABLE_PREFIX = "netkeel_chaos_"
# tc handles of qdiscs faults add (major 0x8e4b), and the name prefix of their ifb devices.
CHAOS_QDISC_HANDLE = "8e4b:"
CHAOS_IFB_PREFIX = "nkifb"
# VIP addresses carry a marker of their own, so that an apply of the topology
# can tell them from hand-made drift (no overlay makes routes).
OVERLAY_IFA_PROTO = 145


def overlay(name: str) -> str:
    return OVERLAY_PREFIX + name


# An address a running VRRP speaker holds as its group says it should (the one
# active member, on its interface): an overlay's, and the one drift does not report.
SPEAKER = overlay("speaker")


# What the reader calls an object marked as a fault's, before the active leases
# claim theirs (as overlay:fault:NAME).
UNCLAIMED_FAULT = overlay("fault")


def is_overlay(owner: str) -> bool:
    return owner.startswith(OVERLAY_PREFIX)


def is_managed(owner: str) -> bool:
    """Whether an apply of the topology may change or remove the object."""
    return owner == TOPOLOGY


def is_reported(owner: str) -> bool:
    """Whether drift lists an object the topology does not manage (a fault's, a
    foreign one, an orphaned VIP): all but what a speaker rightly holds."""
    return owner != SPEAKER


# A named tuple, not a dataclass: a quick answer (cli/quick.py) imports this
# module and never needs `dataclasses` (see errors.Problem). Claims are never
# written anywhere; drift and status show their `text`.
_ClaimFields = namedtuple("Claim", "owner kind matches mask text targets supplies supplies_while",
                          defaults=((), "", (), (), None))


class Claim(_ClaimFields):
    """An overlay's claim on live objects: `owner` owns every resource of `kind`
    for which `matches(resource)` is true (fault leases and VIP groups make these).

    With `mask`, the overlay holds only some fields of a resource the topology
    owns (a fault that shrinks a device's MTU): the resource stays the
    topology's, and those fields read as `mask` gives them (their value before
    the overlay), so the topology sees no drift and never undoes the overlay.

    Fields: `owner`, `kind`, `matches` (a callable taking a resource);
    `mask`, (field, value) pairs; `text`, how drift and status describe it;
    `targets`, the (ns, device or None) the overlay acts on (removing one would
    orphan it); `supplies`, resources the overlay took out of the kernel for its
    time, read as present when missing (routes and IPv6 addresses that went with
    a device a fault holds down): the topology sees no drift, never adds them
    back (the kernel would refuse), and a snapshot keeps them, so a rollback does
    not remove them after; `supplies_while`, whether the resource the claim
    matches, as read (before any mask), still has them away (the device is still
    down); None: always."""

    __slots__ = ()


def assign(resources, claims=()) -> list:
    """`resources` with each one claimed by an overlay owned by it (or masked)."""
    if not claims:
        return list(resources)
    by_kind: dict = {}
    for claim in claims:
        by_kind.setdefault(claim.kind, []).append(claim)
    out, supplying = [], []
    for r in resources:
        for claim in by_kind.get(r.kind, ()):
            if not claim.matches(r) or not (r.owner == TOPOLOGY or is_overlay(r.owner)):
                continue
            if claim.supplies and (claim.supplies_while is None or claim.supplies_while(r)):
                supplying.append(claim)
            r = r.with_fields(**dict(claim.mask)) if claim.mask else r.owned_by(claim.owner)
        out.append(r)
    present = {(r.kind, r.key) for r in out}
    for claim in supplying:
        for r in claim.supplies:
            if (r.kind, r.key) not in present:
                out.append(r)
                present.add((r.kind, r.key))
    return out
