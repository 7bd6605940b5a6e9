"""What every task shares: option help, the kernel session, errors -> exit codes.

Exit codes everywhere: 0 success / in sync, 2 changes pending or drift,
1 error (bad input, kernel refusal, verification failure).
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from contextlib import contextmanager

from rich.console import Console, RenderHook
from rich.markup import escape
from rich.segment import Segment

from ..core.escapes import escape_controls
from ..errors import ApplyError, KernelError, ManifestError, NetkeelError
from ..report import machine, shown

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2
# Commands that change nothing: interrupted, they have nothing to restore.
READ_ONLY = {"validate", "plan", "drift", "show", "snapshots", "history", "diff", "doctor", "graph", "vip"}

HELP = {
    "file": "topology manifest (YAML)",
    "json": "print a machine-readable JSON document instead of tables",
    "ns_prefix": "prefix for every namespace name, to run a topology side by side (default: none)",
    "state_dir": "state directory (default: $NETKEEL_STATE_DIR or /var/lib/netkeel)",
    "verbose": "show each kernel request as it is made",
}

# The short flags every command shares mean the same everywhere (invoke would
# give each option the first letter still free, so `-s` was --state-dir for
# drift and --ns-prefix for chaos); no other option of any command takes them.
SHORT_FLAGS = {"file": "f", "json": "j", "ns_prefix": "n", "state_dir": "s", "verbose": "v"}
HELP_REV = "use the manifest (and its policy files) as of this git revision, read with git"
HELP_WAIT = "wait for another netkeel's change to finish instead of failing at once"


cell = shown  # a value from a file or the kernel, for a table cell or a message (report.shown)


class _Escaped:
    """A renderable whose text has its control characters written as escapes."""

    def __init__(self, renderable):
        self.renderable = renderable

    def __rich_console__(self, console, options):
        for segment in console.render(self.renderable, options):
            text = segment.text
            if segment.control is None and text and not text.replace("\n", "").isprintable():
                segment = Segment(escape_controls(text, keep="\n"), segment.style)
            yield segment


class _EscapeControls(RenderHook):
    """Names read from the kernel, the journal or a lease (an interface called
    `x<ESC>[31my`, a fault's name) reach tables and messages: their control
    characters are shown as escapes, never sent to the terminal, while rich's own
    colours still are."""

    def process_renderables(self, renderables):
        return [_Escaped(r) for r in renderables]


# emoji off: `:cd:` in a MAC address is not a compact disc. Off a terminal (CI
# logs, pipes) rich would assume 80 columns; tables read better wider, and
# nothing downstream wraps them again.
out = Console(highlight=False, emoji=False, width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True, highlight=False, emoji=False, width=None if sys.stderr.isatty() else 140)
for _console in (out, err):
    _console.push_render_hook(_EscapeControls())


def require_root() -> None:
    if os.geteuid() != 0:
        raise NetkeelError("this command works on network namespaces and needs root "
                           "(CAP_SYS_ADMIN and CAP_NET_ADMIN)")


def report_error(name: str, error: BaseException, as_json: bool) -> None:
    if as_json:
        print(machine.dumps(machine.error_document(name, error)))
        return
    if isinstance(error, ManifestError):
        count = len(error.problems)
        err.print(f"[bold red]invalid {escape(error.what)}[/]: {count} problem{'s' if count != 1 else ''}")
        for problem in error.problems:
            # Plain, unwrapped lines: editors and CI parse FILE:LINE: prefixes.
            print(problem, file=sys.stderr)
    elif isinstance(error, ApplyError):
        err.print(f"[bold red]{name} failed[/] at: {escape(str(error.failed))}")
        err.print(f"  {_cause_line(error.cause)}")
        before = "the pre-apply state" if name == "apply" else f"the state before the {name}"
        if error.restored:
            err.print(f"  [green]{before} was restored and verified[/]")
        else:
            err.print(f"  [bold red]restoring {before} failed[/]: {escape(str(error.restore_error))}")
    else:
        err.print(f"[bold red]error[/]: {escape(str(error))}")


def _cause_line(cause) -> str:
    """Why a change stopped, as one line: the kernel's words, or the signal."""
    if isinstance(cause, KeyboardInterrupt):
        return "cut off by Ctrl-C or SIGTERM"
    text = escape(str(cause)) or type(cause).__name__
    return f"kernel said: {text}" if isinstance(cause, KernelError) else text


def command(name: str):
    """Decorate a task body: NetkeelError -> message and exit 1; returned int -> exit code."""
    def wrap(fn):
        @functools.wraps(fn)
        def task_body(c, *args, **kwargs):
            as_json = bool(kwargs.get("json"))
            # invoke turns off writing .pyc files (its --write-pyc); netkeel's own
            # modules, imported from here on, are written as Python would (unless
            # PYTHONDONTWRITEBYTECODE says otherwise): compiling them again costs
            # every command some 60 ms.
            sys.dont_write_bytecode = bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))
            # SIGTERM (a CI timeout, systemd) as Ctrl-C: a change in progress
            # restores its snapshot before the process leaves.
            signal.signal(signal.SIGTERM, _interrupt)
            try:
                code = fn(c, *args, **kwargs) or EXIT_OK
            except NetkeelError as exc:
                report_error(name, exc, as_json)
                code = EXIT_ERROR
            except OSError as exc:  # a state directory or report file that cannot be used
                where = f" ({exc.filename})" if exc.filename else ""
                report_error(name, NetkeelError(f"{exc.strerror or exc}{where}"), as_json)
                code = EXIT_ERROR
            except KeyboardInterrupt:
                # A change cut off is restored (runtime/transaction.py); one already
                # made stays: the journal knows which.
                err.print("interrupted" + ("" if name in READ_ONLY else
                                           " (`chaos status` says which faults are active)" if name == "chaos" else
                                           " (`history` says whether the change was made or restored)"))
                code = EXIT_ERROR
            if code:
                sys.stdout.flush()
                raise SystemExit(code)  # invoke lets it through: its exit status
        return task_body
    return wrap


