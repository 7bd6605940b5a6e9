"""`experiment`: a steady-state hypothesis checked around a schedule of faults.

    experiment NAME|FILE [--ns-prefix P] [--plot OUT.png | --no-plot] [--json]

Exit 0 the hypothesis held (before, during and after), 2 it did not (or a
`halt` probe stopped it), 1 error or interrupted. Each run is a journal record
(`history` lists it) and a timeline plot (reports/NAME-TIME.png by default).
"""

from __future__ import annotations

import json as jsonlib
import os
import time
from pathlib import Path

from rich import box
from rich.markup import escape
from rich.table import Table

from ..errors import NetkeelError
from ..model.experiment import format_value
from ..state import StateDir
from .common import EXIT_CHANGES, EXIT_ERROR, HELP, command, err, kernel_session, out, require_root
from .invoking import task

EXPERIMENTS_DIR = "experiments"
REPORTS_DIR = "reports"


def experiment_path(name: str) -> Path:
    """experiments/NAME.yaml, or the path itself when NAME is one."""
    if "/" in name or name.endswith((".yaml", ".yml")):
        return Path(name)
    return Path(EXPERIMENTS_DIR) / f"{name}.yaml"


@task(positional=["name"], help={
    "name": "an experiment (experiments/NAME.yaml or a path)",
    "ns_prefix": "the lab's namespace prefix (default: the only applied instance of its topology)",
    "plot": "where to write the timeline plot (PNG; default reports/NAME-TIME.png)",
    "no_plot": "write no plot",
    "json": HELP["json"], "state_dir": HELP["state_dir"], "verbose": HELP["verbose"]})
@command("experiment")
def experiment(c, name, ns_prefix=None, plot=None, no_plot=False, json=False, state_dir=None, verbose=False):
    """Check a steady-state hypothesis, inject the faults on schedule, measure, revert, check again."""
    from ..experiment.record import document, journal_record
    from ..experiment.runner import Runner
    from ..manifest.experiment import load_experiment
    from ..state.leases import new_id
    from .keeper import start

    x = load_experiment(experiment_path(name))  # bad input first, before anything else
    if plot and not no_plot and os.path.lexists(plot):
        from ..core.output import refuse_output

        refuse_output(plot, "--plot")  # a symlink or FIFO there: refused now, not after the run
    require_root()
    state = StateDir(state_dir)
    say = (lambda text: None) if json else (lambda text: err.print(f"[dim]{time.strftime('%H:%M:%S')}[/] "
                                                                   f"{escape(text)}"))
    tx = new_id(f"x-{x.name}")

    def started(outcome):
        # Recorded before anything is injected, then again with the outcome: a run
        # killed outright (SIGKILL) is in the history too (found by review). Not
        # waited for long: the time would come out of the run's own budget.
        _record(state, outcome, None, journal_record, tx, pid=os.getpid(), wait_s=1)

    with kernel_session(verbose) as kernel:
        outcome = Runner(kernel, state, x, prefix=ns_prefix, start_keeper=lambda lease: start(state.root, lease),
                         say=say, on_start=started).run()
    plot_path = None if no_plot else str(plot or Path(REPORTS_DIR) / f"{x.name}-{_stamp(outcome.started)}.png")
    if plot_path:
        try:
            _draw(outcome, plot_path)
        except (OSError, ValueError, NetkeelError) as exc:
            err.print(f"[yellow]note[/]: no plot written to {escape(plot_path)}: {escape(str(exc))}")
            plot_path = None
        except KeyboardInterrupt:  # the outcome is worth more than its picture: record and report it
            err.print("[yellow]note[/]: interrupted while drawing: no plot")
            plot_path = None
            if outcome.verdict not in ("error",):
                outcome.verdict = "interrupted"
    _record(state, outcome, plot_path, journal_record, tx)
    if json:
        print(jsonlib.dumps(document(outcome, plot_path), indent=2))
    else:
        _report(outcome, plot_path)
    if outcome.verdict in ("interrupted", "error"):
        return EXIT_ERROR
    return 0 if outcome.held else EXIT_CHANGES


def _stamp(epoch: float) -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(epoch))


def _draw(outcome, path: str) -> None:
    """The timeline plot at `path`: a new file, or a regular file replaced (never a
    device, a pipe or a directory that happens to be named: netkeel runs as root)."""
    import stat

    from ..experiment.plot import timeline

    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
        raise ValueError("it exists and is not a regular file")
    if mode is not None and stat.S_ISLNK(mode):
        raise ValueError("it is a symbolic link (write the plot to where it points)")

    x = outcome.experiment
    windows = [(f"{f.name}: {f.scheduled.fault.text()}", f.injected, f.reverted)
               for f in outcome.faults if f.injected is not None]
    series = [(f"{run.probe.name} ({run.phase})", run.probe.kind, run.samples) for run in outcome.probes()]
    timeline(path, f"experiment {x.name} on {outcome.instance}: {outcome.verdict}", outcome.started,
             outcome.phases, windows, series)


