"""An experiment's outcome as data: the `--json` document and the journal record.

Declared and measured side by side: each probe's bounds as written and its
metrics as measured, each fault's schedule as declared and its window as it
was in place (offsets in seconds from the experiment's start), with what the
probes measured inside that window.
"""

from __future__ import annotations

from .runner import Outcome, ProbeRun

FORMAT = 1


def document(outcome: Outcome, plot: str | None = None) -> dict:
    x = outcome.experiment
    origin = outcome.started

    def offset(t):
        return None if t is None else round(t - origin, 3)

    phase = next((start for label, start, _ in outcome.phases if label == "faults"), None)

    return {
        "format": FORMAT,
        "command": "experiment",
        "experiment": x.name,
        "file": x.source,
        "topology": x.topology,
        "instance": outcome.instance,
        "ns_prefix": outcome.prefix,
        "outcome": outcome.verdict,
        "held": outcome.held,
        "reasons": list(outcome.reasons),
        "other_faults": [{"lease": lease, "fault": text} for lease, text in outcome.others.items()],
        "started": outcome.started,
        "seconds": round(outcome.ended - outcome.started, 3) if outcome.ended else None,
        "phases": [{"phase": label, "from_s": offset(a), "to_s": offset(b)} for label, a, b in outcome.phases],
        "probes": [probe_record(run, offset) for run in outcome.probes()],
        "faults": [{
            "fault": f.name,
            "file": f.scheduled.fault.source,
            "what": f.scheduled.fault.text(),
            "declared": {"start_s": f.scheduled.start_ms / 1000, "duration_s": f.scheduled.duration_ms / 1000,
                         "from_s": offset(phase + f.scheduled.start_ms / 1000) if phase else None,
                         "to_s": offset(phase + f.scheduled.end_ms / 1000) if phase else None},
            "in_place": {"from_s": offset(f.injected), "to_s": offset(f.reverted)},
            "lease": f.lease,
            "backends": dict(f.backends),
            "error": f.error,
            "measured": {name: _rounded(metrics) for name, metrics in f.effects.items()},
        } for f in outcome.faults],
        "plot": plot,
    }


def probe_record(run: ProbeRun, offset) -> dict:
    p = run.probe
    return {
        "phase": run.phase,
        "probe": p.name,
        "kind": p.kind,
        "node": p.node,
        "namespace": run.namespace,
        "target": run.address,
        "port": p.port,
        "command": list(p.command) or None,
        "samples": len([s for s in run.samples if "seq" in s or s.get("done")]),
        "window": None if run.window is None else {"from_s": offset(run.window[0]), "to_s": offset(run.window[1])},
        "expect": [{"metric": b.metric, "bound": b.text, "measured": _round(v), "passed": ok}
                   for b, v, ok in run.results],
        "measured": _rounded(run.measured),
        "error": run.error,
        "passed": run.passed,
    }


def journal_record(outcome: Outcome, tx: str, plot: str | None) -> dict:
    """The journal's record of an experiment (event "experiment"): the document
    without the raw samples, which can be many."""
    return {"event": "experiment", "tx": tx, "op": "experiment", **{
        k: v for k, v in document(outcome, plot).items() if k not in ("format", "command")}}


def _rounded(metrics: dict) -> dict:
    return {k: _round(v) for k, v in metrics.items()}


def _round(value):
    return round(value, 3) if isinstance(value, float) else value
