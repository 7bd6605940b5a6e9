"""The JSON documents of `plan`, `apply`, `drift` and `destroy` (--json).

The shape is stable and documented in docs/json.md; `format` is bumped on any
incompatible change.
"""

from __future__ import annotations

import json

from ..errors import ApplyError, ManifestError, NetkeelError
from ..core.action import CREATE, DELETE, Action, Plan
from ..core.owners import FOREIGN
from ..kinds import kind
from . import node_name
from .details import details

FORMAT = 1
DRIFT_WORDS = {CREATE: "missing", DELETE: "unexpected", "modify": "changed"}


def action_record(action: Action, prefix: str, drift: bool = False) -> dict:
    r = action.resource
    record = {
        "op": action.op,
        "kind": action.kind,
        "node": node_name(action.ns, prefix),
        "namespace": action.ns,
        "object": r.label,
        "key": list(action.key),
        "desired": _spec(action.desired),
        "live": _spec(action.live),
        "changes": [{"field": f, "desired": d, "live": l} for f, d, l in action.changes],
        "details": [{"what": w, "desired": d, "live": l} for w, d, l in details(action)]
        if action.changes else [],
        "implicit": action.implicit or None,
    }
    if drift:
        record["difference"] = DRIFT_WORDS[action.op]
    return record


def _spec(resource) -> dict | None:
    if resource is None:
        return None
    return {k: v for k, v in resource.fields().items() if not k.startswith("_")}


def unmanaged_record(resource, prefix: str) -> dict:
    """A live object that is not the topology's. Format 1 names a foreign one's
    kind `<kind>_foreign` (nft_foreign, link_foreign, route_foreign); an
    overlay's keeps its kind and says its owner."""
    record = {"kind": kind(resource.kind).foreign_name if resource.owner == FOREIGN else resource.kind,
              "node": node_name(resource.ns, prefix), "namespace": resource.ns, "object": resource.label}
    if resource.owner != FOREIGN:
        record["owner"] = resource.owner
    if resource.get("reason"):
        record["reason"] = resource.get("reason")
    return record


def document(command: str, topology, prefix: str, plan: Plan, outcome: str, **extra) -> dict:
    drift = command == "drift"
    counts = plan.counts()
    doc = {
        "format": FORMAT,
        "command": command,
        "topology": topology.name,
        "manifest": topology.source,
        "ns_prefix": prefix,
        "outcome": outcome,
        "counts": {"create": counts[CREATE], "modify": counts["modify"], "delete": counts[DELETE],
                   "total": len(plan.actions)},
        "differences" if drift else "actions": [action_record(a, prefix, drift) for a in plan.actions],
    }
    doc.update(extra)
    return doc


def error_document(command: str, error: BaseException) -> dict:
    body: dict = {"type": type(error).__name__, "message": str(error)}
    if isinstance(error, ManifestError):
        body["problems"] = [{"file": p.file, "line": p.line, "path": p.path, "message": p.message}
                            for p in error.problems]
    if isinstance(error, ApplyError):
        body.update(failed_action=str(error.failed), kernel_error=str(error.cause),
                    restored=error.restored, restore_error=error.restore_error)
    if not isinstance(error, NetkeelError):
        body["type"] = "internal"
    return {"format": FORMAT, "command": command, "outcome": "error", "error": body}


def dumps(doc: dict) -> str:
    return json.dumps(doc, indent=2, sort_keys=False, default=str)