def _record(state: StateDir, outcome, plot_path, journal_record, tx: str, pid: int | None = None,
            wait_s: float = 30) -> None:
    """The run's journal record (`tx`: its start's, with `pid`, is replaced by its
    outcome's), under the state lock (briefly: an experiment does not hold it
    while it runs, so applies and drift checks go on), waited for `wait_s`."""
    from ..state.journal import Journal
    from ..state.lock import StateLock

    try:
        with StateLock(state, wait=True, timeout=wait_s):
            Journal(state).append({**journal_record(outcome, tx, plot_path), **({"pid": pid} if pid else {})})
    except (NetkeelError, OSError) as exc:
        what = "its start was not recorded" if pid else "the experiment was not recorded"
        err.print(f"[yellow]note[/]: {what} in the journal: {escape(str(exc))}")


# -- the report ------------------------------------------------------------------------

VERDICTS = {"held": "[bold green]HELD[/]", "not held": "[bold red]NOT HELD[/]",
            "not held before": "[bold yellow]NOT HELD BEFORE: nothing injected[/]",
            "halted": "[bold red]HALTED[/]", "interrupted": "[bold red]INTERRUPTED[/]", "error": "[bold red]ERROR[/]"}


def _report(outcome, plot_path) -> None:
    x = outcome.experiment
    out.print(f"experiment [bold]{escape(x.name)}[/] on {escape(outcome.instance)}: "
              f"{VERDICTS.get(outcome.verdict, outcome.verdict)}")
    if x.description:
        out.print(f"  {escape(x.description)}")
    origin = outcome.started
    for phase, runs in (("steady state before", outcome.before), ("during the faults", outcome.during),
                        ("steady state after", outcome.after)):
        if runs:
            out.print(_probe_table(phase, runs, origin))
    if outcome.faults:
        out.print(_fault_table(outcome, origin))
    for reason in outcome.reasons:
        out.print(f"  [yellow]-[/] {escape(reason)}", soft_wrap=True)
    if plot_path:
        out.print(f"  timeline plot: {escape(os.path.abspath(plot_path))}")


def _probe_table(title: str, runs: list, origin: float) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("probe", "from -> to", "declared", "measured", "result"):
        table.add_column(column, overflow="fold")
    for run in runs:
        p = run.probe
        to = " ".join(p.command) if p.kind == "command" else f"{run.address}" + (f":{p.port}" if p.port else "")
        where = f"{p.kind} {p.node} -> {to}"
        if run.window is not None:
            where += f"\n(judged within {p.within}: +{run.window[0] - origin:.2f}..+{run.window[1] - origin:.2f} s)"
        declared = "\n".join(f"{b.metric} {b.text}" for b in p.expect) or "(measure only)"
        measured = "\n".join(f"{b.metric} {format_value(v, b.metric)}" for b, v, _ in run.results) \
            or _summary(run.measured)
        result = "[green]pass[/]" if run.passed else "[red]FAIL[/]" + (f": {escape(run.error)}" if run.error else "")
        table.add_row(escape(p.name), escape(where), escape(declared), escape(measured), result)
    return table


def _fault_table(outcome, origin: float) -> Table:
    table = Table(title="faults", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("fault", "declared", "in place", "backends", "measured inside its window"):
        table.add_column(column, overflow="fold")
    phase = next((start for label, start, _ in outcome.phases if label == "faults"), origin)
    for f in outcome.faults:
        s = f.scheduled
        declared = f"{s.fault.text()}\n+{phase - origin + s.start_ms / 1000:.2f} s .. " \
                   f"+{phase - origin + s.end_ms / 1000:.2f} s"
        if f.injected is None:
            placed = "[red]never[/]" + (f": {escape(f.error)}" if f.error else "")
        else:
            end = f"+{f.reverted - origin:.2f} s" if f.reverted else "?"
            placed = f"+{f.injected - origin:.2f} s .. {end}"
        effects = "\n".join(f"{name}: {_summary(metrics)}" for name, metrics in f.effects.items())
        table.add_row(escape(f.name), escape(declared), placed,
                      escape(", ".join(f"{k} by {b}" for k, b in f.backends)), escape(effects))
    return table


SUMMARY = ("loss", "failed", "stale", "out_of_order", "rtt_p50", "rtt_p99", "connect_p50", "goodput")


def _summary(metrics: dict) -> str:
    return ", ".join(f"{k} {format_value(metrics[k], k)}" for k in SUMMARY if metrics.get(k) is not None)

