"""The netkeel tasks. The same collection runs as `invoke <task>` from the repo
root and as the installed `netkeel <task>` script (see program.py)."""

from __future__ import annotations

from contextlib import contextmanager

from invoke import task
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..kinds.netns import names as namespace_names
from ..manifest import load_topology
from ..runtime.execute import steps
from ..report import human, machine
from ..state import StateDir
from ..state.inventory import instance_id
from .common import (EXIT_CHANGES, HELP, HELP_REV, HELP_WAIT, command, err, kernel_session, out,
                     require_root, warn_interrupted)

PROGRESS_THRESHOLD = 50  # steps; below this an apply is over before a bar helps


@contextmanager
def _reconciler(file, ns_prefix, state_dir, verbose, rev=None, wait=False):
    """The manifest (as of git revision `rev`, if given) loaded and checked (bad
    input is reported before anything else, root or not), then a reconciler on a
    kernel session."""
    from ..errors import ManifestError
    from ..manifest.git import RevisionReader
    from ..manifest.policy import resolve_native_rules
    from ..manifest.topology import read_file
    from ..manifest.git import repo_info
    from ..runtime.engine import Reconciler

    reader = RevisionReader(rev, file) if rev else read_file
    topology = load_topology(file, read=reader)  # bad input first, before any kernel work
    require_root()
    if any(r.native for n in topology.nodes for t in n.tables for c in t.chains for r in c.rules):
        topology, problems = resolve_native_rules(topology, native_resolver)  # no second parse
        if problems:
            raise ManifestError(problems)
    state = StateDir(state_dir)
    warn_interrupted(state)
    with kernel_session(verbose) as kernel:
        git = reader.info() if rev else (lambda: repo_info([p for p, _ in topology.files]))
        faults = active_faults(kernel, state, instance_id(topology.name, ns_prefix))
        yield Reconciler(topology, kernel, state, prefix=ns_prefix, wait=wait, git=git, claims=faults)


def active_faults(kernel, state, instance: str):
    """Revert the faults whose time is up (any command does); then, as a function
    asked at each read, the claims of those active on this instance: their
    objects are theirs, not drift."""
    from ..chaos import engine

    engine.expire(kernel, state)
    return lambda: engine.claims(state, instance)


def end_faults(kernel, state, instance: str) -> None:
    """Revert the faults active on an instance (before it is destroyed)."""
    from ..chaos import engine

    for lease in engine.active(state, instance):
        engine.revert(kernel, state, lease.id)


def native_resolver(jobs):
    """Resolve native nft rules in a scratch namespace (see kernel/nft_scratch)."""
    from ..errors import KernelError
    from ..kernel import nft_scratch

    try:
        return nft_scratch.resolve(jobs)
    except nft_scratch.ScratchUnavailable as exc:
        raise KernelError("check native nft rules in a scratch namespace", str(exc)) from None


def _print_json(command: str, rec, plan, outcome: str, **extra) -> None:
    print(machine.dumps(machine.document(command, rec.topology, rec.prefix, plan, outcome, **extra)))


def _title(topology, prefix: str) -> str:
    return f"{topology.name}" + (f" (prefix {prefix})" if prefix else "")


@task(help={"file": HELP["file"]})
@command("validate")
def validate(c, file):
    """Check a manifest (schema and semantics) without touching the kernel."""
    from ..kernel.nft_scratch import resolve, ScratchUnavailable

    def natives(jobs):
        try:
            return resolve(jobs)  # in a throwaway namespace: the machine's are not touched
        except ScratchUnavailable as exc:
            err.print(f"[yellow]note[/]: native nft rules not checked ({exc}); run as root to check them")
            return {}

    topology = load_topology(file, natives=natives)
    links = sum(1 for n in topology.nodes for i in n.interfaces if i.kind == "veth") // 2
    out.print(f"{file}: valid ({len(topology.nodes)} nodes, {links} links)")


@task(help=dict(HELP, rev=HELP_REV))
@command("plan")
def plan(c, file, json=False, ns_prefix="", state_dir=None, verbose=False, rev=None):
    """Show the ordered actions apply would take (exit 2 when changes are pending)."""
    with _reconciler(file, ns_prefix, state_dir, verbose, rev) as rec:
        the_plan, _ = rec.plan()
    if json:
        _print_json("plan", rec, the_plan, "in_sync" if the_plan.empty else "changes",
                    requests=len(steps(the_plan)))
    else:
        human.print_plan(out, the_plan, f"plan for {_title(rec.topology, ns_prefix)}", ns_prefix)
    return 0 if the_plan.empty else EXIT_CHANGES


