"""Tasks about change over time: snapshots, rollback, history, and diff between git revisions."""

from __future__ import annotations

from invoke import Collection
from rich import box
from rich.markup import escape
from rich.table import Table

from ..core.processes import running
from ..errors import NetkeelError
from ..manifest import load_topology
from ..report import human, machine
from ..state import StateDir
from .common import HELP, HELP_WAIT, cell, command, err, kernel_session, out, require_root, warn_interrupted
from .invoking import task
from .chaos import chaos
from .experiment import experiment
from .vip import vip
from .doctor import doctor
from .graph import graph
from .tasks import apply, destroy, drift, plan, show, validate

STATE = {"state_dir": HELP["state_dir"]}


SHOWN_PROBLEMS = 10  # damaged records named one by one; the rest counted

@task(help=STATE)
@command("snapshots")
def snapshots(c, state_dir=None):
    """List the snapshots taken before each change (id, time, manifest, git revision, size)."""
    from ..state.snapshots import Snapshots

    state = StateDir(state_dir)
    table = Table(title=f"snapshots in {state.root}", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("id", "time (UTC)", "instance, taken", "manifest", "git", "resources"):
        table.add_column(column, overflow="fold", no_wrap=column in ("id", "time (UTC)", "git"),
                         justify="right" if column == "resources" else "left")
    for snapshot_id, snap in Snapshots(state).listing():
        if isinstance(snap, Exception):
            table.add_row(snapshot_id, "", "[red]unreadable[/]", escape(str(snap)), "", "")
            continue
        manifest = snap.manifests[0]["path"] if snap.manifests else ""
        # Every cell from the file is text, never markup: a manifest at `q[red]/x.yaml`.
        table.add_row(cell(snap.id), cell(snap.time.replace("T", " ")[:19]),
                      f"{cell(snap.instance)}\n{cell(snap.reason)}", cell(manifest), cell(_git(snap.git)),
                      str(len(snap.resources)))
    out.print(table if table.row_count else f"no snapshots in {state.root}")


def _git(info: dict) -> str:
    """A short commit, with git's own "-dirty" mark when the manifest had local changes."""
    if not info or not info.get("commit"):
        return ""
    return info["commit"][:10] + ("-dirty" if info.get("dirty") else "")


@task(
      help=dict(STATE, snapshot="the snapshot to return to (default: the one before the last apply)",
                wait=HELP_WAIT, verbose=HELP["verbose"], json=HELP["json"]))
@command("rollback")
def rollback(c, snapshot=None, state_dir=None, wait=False, verbose=False, json=False):
    """Return the kernel to a snapshot: by default the state before the last apply."""
    from ..runtime.engine import rollback as roll_back

    if snapshot is not None and not snapshot.strip():
        raise NetkeelError("--snapshot needs a snapshot id (see `snapshots`); leave it out for the one "
                           "before the last apply")
    require_root()
    state = StateDir(state_dir)
    if not state.root.exists():  # nothing was ever applied with it; do not make one to say so
        from ..state.snapshots import ID

        hint = " (a snapshot id: did you mean --snapshot? -s is --state-dir)" if ID.fullmatch(state.root.name) else ""
        raise NetkeelError(f"state directory {state.root} does not exist{hint}")
    warn_interrupted(state)
    with kernel_session(verbose, state) as kernel:
        from ..chaos import engine as chaos

        chaos.expire(kernel, state)
        result = roll_back(kernel, state, snapshot or None, wait=wait,
                           claims=lambda instance: chaos.claims(state, instance))
    if json:
        print(machine.dumps({"format": machine.FORMAT, "command": "rollback",
                             "outcome": "in_sync" if result.plan.empty else "rolled_back",
                             "steps": result.steps, "snapshot": result.snapshot,
                             "actions": [machine.action_record(a, "") for a in result.plan.actions]}))
    elif result.plan.empty:
        out.print("already at that snapshot: nothing changed.")
    else:
        human.print_plan(out, result.plan, "rolled back")
        out.print(f"[green]rolled back[/] with {result.steps} kernel request(s); verified. "
                  f"Snapshot before the rollback: {result.snapshot}.")


@task(help=dict(STATE, limit="show only the last N changes (default 20; 0 for all)"))
@command("history")
def history(c, state_dir=None, limit="20"):  # text: invoke's own int() of "abc" was a traceback
    """Show the journal: each apply, rollback, destroy, experiment and fault, its outcome and git revision."""
    from ..state.journal import Journal

    text = str(limit).strip()
    if not (text.isascii() and text.isdigit()):
        raise NetkeelError(f"--limit {cell(text)}: a number of changes, 0 for all")
    limit = int(text)
    journal = Journal(StateDir(state_dir))
    records, problems = journal.recent(limit) if limit > 0 else journal.records()
    for problem in problems[:SHOWN_PROBLEMS]:
        err.print(f"[yellow]note[/]: {escape(problem)}")
    if len(problems) > SHOWN_PROBLEMS:
        err.print(f"[yellow]note[/]: and {len(problems) - SHOWN_PROBLEMS:,} more damaged journal records skipped")
    changes, order = {}, []
    for record in records:
        tx = record.get("tx")
        if record.get("event") == "fault":  # a fault's inject and revert: one change, where it began
            if record.get("action") == "inject":
                order.append(tx)
                changes[tx] = {"start": record}
            if tx in changes:  # (a revert whose inject is before the records read: not shown)
                changes[tx][record.get("action")] = record
        elif record.get("event") in ("start", "experiment"):
            if tx not in changes:
                order.append(tx)
            elif record.get("event") == "experiment":  # its outcome replaces the record of its start,
                record = {**record, "ts": changes[tx]["start"].get("ts")}  # but it began then
            changes[tx] = {"start": record}
        elif tx in changes:
            changes[tx][record.get("event")] = record
    cut_off, running = journal.unfinished()
    interrupted = {r["tx"] for r in cut_off}
    table = Table(title=f"history in {journal.path}", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("started (UTC)", "op", "instance", "outcome", "requests", "snapshot before", "git"):
        table.add_column(column, overflow="fold", no_wrap=column in ("started (UTC)", "snapshot before"))
    for tx in order[-limit:] if limit > 0 else order:
        start, end = changes[tx]["start"], changes[tx].get("end", {})
        if start.get("event") == "experiment":
            table.add_row(*_experiment_row(start))
            continue
        if start.get("event") == "fault":
            table.add_row(*_fault_row(changes[tx]))
            continue
        outcome = end.get("outcome") or _unfinished(tx, interrupted, running)
        if end.get("failed"):
            outcome += f": {cell(end['failed'])}"
        table.add_row(*(cell(v) for v in (str(start.get("ts", "")).replace("+00:00", "")[:19],
                                          start.get("op", ""), start.get("instance", ""))),
                      outcome, cell(end.get("steps", "") if end.get("steps") is not None else ""),
                      cell(start.get("snapshot", "")), cell(_git(start.get("git") or {})))
    out.print(table if table.row_count else f"no changes recorded in {journal.path}")


def _experiment_row(record: dict) -> tuple:
    """An experiment in the history: its outcome, and how many probes passed."""
    probes = record.get("probes") if isinstance(record.get("probes"), list) else []
    passed = sum(1 for p in probes if isinstance(p, dict) and p.get("passed"))
    outcome = f"{record.get('outcome', '?')} ({passed}/{len(probes)} probes passed)"
    if record.get("outcome") == "running" and not running(record.get("pid"), b"experiment"):
        outcome = "killed: no outcome recorded (its faults end with their leases: `chaos status`)"
    elif record.get("outcome") == "running":
        outcome = "running"
    return (cell(str(record.get("ts", "")).replace("+00:00", "")[:19]),
            cell(f"experiment {record.get('experiment', '?')}"), cell(record.get("instance", "")),
            cell(outcome), "", "", "")


def _fault_row(records: dict) -> tuple:
    """A fault in the history: what it was, when it was put in place, and when and
    why it was taken away (none recorded yet: in place, or `chaos status` says)."""
    first, injected, reverted = records["start"], records["inject"], records.get("revert")
    outcome = injected["outcome"]
    if reverted:
        held = _seconds(injected.get("ts"), reverted.get("ts"))
        outcome += f"; reverted{' ' + held if held else ''}: {reverted['outcome']}"
    return (cell(str(first.get("ts", "")).replace("+00:00", "")[:19]), cell(f"chaos {first['fault']}"),
            cell(first["instance"]), cell(f"{first.get('what', '')}: {outcome}"), "", "", "")


def _seconds(started, ended) -> str:
    """"after N s" between two journal timestamps, "" if either cannot be read."""
    from datetime import datetime

    try:
        return f"after {(datetime.fromisoformat(ended) - datetime.fromisoformat(started)).total_seconds():.1f} s"
    except (TypeError, ValueError):
        return ""


def _unfinished(tx: str, interrupted: set, running: str | None) -> str:
    """The outcome of a change with no end record."""
    if tx in interrupted:
        return "[red]interrupted[/]"
    return "running" if tx == running else "unfinished (a later change of its instance finished)"


@task(help={"file": HELP["file"], "rev_a": "the revision before", "rev_b": "the revision after",
            "json": HELP["json"], "ns_prefix": HELP["ns_prefix"]})
@command("diff")
def diff(c, file, rev_a, rev_b, json=False, ns_prefix=""):
    """What changing the manifest from git REV_A to REV_B will do (no kernel access)."""
    from ..kernel.nft_scratch import ScratchUnavailable, resolve
    from ..manifest.git import RevisionReader
    from ..kinds import compile_all as desired_resources
    from ..planner import diff as plan_diff

    def natives(jobs):
        try:
            return resolve(jobs)
        except ScratchUnavailable:  # compare native rules by their text instead
            return {rid: {"expr": [{"native": text}]} for job in jobs for rid, _, text in job["rules"]}

    before = load_topology(file, read=RevisionReader(rev_a, file), natives=natives)
    after = load_topology(file, read=RevisionReader(rev_b, file), natives=natives)
    changes = plan_diff(desired_resources(after, ns_prefix), desired_resources(before, ns_prefix))
    if json:
        print(machine.dumps(machine.document("diff", after, ns_prefix, changes,
                                             "in_sync" if changes.empty else "changes",
                                             rev_a=rev_a, rev_b=rev_b)))
    else:
        human.print_plan(out, changes, f"{file}: {rev_a} -> {rev_b}", ns_prefix,
                         empty="the same lab at both revisions, nothing would change")
    return 0 if changes.empty else 2


# What users run: one collection, for `invoke` and the `netkeel` script alike.
user = Collection(validate, plan, apply, drift, show, destroy, snapshots, rollback, history, diff, chaos,
                  experiment, vip, doctor, graph)
