"""The reconcile commands: validate, plan, apply, drift, show, destroy.

Their bodies, as plain functions: tasks.py makes them invoke tasks (`invoke
apply FILE`, the `netkeel` script), and program.py runs a plain command line
(`netkeel drift FILE --ns-prefix P`) by calling one of them directly, without
importing invoke (run_plain). Either way the same body runs."""

from __future__ import annotations

from contextlib import contextmanager

from rich.markup import escape

from ..core.action import Plan
from ..core.children import Behind
from ..errors import NetkeelError
from ..kinds.netns import names as namespace_names
from ..runtime.execute import steps
from ..report import HEADING, human, IN_SYNC, machine, title as report_title
from ..state import StateDir
from ..state.inventory import instance_id
from .common import (EXIT_CHANGES, command, err, expire_faults, faults_recorded, kernel_session, out, require_root,
                     warn_interrupted)
from .quick import in_sync

PROGRESS_THRESHOLD = 50  # steps; below this an apply is over before a bar helps


@contextmanager
def _reconciler(file, ns_prefix, state_dir, verbose, rev=None, wait=False, full=False, read_only=False):
    """The manifest (as of git revision `rev`, if given) loaded and checked (bad
    input is reported before anything else, root or not), then a reconciler on a
    kernel session. Unchanged files compiled before come from the compile cache
    (state/compiled.py); `full` ignores what is remembered (that cache and the
    nftables read memo) and reads everything afresh."""
    import os

    from ..manifest.git import RevisionReader, repo_info
    from ..runtime.engine import Reconciler

    if rev is not None and not rev.strip():  # as an empty --state-dir is: never the working tree by mistake
        raise NetkeelError("--rev is empty: name a git revision (a commit, a tag, HEAD~1), or leave the option out")
    state = StateDir(state_dir)
    revision = RevisionReader(rev, file) if rev else None
    compiled = None if rev or full else _cached(state, file, ns_prefix)
    keep = None
    if compiled is None:
        compiled, keep = _compile(state, file, ns_prefix, revision, remembered=not full)
        keep = keep if os.geteuid() == 0 else None  # (the state directory is root's: nothing to keep)
    # The caches are written while the command goes on (a child: core/children.Behind),
    # forked before the lock is taken or a kernel session opened; into a state
    # directory the command itself makes (a first apply), once it exists, after.
    behind = Behind(keep) if keep is not None and state.root.is_dir() else None
    try:
        require_root()
        warn_interrupted(state)
        if read_only and not state.root.exists():  # a plan or drift makes nothing there (a mistyped -s?)
            err.print(f"[yellow]note[/]: state directory {escape(str(state.root))} does not exist: no lab was "
                      "applied with it, and nothing is written there", soft_wrap=True)
        with kernel_session(verbose, state, full=full) as kernel:
            git = revision.info() if rev else (lambda: repo_info([p for p, _ in compiled.files]))
            faults = active_faults(kernel, state, instance_id(compiled.name, ns_prefix))
            yield Reconciler(compiled, kernel, state, prefix=ns_prefix, wait=wait, git=git, claims=faults)
        if keep is not None and behind is None:
            keep()  # (only into a state directory that exists by now)
    finally:
        if behind is not None:
            behind.wait()


def _cached(state, file, prefix):
    """The compiled topology from the compile cache, if its files are unchanged (root only:
    the cache is in the state directory)."""
    import os

    from ..manifest.files import no_longer_readable, read_file
    from ..state.compiled import CompileCache

    return CompileCache(state, read_file, no_longer_readable).lookup(file, prefix) if os.geteuid() == 0 else None