@task(help=dict(HELP, rev=HELP_REV, wait=HELP_WAIT))
@command("apply")
def apply(c, file, json=False, ns_prefix="", state_dir=None, verbose=False, rev=None, wait=False):
    """Converge the kernel to the manifest, verify; on any failure restore the snapshot.

    A snapshot of the live state is taken first (see `snapshots`, `rollback`)."""
    with _reconciler(file, ns_prefix, state_dir, verbose, rev, wait) as rec:
        with rec.locked():
            result = rec.apply() if json else _apply_with_progress(rec, ns_prefix)
    if json:
        _print_json("apply", rec, result.plan, "in_sync" if result.plan.empty else "applied",
                    steps=result.steps, snapshot=result.snapshot)
    elif result.plan.empty:
        out.print(f"[bold]{_title(rec.topology, ns_prefix)}[/]: already in sync, nothing changed.")
    else:
        out.print(f"[green]applied[/] {result.steps} kernel request(s); verified: the kernel matches the manifest. "
                  f"Snapshot before it: {result.snapshot} (`rollback` returns there).")


def _apply_with_progress(rec, prefix):
    """Print the plan, then apply it, with a progress bar on a terminal for long plans."""
    planned = rec.plan()
    if planned[0].empty:
        return rec.apply(planned=planned)
    human.print_plan(out, planned[0], f"applying {_title(rec.topology, prefix)}", prefix)
    total = len(steps(planned[0]))
    if total < PROGRESS_THRESHOLD or not err.is_terminal:
        return rec.apply(planned=planned)
    columns = (TextColumn("applying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        job = bar.add_task("apply", total=total)
        return rec.apply(planned=planned,
                         on_step=lambda done, total, step: bar.update(job, completed=done, total=total))


@task(help=dict(HELP, junit="also write the result as a JUnit XML report to this file (for CI)"))
@command("drift")
def drift(c, file, json=False, ns_prefix="", state_dir=None, verbose=False, junit=None):
    """Compare the kernel to the manifest: exit 0 in sync, 2 drifted, 1 error."""
    with _reconciler(file, ns_prefix, state_dir, verbose) as rec:
        found = rec.drift()
    if junit:
        from ..report.junit import drift_report

        nodes = [n.name for n in rec.topology.nodes]
        with open(junit, "w") as report:
            report.write(drift_report(rec.topology.name, nodes, found.plan, found.unmanaged, ns_prefix))
    if json:
        _print_json("drift", rec, found.plan, "in_sync" if found.clean else "drift",
                    unmanaged=[machine.unmanaged_record(r, ns_prefix) for r in found.unmanaged],
                    overlays=list(found.overlays))
    else:
        human.print_drift(out, found.plan, f"drift of {_title(rec.topology, ns_prefix)}", ns_prefix,
                          found.unmanaged, found.overlays)
    return 0 if found.clean else EXIT_CHANGES


@task(help={k: HELP[k] for k in ("file", "ns_prefix", "state_dir", "verbose")})
@command("show")
def show(c, file, ns_prefix="", state_dir=None, verbose=False):
    """Show the live state of the topology's nodes as tables."""
    with _reconciler(file, ns_prefix, state_dir, verbose) as rec:
        live = rec.read()
    human.print_live(out, live, f"live state of {_title(rec.topology, ns_prefix)}", ns_prefix)


@task(help=dict(HELP, wait=HELP_WAIT))
@command("destroy")
def destroy(c, file, json=False, ns_prefix="", state_dir=None, verbose=False, wait=False):
    """Remove every namespace the topology owns (and all inside them); nothing else."""
    with _reconciler(file, ns_prefix, state_dir, verbose, wait=wait) as rec:
        end_faults(rec.kernel, rec.state, rec.instance)  # they would outlive the lab otherwise
        result = rec.destroy()
    if json:
        _print_json("destroy", rec, result.plan, "destroyed" if result.steps else "in_sync")
    else:
        removed = sorted(namespace_names(a.resource for a in result.plan.actions))
        if removed:
            out.print(f"[bold]{_title(rec.topology, ns_prefix)}[/]: removed {len(removed)} namespace(s): "
                      + ", ".join(removed))
        else:
            out.print(f"[bold]{_title(rec.topology, ns_prefix)}[/]: nothing to remove.")


# What users run is assembled in history.py (which adds rollback and friends);
# the development tasks (demo, test, bench) in dev.py.
