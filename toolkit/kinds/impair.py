"""Kind "impair": a permanent impairment of a device's egress, declared in the
topology (`impair: {rate: 10mbit, delay: 20ms, loss: 1%}` on a link or an
endpoint), key (ns, ifname).

Spec: qdisc (tbf when only a rate is declared, else netem, which does rate too),
rate (bits/s), delay_us, jitter_us, loss (percent); for tbf its shape too, as
netkeel sets it: burst and limit (bytes), peakrate (0: none), so that a burst
shrunk by hand (which drops what a burst of traffic brings) is drift; for netem
its queue limit (packets) and duplicate, corrupt, reorder (0); and `_distribution`
(information: the kernel does not list a delay distribution back, so it is
set but never compared). Its qdisc carries netkeel's handle 4e4b: at the root;
a root qdisc without it is not the topology's.
"""

from __future__ import annotations

from ..core.resource import Resource
from ..model.shaping import queue_limit, tbf_burst, tbf_limit
from . import link, netns
from .base import Kind, check_fields, is_integer, is_number, is_text

HANDLE = "4e4b:"


class Impairment(Kind):
    name = "impair"
    key_arity = 2

    def check_spec(self, spec) -> str:
        count = (lambda v: is_integer(v, 0, 2**64 - 1), "a whole number")
        return super().check_spec(spec) or check_fields(
            spec, qdisc=(is_text, "a string"), rate=count, delay_us=count, jitter_us=count, burst=count,
            limit=count, peakrate=count, **{name: (lambda v: is_number(v, 0, 100), "a percentage")
                                            for name in ("duplicate", "corrupt", "reorder")},
            loss=(lambda v: is_number(v, 0, 100), "a percentage"), reason=(is_text, "a string"))

    def compile(self, topology, prefix):
        out = []
        for node in topology.nodes:
            for iface in node.interfaces:
                if iface.impair:
                    spec = dict(iface.impair)
                    netem = any(k in spec for k in ("delay_us", "jitter_us", "loss"))
                    if netem:
                        shape = {"limit": queue_limit((spec.get("delay_us") or 0) / 1000,
                                                      (spec.get("jitter_us") or 0) / 1000),
                                 "duplicate": 0, "corrupt": 0, "reorder": 0}
                    else:
                        shape = {"burst": tbf_burst(spec["rate"]), "limit": tbf_limit(spec["rate"]), "peakrate": 0}
                    out.append(Resource.make(self.name, (netns.namespace_name(prefix, node.name), iface.name),
                                             qdisc="netem" if netem else "tbf", rate=spec.get("rate"),
                                             delay_us=spec.get("delay_us"), jitter_us=spec.get("jitter_us"),
                                             loss=spec.get("loss"), _distribution=spec.get("distribution"),
                                             **shape))
        return out

    def canonical(self, resource):
        # Rates and times as the kernel keeps them: bytes/s (so bits to the byte),
        # nanoseconds truncated to microseconds, loss to 2**32 steps (1e-4 %).
        f = resource.fields()
        changes = {}
        if f.get("rate") is not None:
            changes["rate"] = f["rate"] // 8 * 8
        if f.get("loss") is not None:
            changes["loss"] = round(f["loss"], 4)
        return resource.with_fields(**changes) if changes else resource

    def changes(self, desired, live) -> tuple:
        """As declared, but a tbf burst read back within a tick (64 ns) of sending
        time of the bytes set is the same burst: the kernel keeps it as a time."""
        rate = (live.get("rate") or 0) // 8
        return tuple((f, d, l) for f, d, l in super().changes(desired, live)
                     if not (f == "burst" and isinstance(d, int) and isinstance(l, int)
                             and abs(d - l) <= rate * 64 / 1e9 + 1))

    def parents(self, resource) -> tuple:
        return ((link.device_ident(*resource.key), "with its device"),)

    def label(self, resource) -> str:
        return f"impairment on {resource.key[1]}"

    def describe(self, resource) -> str:
        f = resource.fields()
        parts = [f.get("qdisc", "")]
        if f.get("rate"):
            parts.append(f"rate {f['rate']}bit")
        if f.get("delay_us"):
            parts.append(f"delay {f['delay_us'] / 1000:g}ms")
        if f.get("jitter_us"):
            parts.append(f"jitter {f['jitter_us'] / 1000:g}ms")
        if f.get("loss"):
            parts.append(f"loss {f['loss']:g}%")
        return " ".join(p for p in parts if p)

    def run(self, backend, phase, actions) -> None:
        for action in actions:
            ns, dev = action.key
            if phase == "delete":
                backend.impair_clear(ns, dev)
            else:
                backend.impair_set(ns, dev, {k: v for k, v in action.desired.spec})


KIND = Impairment()
