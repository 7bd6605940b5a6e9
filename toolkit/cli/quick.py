"""The quick answer: `netkeel drift FILE`, `netkeel plan FILE` and a no-op
`netkeel apply FILE` say "in sync" from a verdict (state/verdicts.py), before the CLI framework, the
manifest loader or libnftables is imported.

A verdict is kept by a whole comparison that found the instance in sync. This
takes it only if every file the manifest load read has the same bytes and may
still be read, the state directory's parts that matter are as they were, and a
read of the same namespaces finds the same (nftables by each namespace's
cookie, ruleset generation and devices). Then the whole comparison would find
what it found, and print what is printed here.

Only the plain forms are answered here (the manifest, --ns-prefix, --state-dir;
root; output not on a terminal, where rich would style it); the tasks ask
in_sync() too, for `invoke drift` and the like (invoke already loaded). Anything else, a
missing or differing verdict, or any error at all, returns None: the command
then runs as it always does (and keeps a new verdict if it finds the instance
in sync). So this can make a command faster, never different.
"""

from __future__ import annotations

import os
import sys

from ..report import HEADING, IN_SYNC, title as report_title

COMMANDS = ("drift", "apply", "plan")
OPTIONS = {"--ns-prefix": "prefix", "--state-dir": "state_dir"}
# The plain forms of every reconcile command (program.py runs them without
# invoke): the options each takes of OPTIONS.
PLAIN = {"validate": (), "plan": tuple(OPTIONS), "apply": tuple(OPTIONS), "drift": tuple(OPTIONS),
         "show": tuple(OPTIONS), "destroy": tuple(OPTIONS)}
WIDTH = 140  # the console width cli/common gives output that is not a terminal
# Environment that makes rich style output off a terminal, or a command behave otherwise.
STYLED = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")


def parse(argv: list, commands=COMMANDS):
    """(command, manifest, prefix, state_dir) of a plain `drift`/`plan`/`apply`
    (of a plain form of PLAIN with `commands=PLAIN`), else None."""
    if len(argv) < 3 or argv[1] not in commands:
        return None
    allowed = PLAIN[argv[1]]
    found = {"prefix": "", "state_dir": None}
    given: set = set()
    files = []
    rest = iter(argv[2:])
    for word in rest:
        option, equals, value = word.partition("=")
        if option in allowed:
            if not equals:
                value = next(rest, None)
                if value is None:
                    return None
            if OPTIONS[option] in given or value.startswith("-"):
                return None  # invoke refuses an option given twice, or a flag for its value
            given.add(OPTIONS[option])
            found[OPTIONS[option]] = value
        elif word.startswith("-") or files:
            return None
        else:
            files.append(word)
    if not files:
        return None
    return argv[1], files[0], found["prefix"], found["state_dir"]


def answer(argv: list) -> int | None:
    """The exit code, having printed the answer; None to run the command as usual."""
    parsed = parse(argv)
    if parsed is None or sys.stdout.isatty() or any(os.environ.get(v) for v in STYLED):
        return None
    command, manifest, prefix, state_dir = parsed
    title = in_sync(command, manifest, prefix, state_dir)
    if title is None:
        _refused.add(parsed)
        return None
    line = f"{HEADING[command].format(title)}: {IN_SYNC[command]}."
    if len(line) > WIDTH or any(c in title for c in "[]\\") or not line.isprintable():
        return None  # rich would wrap it or read markup in it: the whole command prints it
    try:
        print(line, flush=True)
    except BrokenPipeError:
        raise  # the reader left: as any command (program.py)
    except OSError:  # stdout cannot take it (a full disk): the whole command reports it
        return None
    return 0


def in_sync(command: str, manifest: str, prefix: str, state_dir) -> str | None:
    """The title to report "in sync" under (the topology's name, and prefix), if
    a verdict says so for this `drift`, `plan` or `apply`; else None. Never raises."""
    if os.geteuid() != 0 or os.environ.get("NETKEEL_FAILPOINT"):
        return None  # (a failpoint is checked, and acted on, by the whole command)
    if (command, manifest, prefix, state_dir) in _refused:
        return None  # answer() just asked, before the task was loaded: no second read of every namespace
    try:
        return _in_sync(command, manifest, prefix, state_dir)
    except Exception:  # noqa: BLE001 - any doubt: the whole comparison decides
        return None


# What answer() asked in this process and was told no: the task it then runs
# does not ask again (no only means "compare everything", never wrong).
_refused: set = set()


def _in_sync(command: str, manifest: str, prefix: str, state_dir) -> str | None:
    from contextlib import nullcontext

    from ..kernel import Kernel
    from ..manifest.files import no_longer_readable, read_file
    from ..state.compiled import unchanged
    from ..state.lock import StateLock
    from ..state.statedir import StateDir
    from ..state.verdicts import hints_from, live_digest, marks_record, state_stamp, Verdicts

    state = StateDir(state_dir)
    verdict = Verdicts(state).load(manifest, prefix)
    if verdict is None:
        return None
    name, names = verdict["name"], verdict["names"]
    if not (isinstance(name, str) and name.isprintable() and isinstance(names, list) and names
            and all(isinstance(n, str) and n.startswith(prefix) for n in names)):
        return None  # not what keep_verdict writes

    if not unchanged(verdict["reads"], manifest, read_file, no_longer_readable):
        return None
    # An apply holds the state lock as a no-op apply does (held by another: the
    # whole command says so, or waits).
    with StateLock(state) if command == "apply" else nullcontext():
        if state_stamp(state) != verdict["state"]:
            return None
        with Kernel() as kernel:
            kernel.nft_marks = {}
            live = kernel.read(names, hints_from(verdict["hints"]))
            marks = marks_record(kernel.nft_marks)
            if marks != verdict["marks"]:
                _read_ahead(state, verdict["marks"], marks, verdict.get("by_json"))
                return None
            if live_digest(live) != verdict["live"]:
                return None
    return report_title(name, prefix)


def _read_ahead(state, kept: dict, marks: dict, by_json) -> None:
    """Start reading ahead (kernel/readahead.py) the namespaces whose ruleset
    moved since the verdict (same cookie, another generation) to a generation
    the ruleset memo does not know: the command about to run (a drift check,
    a plan, an apply: each compares) reads their tables by text (as JSON in
    those the verdict names in `by_json`), and can take those readings instead."""
    from ..kernel import readahead
    from ..state.rule_forms import RuleForms
    from ..state.rulesets import RulesetMemo

    memo = RulesetMemo(state)
    moved = {}
    for ns, (cookie, generation, _) in marks.items():
        was = kept.get(ns)
        if isinstance(was, list) and was[:1] == [cookie] and was[1:2] != [generation] \
                and not memo.knows(ns, cookie, generation):
            moved[ns] = (cookie, generation)
    readahead.start(moved, {n for n in by_json if isinstance(n, str)} if isinstance(by_json, list) else (),
                    RuleForms(state))
