"""Samples to metrics, metrics to verdicts: pure functions, no I/O.

Samples are the agent's lines (toolkit/experiment/agent.py). A request is a
sample with a "seq"; loss, failed, stale and out_of_order are percentages
(0-100) of the requests seen. Times are in ms over the answered requests only,
and percentiles are nearest-rank: the p-th percentile of n values is the value
at rank ceil(p / 100 * n) of them sorted (rank 1 for p = 0), always a value
that was measured. A metric with nothing to measure (no requests, no answers,
no finished transfer) is None, which no bound accepts.
"""

from __future__ import annotations

import math

from ..model.experiment import METRICS, Bound, Probe

# The share metrics: which requests each one counts.
COUNTED = {
    "loss": lambda sample: not sample.get("ok"),
    "failed": lambda sample: not sample.get("ok"),
    "stale": lambda sample: bool(sample.get("stale")),
    "out_of_order": lambda sample: bool(sample.get("out_of_order")),
}


def percentile(values: list, p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def measure(probe: Probe, samples: list) -> dict:
    """Every metric of the probe's kind, and "samples": the requests seen (for a
    transfer, 1 once its final line came, else 0)."""
    if probe.kind == "tcp_transfer":
        return transfer_metrics(samples)
    requests = [sample for sample in samples if "seq" in sample]
    measured = {metric: request_metric(metric, requests) for metric in METRICS[probe.kind]}
    measured["samples"] = len(requests)
    return measured


def request_metric(metric: str, requests: list) -> float | None:
    if metric in COUNTED:
        return 100 * sum(map(COUNTED[metric], requests)) / len(requests) if requests else None
    # The rest are QUANTITY_pNN or QUANTITY_max over the sample field QUANTITY_ms
    # (rtt_p50 over rtt_ms, connect_p90 over connect_ms).
    quantity, statistic = metric.rsplit("_", 1)
    values = [sample[f"{quantity}_ms"] for sample in requests
              if sample.get("ok") and sample.get(f"{quantity}_ms") is not None]
    if statistic == "max":
        return max(values, default=None)
    return percentile(values, float(statistic.removeprefix("p")))


def transfer_metrics(samples: list) -> dict:
    final = next((sample for sample in reversed(samples) if sample.get("done")), None)
    ok = bool(final and final.get("ok"))
    return {"goodput": final.get("goodput_mbit") if ok else None, "failed": 0.0 if ok else 100.0,
            "samples": 1 if final else 0}


def check(probe: Probe, measured: dict) -> list[tuple[Bound, float | None, bool]]:
    """(bound, measured value, whether it holds) for each of the probe's bounds."""
    return [(bound, measured.get(bound.metric), bound.holds(measured.get(bound.metric))) for bound in probe.expect]


def passed(results: list) -> bool:
    return all(ok for _bound, _value, ok in results)


def within(samples: list, start: float, end: float) -> list:
    """The samples whose time "t" is in [start, end)."""
    return [sample for sample in samples if "t" in sample and start <= sample["t"] < end]