def _compile(state, file, prefix, revision, remembered=True):
    """Load, check and compile the manifest (from a git revision if `revision`); bad
    input raises ManifestError with every problem, before root is asked for.
    (compiled, a call that keeps it or None): a manifest read from the working
    tree is to be kept in the compile cache, and its policy files' reads
    (state/policy_loads.py: with `remembered`, an edited policy file is read
    again only where it changed); the call writes only into a state directory
    that exists (a first apply makes it: keep them after it, or the command
    after it finds nothing cached, a 10,000-rule policy compiled again, 2-3 s)."""
    import os
    from dataclasses import replace

    from ..errors import ManifestError
    from ..kinds import compile_topology
    from ..manifest import load_topology  # (a compiled manifest from the cache needs no loader)
    from ..manifest.files import read_file
    from ..manifest.policy import resolve_native_rules
    from ..manifest.policy_edit import PolicyReader
    from ..state.compiled import CompileCache, Recorder
    from ..state.policy_loads import PolicyLoads

    recorder = Recorder(revision or read_file)
    # Policy files read before are read again only where they changed (never from a revision).
    kept = PolicyLoads(state) if revision is None and os.geteuid() == 0 else None
    policies = PolicyReader(kept.kept, kept.used) if kept is not None and remembered else PolicyReader()
    topology = load_topology(file, read=recorder, policies=policies.load)  # bad input first
    require_root()
    if any(r.native for n in topology.nodes for t in n.tables for c in t.chains for r in c.rules):
        topology, problems = resolve_native_rules(topology, native_resolver)  # no second parse
        if problems:
            raise ManifestError(problems)
    compiled = replace(compile_topology(topology, prefix), reads=dict(recorder.reads) if revision is None else {})
    if revision is not None:
        return compiled, None

    def keep():
        CompileCache(state, read_file).store(file, prefix, compiled, recorder.reads)
        if kept is not None:
            kept.keep(policies.made)

    return compiled, keep


def _keep_verdict(rec) -> None:
    """After a whole comparison found the instance in sync: the next drift or
    no-op apply of the same files can say so at once (cli/quick.py)."""
    from ..experiment import trial as trials

    rec.keep_verdict(lambda: any(t.state in trials.OPEN for t in trials.all_trials(rec.state)))


def active_faults(kernel, state, instance: str):
    """Revert the faults whose time is up (any command does); then, as a function
    asked at each read, the claims of those active on this instance: their
    objects are theirs, not drift."""
    expire_faults(kernel, state)
    return lambda: _claims(state, instance)


def end_faults(kernel, state, instance: str) -> None:
    """Revert the faults active on an instance (before it is destroyed)."""
    from ..chaos import engine

    for lease in engine.active(state, instance):
        engine.revert(kernel, state, lease.id, why="its lab was destroyed")


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
    return report_title(topology.name, prefix)


@command("validate")
def validate(c, file):
    """Check a manifest (schema and semantics) without touching the kernel."""
    from ..kernel.nft_scratch import resolve, ScratchUnavailable
    from ..manifest import load_topology

    def natives(jobs):
        try:
            return resolve(jobs)  # in a throwaway namespace: the machine's are not touched
        except ScratchUnavailable as exc:
            err.print(f"[yellow]note[/]: native nft rules not checked ({exc}); run as root to check them")
            return {}

    topology = load_topology(file, natives=natives)
    links = sum(1 for n in topology.nodes for i in n.interfaces if i.kind == "veth") // 2
    out.print(f"{file}: valid ({len(topology.nodes)} nodes, {links} links)")


@command("plan")
def plan(c, file, json=False, ns_prefix="", state_dir=None, verbose=False, rev=None):
    """Show the ordered actions apply would take (exit 2 when changes are pending)."""
    if not (json or verbose or rev is not None):
        title = in_sync("plan", file, ns_prefix, state_dir)  # a verdict says there is nothing to do
        if title is not None:
            human.print_plan(out, Plan(), HEADING["plan"].format(escape(title)), ns_prefix)
            return 0
    with _reconciler(file, ns_prefix, state_dir, verbose, rev, read_only=True) as rec:
        the_plan, _ = rec.plan()
        if not the_plan.empty and rev is None:
            rec.forget_verdict()
        for ns, why in rec.prove_firewall(the_plan):
            err.print(f"[yellow]warning[/]: nftables in {escape(ns)}: the kernel refused the new tables in a "
                      f"throwaway namespace ({escape(why)}); apply will meet the same refusal", soft_wrap=True)
    if json:
        _print_json("plan", rec, the_plan, "in_sync" if the_plan.empty else "changes",
                    requests=len(steps(the_plan)))
    else:
        human.print_plan(out, the_plan, HEADING["plan"].format(_title(rec.topology, ns_prefix)), ns_prefix)
    return 0 if the_plan.empty else EXIT_CHANGES


