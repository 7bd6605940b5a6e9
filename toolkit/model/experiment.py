"""The experiment model: one experiment file, validated. Frozen, canonical units.

An experiment is a hypothesis about a running lab checked around a schedule of
faults: probes that must hold before (else nothing is injected) and after
(steady state), faults injected at offsets from the start of the fault phase,
and probes measured during it. Times in milliseconds, percentages 0-100,
goodput in Mbit/s.

A probe runs inside one node's namespace and is bounded in count and time; its
samples are reduced to metrics (below), and each metric can carry bounds.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

from .fault import Fault

PROBE_KINDS = ("icmp", "udp", "tcp_connect", "tcp_transfer", "command")
SERVICE_KINDS = ("udp_time", "tcp_sink")

# The metrics each kind of probe reports, and their units.
METRICS = {
    "icmp": ("loss", "rtt_p50", "rtt_p90", "rtt_p99", "rtt_max"),
    # stale: answers that belonged to an earlier request (what a lock-step client
    # like the lab's time client reads as the time when replies are delayed or
    # reordered); out_of_order: answers that came after a later request's answer.
    "udp": ("loss", "stale", "out_of_order", "rtt_p50", "rtt_p90", "rtt_p99", "rtt_max"),
    "tcp_connect": ("failed", "connect_p50", "connect_p90", "connect_p99"),
    "tcp_transfer": ("goodput", "failed"),
    "command": ("failed",),
}
UNITS = {"loss": "%", "stale": "%", "out_of_order": "%", "failed": "%", "goodput": "mbit/s"}


def unit_of(metric: str) -> str:
    return UNITS.get(metric, "ms")


def format_value(value: float | None, metric: str) -> str:
    """A measured value with its unit, for people: 38.5%, 12.3 ms, 940 mbit/s."""
    if value is None:
        return "unmeasured"
    unit = unit_of(metric)
    number = f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    return f"{number}%" if unit == "%" else f"{number} {unit}"


OPERATORS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt, "==": operator.eq}


@dataclass(frozen=True)
class Bound:
    """One expectation: `metric op value`, the value in the metric's unit."""
    metric: str
    op: str
    value: float
    text: str = ""   # as written in the file, e.g. "<= 5%"

    def holds(self, measured: float | None) -> bool:
        """Whether the measured value meets the bound (no measurement never does)."""
        return measured is not None and OPERATORS[self.op](measured, self.value)

    def describe(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}{'' if unit_of(self.metric) == '%' else ' '}{unit_of(self.metric)}"


@dataclass(frozen=True)
class Probe:
    name: str
    kind: str                     # one of PROBE_KINDS
    node: str                     # the node (manifest name) it runs in
    target: str | None = None     # an address, or a node name resolved to its first address
    port: int | None = None       # udp, tcp_connect, tcp_transfer
    count: int = 10               # echo requests, datagrams, connections, command runs
    interval_ms: float = 100.0
    timeout_ms: float = 1000.0    # per sample (a whole transfer: duration + timeout)
    duration_ms: float = 0.0      # tcp_transfer: how long to send
    command: tuple = ()           # command: argv
    expect: tuple = ()            # Bound
    halt: bool = False            # during: a failing bound stops the experiment (faults reverted)
    start_ms: float = 0.0         # during: from the start of the fault phase
    within: str | None = None     # during: judge only the samples sent while this fault was in place
    line: int = 0

    def budget_ms(self) -> float:
        """The longest this probe can take: it is stopped then, whatever it is doing.
        icmp and udp send on a fixed schedule (every interval, answered or not);
        tcp_connect and command wait for each attempt (up to the timeout)."""
        if self.kind == "tcp_transfer":
            return self.duration_ms + 2 * self.timeout_ms
        if self.kind in ("icmp", "udp"):
            return self.count * self.interval_ms + self.timeout_ms
        return self.count * (self.interval_ms + self.timeout_ms)


@dataclass(frozen=True)
class Service:
    """A bounded server an experiment starts in a node for its probes: the lab's
    UDP time server (answers each datagram with its sequence number and the
    time), or a TCP sink (accepts, counts and discards, answers the count)."""
    node: str
    kind: str    # one of SERVICE_KINDS
    port: int
    line: int = field(default=0, compare=False)  # where it is declared; two alike are one service


@dataclass(frozen=True)
class ScheduledFault:
    fault: Fault
    start_ms: float        # from the start of the fault phase
    duration_ms: float
    line: int = 0

    @property
    def end_ms(self) -> float:
        return self.start_ms + self.duration_ms


@dataclass(frozen=True)
class Experiment:
    name: str
    source: str
    description: str = ""
    topology: str | None = None
    services: tuple = ()          # Service
    steady_state: tuple = ()      # Probe: must hold before and after
    faults: tuple = ()            # ScheduledFault
    during: tuple = ()            # Probe: run while the faults are scheduled
    during_ms: float = 0.0        # length of the fault phase
    lines: dict = field(default_factory=dict, compare=False)

    def budget_ms(self) -> float:
        """An upper bound of the whole run (services are stopped after it)."""
        steady = max((p.budget_ms() for p in self.steady_state), default=0)
        return 2 * steady + self.during_ms + max((p.budget_ms() for p in self.during), default=0) + 30_000
