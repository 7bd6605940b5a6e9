"""What to run after an interrupted change, and what each command would do.

The right advice depends on what was interrupted: after a destroy, `apply FILE`
would build the lab again rather than finish removing it.
"""

from __future__ import annotations

import shlex


def advice(start: dict, state_dir: str | None = None) -> list:
    """[(command, what it does)] for the start record of an interrupted change;
    `state_dir`, when not the default, is named in each command (the journal and
    snapshots it speaks of are there)."""
    manifest = (start.get("manifests") or [{}])[0].get("path")
    prefix = start.get("instance", "").partition("@")[2]
    target = (shlex.quote(manifest) if manifest else "FILE") + (f" --ns-prefix {shlex.quote(prefix)}" if prefix else "")
    where = f" --state-dir {shlex.quote(state_dir)}" if state_dir else ""
    before = start.get("snapshot")
    undo = [(f"rollback --snapshot {shlex.quote(str(before))}", _UNDO.get(start.get("op"), "returns to the state before it"))] \
        if before else []
    return [(command + where, effect) for command, effect in _finish(start, target) + undo]


_UNDO = {
    "apply": "returns to the state before it",
    "destroy": "rebuilds what was there before it",
    "rollback": "returns to the state before the rollback",
}


def _finish(start: dict, target: str) -> list:
    op = start.get("op")
    if op == "apply":
        return [(f"apply {target}", "finishes it: converges to the manifest from whatever half state is left")]
    if op == "destroy":
        return [(f"destroy {target}", "finishes removing the lab")]
    if op == "rollback" and (start.get("git") or {}).get("rollback_to"):
        to = start["git"]["rollback_to"]
        return [(f"rollback --snapshot {shlex.quote(str(to))}", f"finishes it: returns to snapshot {to}")]
    return []