@command("apply")
def apply(c, file, json=False, ns_prefix="", state_dir=None, verbose=False, rev=None, wait=False, try_=None,
          probe=None, confirm=False):
    """Converge the kernel to the manifest, verify; on any failure restore the snapshot.

    A snapshot of the live state is taken first (see `snapshots`, `rollback`).
    With --try, the change stays only if its probes pass (netplan try, with probes)."""
    trying = _trial_inputs(file, try_, probe, confirm, json)  # bad input first
    if not (json or verbose or rev is not None or trying):
        title = in_sync("apply", file, ns_prefix, state_dir)  # a verdict says nothing is to be done
        if title is not None:
            out.print(f"[bold]{escape(title)}[/]: {IN_SYNC['apply']}.")
            return 0
    trial = None
    with _reconciler(file, ns_prefix, state_dir, verbose, rev, wait) as rec:
        if trying:
            # The trial and its guard exist before anything changes: a command killed
            # in the middle of its apply is rolled back too.
            trial = _open_trial(rec, trying)
        try:
            with rec.locked():
                result = rec.apply() if json else _apply_with_progress(rec, ns_prefix)
        except BaseException:
            if trial is not None:
                _close_unapplied(rec.state, trial)
            raise
    if json and not trying:
        _print_json("apply", rec, result.plan, "in_sync" if result.plan.empty else "applied",
                    steps=result.steps, snapshot=result.snapshot)
        _keep_verdict(rec)
    elif result.plan.empty:
        if trial is None:
            _keep_verdict(rec)
        else:
            _close_unapplied(rec.state, trial, "nothing changed: nothing to try")
        if json:
            _print_json("apply", rec, result.plan, "in_sync", steps=0, snapshot=None, trial="nothing to try")
        else:
            out.print(f"[bold]{_title(rec.topology, ns_prefix)}[/]: {IN_SYNC['apply']}"
                      + (" (nothing to try)." if trying else "."))
    else:
        if not json:
            out.print(f"[green]applied[/] {result.steps} kernel request(s); verified: the kernel matches the "
                      "manifest.")
            out.print(f"Snapshot before it: {result.snapshot} (`rollback` returns there).")
        if trying:
            return _try(rec, result, trial, trying, json, verbose)
        _keep_verdict(rec)
    return 0


def _open_trial(rec, trying):
    """The trial of this apply, on file, with its guard running. Raises NetkeelError
    (nothing changed) for probes of another topology, or another trial of this
    instance still open."""
    from ..experiment import trial as trials
    from .trialguard import start as start_guard

    window_s, experiment, _ = trying
    if experiment is not None and experiment.topology != rec.topology.name:
        raise NetkeelError(f"--probe {experiment.source} is for topology {experiment.topology}, "
                           f"not {rec.topology.name}")
    others = trials.pending(rec.state, rec.instance)
    if others:
        raise NetkeelError(f"{rec.instance} has a change on trial already ({others[0].id}, pid {others[0].pid}): "
                           "one at a time; wait until it is kept or rolled back")
    trial = trials.new(rec.instance, window_s)
    trials.save(rec.state, trial)
    trial.guard = start_guard(rec.state.root, trial.id)
    trials.save(rec.state, trial)
    return trial


def _close_unapplied(state, trial, why: str = "the apply did not complete (it restored what it had changed)"):
    """An apply that changed nothing, or failed (and restored its snapshot itself):
    nothing is on trial. Its guard sees the trial settled and leaves."""
    from ..experiment import trial as trials

    with trials.locked(state, trial.id):
        current = trials.load(state, trial.id)
        if current is not None and current.state == "applying":
            current.state, current.note = "not applied", why
            trials.save(state, current)


def _trial_inputs(file, try_, probe, confirm, as_json):
    """(window seconds, experiment or None, confirm) for --try, checked before anything
    is changed; None without --try."""

    if try_ is None:
        if probe or confirm:
            raise NetkeelError("--probe and --confirm go with --try TIME")
        return None
    from ..manifest.experiment import load_experiment
    from .chaos import parse_duration
    from .experiment import experiment_path

    window_s = parse_duration(try_, "--try") / 1000
    if not probe and not confirm:
        raise NetkeelError("--try needs something to decide: --probe experiments/NAME.yaml, --confirm, or both")
    if confirm and as_json:
        raise NetkeelError("--confirm asks on the terminal: not with --json")
    experiment = load_experiment(experiment_path(probe)) if probe else None
    if experiment is not None:
        longest = max(p.budget_ms() for p in experiment.steady_state) / 1000
        if longest >= window_s:
            raise NetkeelError(f"--try {try_}: the probes of {experiment.source} can take {longest:.1f} s; "
                               "give them more time than that")
    return window_s, experiment, confirm