def faults_recorded(state) -> bool:
    """Whether any fault lease is recorded: if not, a command needs neither the
    chaos engine nor its models (9 ms of every apply's and drift's imports)."""
    from ..state.leases import DIRECTORY

    return any(name.endswith(".json") for name in state.regular_files(DIRECTORY))


def expire_faults(kernel, state) -> None:
    """Revert the faults whose time is up, or whose keeper died (every command
    that reads the kernel does), and say so: a drift (a CI gate) that put a link
    back up must not just say "in sync", nor `chaos status` "no active fault"."""
    if not faults_recorded(state):
        return
    from ..chaos import engine

    failures: list = []
    for lease_id in engine.expire(kernel, state, failures=failures):
        err.print(f"[yellow]note[/]: fault lease {escape(lease_id)} was past its time, or had lost its keeper or a "
                  "namespace: reverted now")
    for lease_id, error in failures:
        err.print(f"[bold yellow]warning[/]: fault lease {escape(lease_id)} is past its time or lost its keeper, "
                  f"and could not be reverted: {escape(error)}; each command tries again "
                  "(`chaos status` shows it)", soft_wrap=True)
    for problem in engine.damaged(state):
        # Never acted on: what it says cannot be trusted to undo anything.
        err.print(f"[bold yellow]warning[/]: {escape(problem)}; netkeel cannot revert the fault it recorded: "
                  "check the lab (`drift`), then remove the file", soft_wrap=True)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def warn_interrupted(state) -> None:
    """Say so when an earlier change was cut off (a crash, a kill), and what each
    command that could follow would do."""
    from dataclasses import replace

    from ..experiment import trial as trials
    from ..state.journal import Journal
    from ..state.recovery import advice
    from ..state.statedir import DEFAULT

    for trial in trials.abandoned(state):
        with trials.locked(state, trial.id):  # said once: it is the user's to decide now
            trials.save(state, replace(trial, state="abandoned", note="its command and guard died"))
        err.print(f"[bold yellow]warning[/]: the change tried by `apply --try` ({trial.id}, instance "
                  f"{escape(trial.instance)}) was never settled: its command and its guard died. It stays as it is"
                  + (f"; `rollback --snapshot {trial.snapshot}` returns to before it." if trial.snapshot else "."),
                  soft_wrap=True)
    for record in Journal(state).interrupted():
        manifest = (record.get("manifests") or [{}])[0].get("path", "the manifest")
        to = (record.get("git") or {}).get("rollback_to") if record.get("op") == "rollback" else None
        # A rollback's manifest is the one it returns to, not one it undid: it is named by its snapshot.
        what = f"rollback to snapshot {to}" if to else f"{record.get('op', 'a change')} of {manifest}"
        named = None if str(state.root) == DEFAULT else str(state.root)
        choices = "; ".join(f"`{escape(command)}` {escape(effect)}" for command, effect in advice(record, named))
        err.print(f"[bold yellow]warning[/]: {escape(what)} "
                  f"(instance {escape(record.get('instance', '?'))}, pid {record.get('pid')}, "
                  f"started {record.get('ts')}) was interrupted. {choices}.", soft_wrap=True)


@contextmanager
def kernel_session(verbose: bool, state=None, full: bool = False):
    """A kernel session; with a state directory, nftables reads remember what they
    found by (namespace cookie, ruleset generation) and skip listing an unchanged
    ruleset (state/rulesets.py) unless `full`."""
    from ..kernel import Kernel  # pyroute2 is only imported for commands that need it

    log = (lambda ns, text: err.print(f"[dim]kernel[/] [cyan]{ns}[/] {escape(text)}")) if verbose else None
    with Kernel(log=log) as kernel:
        if state is not None:
            from ..state.rule_forms import RuleForms
            from ..state.rulesets import RulesetMemo

            kernel.nft_memo = RulesetMemo(state, exists=kernel.exists, trust=not full)
            kernel.nft_forms = RuleForms(state, trust=not full)
        yield kernel
