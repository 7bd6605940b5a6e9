"""Kind "impair" in the kernel: a device's root qdisc (tbf or netem), key (ns, ifname).

Read from the qdisc dump (rtnl.py). A root qdisc with the topology's handle
(4e4b:) is the declared impairment; one with the chaos handle (8e4b:) belongs
to a fault lease and is not read here; any other root qdisc in a managed
namespace (not the kernel's noqueue) was made by hand: the topology's drift.
Changes go through iproute2's tc inside the namespace (netem's distribution
tables are tc's to encode).
"""

from __future__ import annotations

from ..core.owners import CHAOS_QDISC_HANDLE, TOPOLOGY, overlay
from ..core.resource import Resource
from ..errors import KernelError
from ..model.shaping import queue_limit, tbf_args

KIND = "impair"
HANDLE = "4e4b:"
_CHAOS = int(CHAOS_QDISC_HANDLE.rstrip(":"), 16) << 16
TC_H_ROOT = 0xFFFFFFFF
LOSS_SCALE = 2**32 - 1


def to_resources(ns: str, qdiscs, by_index: dict) -> list:
    out = []
    for q in qdiscs:
        if q.parent != TC_H_ROOT or q.handle == 0 or q.kind == "noqueue":
            continue
        out.append(Resource.make(
            KIND, (ns, by_index.get(q.index, f"#{q.index}")),
            # A fault's qdisc (chaos handle): an overlay's, claimed by its lease (or
            # an orphan a lost lease left, which then is the topology's to remove).
            owner=overlay("fault") if q.handle == _CHAOS else TOPOLOGY,
            qdisc=q.kind,
            rate=q.rate * 8 if q.rate else None,
            delay_us=q.delay_ns // 1000 if q.delay_ns else None,
            jitter_us=q.jitter_ns // 1000 if q.jitter_ns else None,
            loss=round(q.loss / LOSS_SCALE * 100, 4) if q.loss else None,
            **(_tbf_shape(q) if q.kind == "tbf" else _netem_extras(q) if q.kind == "netem" else {}),
        ))
    return out


def _netem_extras(q) -> dict:
    """netem's queue limit (packets) and what a declared impairment never asks
    for (duplicate, corrupt, reorder: percent, 0 for none), so that one added by
    hand is drift."""
    return {"limit": q.limit, **{name: _percent(getattr(q, name)) for name in ("duplicate", "corrupt", "reorder")}}


def _percent(scaled) -> float | int:
    return round(scaled / LOSS_SCALE * 100, 4) if scaled else 0


PSCHED_TICK_NS = 64  # the kernel keeps tbf's burst as the time to send it, in ticks of 2**6 ns


def _tbf_shape(q) -> dict:
    """tbf's burst (bytes, from the time the kernel keeps: within a tick's worth
    of the bytes tc was given), queue limit (bytes) and peak rate (bits/s, 0 for none)."""
    burst = round(q.burst * PSCHED_TICK_NS * q.rate / 1e9) if q.burst is not None and q.rate else None
    return {"burst": burst, "limit": q.limit, "peakrate": (q.peakrate or 0) * 8}


def set_impairment(kernel, ns: str, dev: str, spec: dict) -> None:
    from .chaos import _tc, root_qdisc  # (tc and the fault model: changes only, never reads)

    kernel.log(ns, f"impair {dev}: {spec}")
    current = root_qdisc(ns, dev)
    if current is not None and current.get("handle") == CHAOS_QDISC_HANDLE:
        raise KernelError(f"impair {dev} in {ns}", "a fault holds its root qdisc (see `chaos status`): "
                                                   "revert the fault first, then apply")
    if current is not None:
        _tc(ns, ["qdisc", "del", "dev", dev, "root"])
    _tc(ns, ["qdisc", "add", "dev", dev, "root", "handle", HANDLE, *arguments(spec)])


def clear(kernel, ns: str, dev: str) -> None:
    from .chaos import _tc, root_qdisc

    kernel.log(ns, f"impair {dev}: none")
    if root_qdisc(ns, dev) is not None:
        _tc(ns, ["qdisc", "del", "dev", dev, "root"])


def arguments(spec: dict) -> list:
    """tc arguments for a spec: tbf for a rate alone, else netem (which does rate too)."""
    if spec.get("qdisc") == "tbf":
        return ["tbf", *tbf_args(spec["rate"], spec.get("burst"), spec.get("limit"), spec.get("peakrate") or 0)]
    args = ["netem"]
    if spec.get("delay_us"):
        args += ["delay", f"{spec['delay_us']}us"]
        if spec.get("jitter_us"):
            args += [f"{spec['jitter_us']}us"]
            if spec.get("_distribution") not in (None, "uniform"):
                args += ["distribution", spec["_distribution"]]
    if spec.get("loss"):
        args += ["loss", f"{spec['loss']:g}%"]
    if spec.get("rate"):
        args += ["rate", f"{spec['rate']}bit"]
    return args + ["limit", str(queue_limit(spec.get("delay_us", 0) / 1000, spec.get("jitter_us", 0) / 1000))]