def _try(rec, result, trial, trying, as_json, verbose) -> int:
    """The change is in; keep it only if it proves itself in time, else roll back."""
    import time

    from ..core.interrupts import uninterrupted
    from ..experiment import trial as trials
    from ..experiment.runner import Runner

    _, experiment, confirm = trying
    state = rec.state
    runs, verdict = [], None
    claims = lambda instance: _claims(state, instance)
    with kernel_session(verbose) as kernel:
        try:
            if not trials.applied(state, trial, result.snapshot):
                verdict = "its guard settled it while it was being applied"
            if verdict is None and experiment is not None:
                say = (lambda text: None) if as_json else (lambda text: err.print(f"[dim]try:[/] {text}"))
                runs = Runner(kernel, state, experiment, prefix=rec.prefix, say=say).check("try", trial.deadline)
                failed = [r for r in runs if not r.passed]
                if failed:
                    verdict = "probes failed: " + "; ".join(r.probe.name for r in failed)
            if verdict is None and time.time() > trial.deadline:
                verdict = "the probes took longer than the time given"
            if verdict is None and confirm:
                verdict = _unconfirmed(trial.deadline)
            if verdict is None:
                trial = trials.keep(state, trial)
                if trial.state != "kept":
                    verdict = f"too late: the trial was {trial.state} meanwhile ({trial.note})"
        except KeyboardInterrupt:
            verdict = "interrupted"
        except Exception as exc:  # the probes could not run: the change has not proved itself
            verdict = f"the probes could not run: {exc}"
        if verdict is not None and trial.state in trials.OPEN:
            # Asked to stop, or failed: the rollback finishes first (a second
            # Ctrl-C waits), or the change would stay with nobody to undo it.
            with uninterrupted():
                trial = trials.roll_back(kernel, state, trial, verdict, claims)
    if as_json:
        from ..experiment.record import probe_record

        print(machine.dumps(machine.document("apply", rec.topology, rec.prefix, result.plan,
                                             "kept" if trial.state == "kept" else "rolled_back"
                                             if trial.state == "rolled back" else trial.state.replace(" ", "_"),
                                             steps=result.steps, snapshot=result.snapshot, trial={
                                                 "id": trial.id, "outcome": trial.state, "why": verdict,
                                                 "note": trial.note,
                                                 "probes": [probe_record(r, lambda t: t) for r in runs]})))
    else:
        for run in runs:
            mark = "[green]pass[/]" if run.passed else "[red]FAIL[/]"
            out.print(f"  probe {run.probe.name}: {mark}")
        if trial.state == "kept":
            out.print(f"[green]kept[/]: the change proved itself ({trial.id}).")
        elif trial.state == "rolled back":
            out.print(f"[red]rolled back[/] to {escape(str(trial.snapshot))}: {escape(trial.note)}; verified.")
        else:  # (a note may hold what was typed at the prompt: escaped, found by review)
            out.print(f"[yellow]{escape(trial.state)}[/]: {escape(verdict or '')} ({escape(trial.note)})")
    return 0 if trial.state == "kept" else EXIT_CHANGES


def _claims(state, instance) -> list:
    if not faults_recorded(state):
        return []  # (asked at each read: a fault injected meanwhile is found then)
    from ..chaos import engine

    return engine.claims(state, instance)


def _unconfirmed(deadline: float) -> str | None:
    """Ask on the terminal: None for a yes before the deadline, else why the change is not kept."""
    import select
    import sys
    import time

    left = deadline - time.time()
    if left <= 0:
        return "not confirmed in time"
    err.print(f"keep this change? type yes and Enter within {left:.0f} s (anything else, or nothing, rolls back)")
    ready, _, _ = select.select([sys.stdin], [], [], left)
    if not ready:
        return "not confirmed in time"
    answer = sys.stdin.readline()
    if not answer:  # (a background job's /dev/null, a closed pipe: said as it is, found by review)
        return "no answer could come: standard input was closed (not a terminal?)"
    return None if answer.strip().lower() in ("y", "yes") else f"answered {answer.strip()[:40]!r}, not yes"


