"""Fault files: YAML with line marks -> schema -> semantic checks -> model.Fault.

Every problem is reported at once as FILE:LINE: path: message, before anything
touches the kernel, like a topology manifest's. What only the running lab can
tell (does the node exist, does this kernel have netem) is checked when the
fault is injected (toolkit/chaos).
"""

from __future__ import annotations

import ipaddress
import math
import os
import re

from ..errors import ManifestError, Problem
from ..model.fault import DEFAULT_DURATION_MS, DEVICE_KINDS, VIP_KINDS, Fault, Impairment, Partition, Target
from . import checks
from .files import read_file, read_text
from .loader import load_document, mapping
from .schema import problems_of
from .text import clean_problem, quote

_UNITS_MS = {"us": 0.001, "ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_RATE = {"bit": 1, "kbit": 10**3, "mbit": 10**6, "gbit": 10**9}
MAX_DURATION_MS = 7 * 24 * 3_600_000
MAX_DELAY_MS = 3_600_000
MIN_RATE, MAX_RATE = 8000, 1000 * 10**9  # tbf's burst (10 ms of tokens) must fit in 32 bits
TRAFFIC_KINDS = ("loss", "delay", "reorder", "duplicate", "corrupt", "rate")
IMPAIRMENT_KEYS = TRAFFIC_KINDS + DEVICE_KINDS + ("partition",) + VIP_KINDS


def duration_ms(value) -> float:
    """`500ms`, `2s`, `1.5m`, `7d` or a number of seconds, in milliseconds; infinity for
    a number too large for a float (the range checks then refuse it)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _float(value) * 1000
    number, unit = re.fullmatch(r"([0-9.]+)([a-z]+)", value).groups()
    return float(number) * _UNITS_MS[unit]


def _float(value) -> float:
    try:
        return float(value)
    except OverflowError:  # an integer of hundreds of digits
        return math.inf


def percent(value) -> float:
    return float(value[:-1]) if isinstance(value, str) else float(value)


def rate_bits(value: str) -> int:
    """`10mbit` in bits per second; a number too large for a float is 2**128 (the
    range checks then refuse it)."""
    number, unit = re.fullmatch(r"([0-9.]+)([a-z]+)", value).groups()
    bits = float(number) * _RATE[unit]
    return int(bits) if math.isfinite(bits) else 2 ** 128


def fault_name(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def load_fault(path, read=read_file) -> Fault:
    """Load and check the fault file at `path`. Raises ManifestError listing every problem."""
    path = str(path)
    text, problem = read_text(path, read, "fault file")
    if problem is not None:
        raise ManifestError([problem], what="fault file")
    return load_fault_text(text, path)


def load_fault_text(text: str, file: str) -> Fault:
    doc = load_document(text, file)
    if doc.data is None and not doc.problems:
        doc.problems.append(Problem(file, 1, "", "the fault file is empty: it needs a target and an impairment"))
    if doc.data is None:
        raise ManifestError([clean_problem(p) for p in doc.problems], what="fault file")
    # The schema takes out each value it refuses; the checks must not then report
    # what is missing because of that (an impairment, a target) a second time.
    written = set(mapping(doc.data))
    problems = problems_of(doc, "fault")
    if not isinstance(doc.data, dict):  # a list or a string: the schema said so, nothing more to check
        raise ManifestError({clean_problem(p) for p in problems}, what="fault file")
    checker = _Checker(doc, written)
    fault = checker.build(fault_name(file))
    problems += checker.problems
    if problems:
        raise ManifestError({clean_problem(p) for p in problems}, what="fault file")
    return fault


class _Checker:
    def __init__(self, doc, written=()):
        self.doc = doc
        self.data = mapping(doc.data)
        self.written = set(written) | set(self.data)  # top-level fields in the file, refused or not
        self.problems: list = []

    def fail(self, path, message: str) -> None:
        self.problems.append(self.doc.problem(tuple(path), message))

    def build(self, name: str) -> Fault:
        d = self.data
        duration = DEFAULT_DURATION_MS
        if "duration" in d:
            ms = duration_ms(d["duration"])
            if not 100 <= ms <= MAX_DURATION_MS:  # also NaN (`.nan`)
                self.fail(("duration",), f"duration {quote(d['duration'])} is out of range: from 100ms to 7 days")
            else:
                duration = ms
        impairments = [i for i in (self.impairment(kind) for kind in
                                   TRAFFIC_KINDS + DEVICE_KINDS + VIP_KINDS) if i is not None]
        partition = self.partition()
        target = self.target(impairments)
        if not impairments and partition is None and not self.written & set(IMPAIRMENT_KEYS):
            self.fail((), "a fault needs at least one of: loss, delay, reorder, duplicate, corrupt, rate, "
                          "partition, link_down, flap, mtu, " + ", ".join(VIP_KINDS))
        self.consistency(impairments, partition, target)
        return Fault(name=name, source=self.doc.file, duration_ms=int(duration),
                     description=d.get("description", ""), topology=d.get("topology"), target=target,
                     impairments=tuple(impairments), partition=partition, backend=d.get("backend"),
                     lines={i.kind: self.doc.line_of((i.kind,)) for i in impairments})

    def impairment(self, kind: str) -> Impairment | None:
        value = self.data.get(kind)
        if value is None:
            return None
        if kind in ("reorder", "duplicate", "corrupt"):
            return self.percentage(kind, percent(value))
        if kind == "loss":
            if isinstance(value, dict):
                found = self.percentage(kind, percent(value["percent"]))
                if found and "gilbert" in value:
                    model = tuple((k, percent(v)) for k, v in sorted(value["gilbert"].items()))
                    bad = [k for k, v in model if not 0 <= v <= 100]
                    for k in bad:
                        self.fail((kind, "gilbert", k),
                                  f"{k} is a probability: from 0% to 100%, not {dict(model)[k]:g}%")
                    found = None if bad else Impairment(kind, found.params + (("gilbert", model),))
                return found
            return self.percentage(kind, percent(value))
        if kind == "delay":
            spec = value if isinstance(value, dict) else {"time": value}
            time, jitter = duration_ms(spec["time"]), duration_ms(spec.get("jitter", 0) or 0)
            if not (0 < time <= MAX_DELAY_MS and 0 <= jitter <= MAX_DELAY_MS):  # also NaN
                self.fail((kind,), "a delay must be more than 0 and, with its jitter, at most an hour "
                                   "(more is not a lab fault)")
                return None
            params = {"time_ms": time, "jitter_ms": jitter,
                      "distribution": spec.get("distribution", "uniform") if jitter else None}
            if spec.get("distribution") and not jitter:
                self.fail((kind, "distribution"), "a distribution needs a jitter to spread the delay over")
            return Impairment(kind, tuple(sorted((k, v) for k, v in params.items() if v is not None)))
        if kind == "rate":
            bits = rate_bits(value)
            if bits < MIN_RATE:
                self.fail((kind,), f"rate {quote(value)} is below 8kbit: nothing usable would pass")
            elif bits > MAX_RATE:
                self.fail((kind,), f"rate {quote(value)} is above 1000gbit, more than tc can shape")
                return None
            return Impairment(kind, (("bits", bits),))
        if kind == "link_down":
            return Impairment(kind)
        if kind == "flap":
            if "period" not in value or "down" not in value:
                return None  # refused by the schema, and said so
            period, down = duration_ms(value["period"]), duration_ms(value["down"])
            if not (math.isfinite(period) and math.isfinite(down)):
                self.fail((kind,), "a flap's period and down time must be finite")
                return None
            if down >= period:
                self.fail((kind, "down"), f"down ({value['down']}) must be shorter than the period ({value['period']})")
            if period < 100:
                self.fail((kind, "period"), "a flap period under 100ms is not one a keeper can keep")
            params = (("down_ms", down), ("period_ms", period)) + ((("cycles", value["cycles"]),)
                                                                  if "cycles" in value else ())
            return Impairment(kind, params)
        if kind == "mtu":
            return Impairment(kind, (("mtu", value),))
        if kind in VIP_KINDS:
            return Impairment(kind, (("group", value),))
        return None

    def percentage(self, kind: str, value: float) -> Impairment | None:
        if not 0 < value <= 100:
            self.fail((kind,), f"{kind} must be more than 0% and at most 100%, not {value:g}%")
            return None
        return Impairment(kind, (("percent", value),))

    def partition(self) -> Partition | None:
        spec = self.data.get("partition")
        if not isinstance(spec, dict) or not isinstance(spec.get("between"), list):
            return None
        if len(spec["between"]) != 2 or not all(isinstance(side, list) for side in spec["between"]):
            return None  # refused by the schema, and said so
        a, b = (tuple(dict.fromkeys(side)) for side in spec["between"])
        if set(a) & set(b):
            self.fail(("partition", "between"), f"node(s) on both sides: {', '.join(sorted(set(a) & set(b)))}")
        return Partition(a, b, spec.get("direction", "both"))

    def target(self, impairments) -> Target | None:
        spec = self.data.get("target")
        if not isinstance(spec, dict):
            if any(i.kind not in VIP_KINDS for i in impairments) and "target" not in self.written:
                self.fail((), f"{next(i.kind for i in impairments if i.kind not in VIP_KINDS)} needs a target: "
                              "target: {node: NODE, interface: IFNAME, direction: egress}")
            return None
        if "node" not in spec or "interface" not in spec:
            return None  # missing or refused: the schema said so
        try:
            checks.interface_name(spec["interface"])
            if '"' in spec["interface"] or "\\" in spec["interface"]:
                raise ValueError(f"interface name {quote(spec['interface'])} has a quote or a backslash, "
                                 "which nftables cannot quote")
        except ValueError as exc:
            self.fail(("target", "interface"), str(exc))
            return None
        peer = spec.get("peer")
        if peer is not None:
            try:
                peer = ipaddress.ip_network(peer).with_prefixlen
            except ValueError:
                self.fail(("target", "peer"), _peer_problem(peer))
                peer = None
        if spec.get("port") is not None and spec.get("protocol") not in ("tcp", "udp"):
            self.fail(("target", "port"), "a port needs protocol: tcp or udp")
        return Target(spec["node"], spec["interface"], spec.get("direction", "egress"), peer,
                      spec.get("protocol"), spec.get("port"))

    def consistency(self, impairments, partition, target) -> None:
        kinds = {i.kind for i in impairments}
        vip = sorted(kinds & set(VIP_KINDS))
        if vip and (len(kinds) > 1 or partition is not None or "target" in self.written):
            self.fail((vip[0],), f"{vip[0]} is aimed at the VIP group's active member: a fault of its own, "
                                 "with no target and no other impairment")
        if partition is not None and (impairments or target is not None):
            self.fail(("partition",), "a partition is a fault of its own: no target and no other impairment")
        if "reorder" in kinds and "delay" not in kinds:
            self.fail(("reorder",), "reorder needs a delay: reordered packets are sent at once while the "
                                    "others wait (netem's rule); add delay: 10ms or more")
        if {"link_down", "flap"} <= kinds:
            self.fail(("flap",), "link_down and flap both decide the link's state: choose one")
        if target is not None and kinds & set(DEVICE_KINDS) and "direction" in mapping(self.data.get("target")):
            device = sorted(kinds & set(DEVICE_KINDS))[0]
            self.fail(("target", "direction"), f"{device} changes the device itself: a direction does not apply")
        if target is not None and target.narrowed:
            shaped = sorted(kinds & {"delay", "reorder", "corrupt", "rate"} | kinds & set(DEVICE_KINDS))
            if shaped:
                self.fail(("target",), f"{shaped[0]} cannot be narrowed by peer, protocol or port here "
                                       "(only loss, duplicate and partitions can)")


def _peer_problem(peer) -> str:
    """Why `peer` is not a prefix or an address: host bits set is the usual slip."""
    try:
        network = ipaddress.ip_network(str(peer), strict=False)
    except ValueError:
        return f"peer {quote(peer)} is not an address or a prefix, such as 10.0.1.0/24 or 10.0.1.7"
    return f"peer {quote(peer)} has host bits set: the prefix is {network}, the address {str(peer).split('/')[0]}"