def _apply_with_progress(rec, prefix):
    """Print the plan, then apply it, with a progress bar on a terminal for long plans."""
    planned = rec.plan()
    if planned[0].empty:
        return rec.apply(planned=planned)
    human.print_plan(out, planned[0], f"applying {_title(rec.topology, prefix)}", prefix)
    total = len(steps(planned[0]))
    if total < PROGRESS_THRESHOLD or not err.is_terminal:
        return rec.apply(planned=planned)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("applying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        job = bar.add_task("apply", total=total)
        return rec.apply(planned=planned,
                         on_step=lambda done, total, step: bar.update(job, completed=done, total=total))


@command("drift")
def drift(c, file, json=False, ns_prefix="", state_dir=None, verbose=False, junit=None, full=False, rev=None):
    """Compare the kernel to the manifest: exit 0 in sync, 2 drifted, 1 error."""
    if not (json or verbose or junit or full or rev is not None):
        title = in_sync("drift", file, ns_prefix, state_dir)  # a verdict says nothing changed
        if title is not None:
            human.print_drift(out, Plan(), HEADING["drift"].format(escape(title)), ns_prefix)
            return 0
    try:
        with _reconciler(file, ns_prefix, state_dir, verbose, rev, full=full, read_only=True) as rec:
            found = rec.drift(by_text=not full)  # --full: the whole ruleset listed as JSON, no shortcut
            if found.clean:
                _keep_verdict(rec)  # never for a revision (engine.keep_verdict)
            elif rev is None:
                rec.forget_verdict()
    except NetkeelError as exc:
        if junit:
            from ..report.junit import error_report

            _write_report(junit, error_report(file, exc))
        raise
    if junit:
        from ..report.junit import drift_report

        nodes = list(rec.topology.node_names)
        _write_report(junit, drift_report(rec.topology.name, nodes, found.plan, found.unmanaged, ns_prefix))
    if json:
        _print_json("drift", rec, found.plan, "in_sync" if found.clean else "drift",
                    unmanaged=[machine.unmanaged_record(r, ns_prefix) for r in found.unmanaged],
                    overlays=list(found.overlays))
    else:
        human.print_drift(out, found.plan, HEADING["drift"].format(_title(rec.topology, ns_prefix)), ns_prefix,
                          found.unmanaged, found.overlays)
    return 0 if found.clean else EXIT_CHANGES


def _write_report(path: str, text: str) -> None:
    """The JUnit report, written as graphs are (core/output.py): a symlink left
    at the path in /tmp is replaced, never written through as root."""
    from ..core.output import write_output

    write_output(path, text.encode(), "--junit")


@command("show")
def show(c, file, ns_prefix="", state_dir=None, verbose=False):
    """Show the live state of the topology's nodes as tables."""
    with _reconciler(file, ns_prefix, state_dir, verbose, read_only=True) as rec:
        live = rec.read()
    human.print_live(out, live, f"live state of {_title(rec.topology, ns_prefix)}", ns_prefix)


@command("destroy")
def destroy(c, file, json=False, ns_prefix="", state_dir=None, verbose=False, wait=False, rev=None):
    """Remove every namespace the topology owns (and all inside them); nothing else."""
    # --rev: a lab applied from a revision is destroyed by it, whatever the working
    # tree's manifest has become meanwhile (an invalid one stopped it, found by review).
    with _reconciler(file, ns_prefix, state_dir, verbose, rev, wait=wait) as rec:
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


def run_plain(command_name: str, file: str, ns_prefix: str, state_dir) -> int:
    """`netkeel COMMAND FILE [--ns-prefix P] [--state-dir D]`, COMMAND one of
    this module's (the plain forms quick.parse reads: validate takes the file
    alone): the command's body run directly, its exit code returned. What
    invoke would do for such a line is only to call the same body with these
    arguments; not importing it saves every such command a tenth of a second
    (the framework, with its YAML reader, unittest.mock and asyncio, imported
    for a parse of three words)."""
    body = {"validate": validate, "plan": plan, "apply": apply, "drift": drift, "show": show,
            "destroy": destroy}[command_name]
    try:
        if command_name == "validate":
            body(None, file)
        else:
            body(None, file, ns_prefix=ns_prefix, state_dir=state_dir)
    except SystemExit as exc:
        return exc.code
    except KeyboardInterrupt:
        # Past the body's own handling (its SIGTERM handler is still in place a
        # moment after it returns): exit 1 without a word, as invoke's Program
        # does there, not "interrupted" after a verified apply (found by review).
        return 1
    return 0
