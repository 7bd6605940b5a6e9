"""The installed `netkeel` console script: the same invoke tasks, as a Program."""

import os
import sys

from .. import __version__


def main() -> None:
    quiet_collector()
    closed_streams_to_null()
    try:
        # A drift or no-op apply that a verdict answers, before invoke and the
        # tasks are imported (quick.py); None: the command runs as usual.
        from .quick import answer, parse, PLAIN

        code = answer(sys.argv)
        if code is not None:
            sys.exit(code)
        plain = parse(sys.argv, PLAIN)
        if plain is not None and not any(_needs_all(word) for word in sys.argv[2:]):
            # `netkeel drift FILE --ns-prefix P`: the command's body, without invoke.
            from .reconcile import run_plain

            sys.exit(run_plain(*plain))
        from invoke import Program

        argv = chaos_words(help_words(sys.argv))
        Program(namespace=collection(argv), name="netkeel", binary="netkeel", version=__version__).run(argv)
    except KeyboardInterrupt:  # before a task started (while loading): nothing was changed
        print("interrupted", file=sys.stderr)
        sys.exit(1)
    except BrokenPipeError:  # `netkeel ... | head`: the reader left; nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    finally:
        outcome_said()


def outcome_said() -> None:
    """The outcome is decided and said: a Ctrl-C or SIGTERM while the process
    leaves (flushing its output) would only turn its exit code into a signal's (130)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def answer_early(argv: list) -> None:
    """For `invoke`, from tasks.py: invoke imports it after its own imports (0.1 s);
    a plain drift, plan or no-op apply that a verdict answers (quick.py) is
    said there and the process leaves as console() leaves, before every task's
    module is imported (`invoke drift FILE` 0.24 s -> 0.16 s). Anything else
    returns, and invoke runs the task (which does not ask the verdict again)."""
    # invoke imports tasks.py with bytecode writing off; the modules imported
    # from here on are written as Python would (see cli/common.py), or every
    # quick answer would compile them again.
    sys.dont_write_bytecode = bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))
    from .quick import answer

    closed_streams_to_null()
    try:
        code = answer(argv)
    except KeyboardInterrupt:  # nothing was changed
        print("interrupted", file=sys.stderr)
        code = 1
    except BrokenPipeError:  # the reader left: nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 1
    if code is not None:
        outcome_said()
        os._exit(_status(code))


def console() -> None:
    """The `netkeel` console script: main(), then out of the process without
    tearing the interpreter down. Freeing a large lab's or policy's objects one
    by one, as the interpreter does on leaving, took 25-60 ms of a command
    whose outcome was already said; the kernel frees a process's memory at
    once. Output is flushed first, and nothing of netkeel's waits for the
    interpreter's exit (no exit handlers; its threads are daemons, its children
    its own). An error main() lets through (a bug's traceback) leaves as usual."""
    from ..core import processes

    processes.leaves_by_exit = True  # (what it holds is left to the kernel: kernel/session.py)
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code
    os._exit(_status(code))


def _status(code) -> int:
    """The exit status sys.exit(code) gives, with the output flushed: 120, as
    the interpreter's own whatever the status was, when stdout cannot take
    what is left (the reader left between the last write and the exit)."""
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code & 0xFF
    else:  # sys.exit("message"): said on stderr, status 1
        print(code, file=sys.stderr)
        status = 1
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        status = 120
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    return status


def closed_streams_to_null() -> None:
    """A command started with stdout or stderr closed (`netkeel drift X >&-`):
    Python leaves sys.stdout None, and the first print ended in a traceback.
    What would have been said goes to /dev/null instead; the exit status
    still says the outcome."""
    for fd, name in ((1, "stdout"), (2, "stderr")):
        if getattr(sys, name) is not None:
            continue
        null = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)  # the lowest free fd: this one, if 0 is open
        if null != fd:
            os.dup2(null, fd, inheritable=False)
            os.close(null)
        setattr(sys, name, open(fd, "w", encoding="utf-8", closefd=False))


def quiet_collector() -> None:
    """No cyclic garbage collection for the command's lifetime: a command is a
    short process, and the collector's passes over the large object graphs of a
    10,000-rule policy or a 1,000-node lab cost more than the work (measured: a
    10,000-rule apply 2.40 -> 1.83 s, a no-op apply or drift 1.90 -> 1.33 s, the
    same peak memory). Reference counting still frees everything not in a cycle."""
    import gc

    gc.freeze()
    gc.disable()


# Every command of the `netkeel` script (cli/history.py's collection: a test holds them equal).
COMMANDS = ("validate", "plan", "apply", "drift", "show", "destroy", "snapshots", "rollback", "history", "diff",
            "chaos", "experiment", "vip", "doctor", "graph")
ALONE = ("validate", "plan", "apply", "drift", "show", "destroy")  # cli/tasks.py's


def collection(argv: list):
    """The command's own task alone where it is one of cli/tasks.py's (the
    reconcile commands: the other commands' modules, experiments, doctor,
    history, cost 15-20 ms to import) or chaos (a fault should be in place at
    once, and importing every other task, manifests, policies, reports, costs
    more than injecting it). Every other command line, and one naming two
    commands, gets the whole collection."""
    command = argv[1] if len(argv) > 1 else None
    if command in ALONE + ("chaos",) and not any(_needs_all(word) for word in argv[2:]):
        from invoke import Collection

        if command == "chaos":
            from .chaos import chaos

            return Collection(chaos)
        from . import tasks

        return Collection(getattr(tasks, command))
    from .history import user

    return user


# invoke's own options that list or name commands wherever they stand (found by review).
LISTING = ("--list", "-l", "--complete", "--help", "-h", "--print-completion-script")


def _needs_all(word: str) -> bool:
    """Whether `word` on a command line makes invoke speak of other commands:
    another command's name (a second task), alone or as an option's value
    (`--help=apply`), or one of its listing options."""
    option, _, value = word.partition("=")
    return word in COMMANDS or value in COMMANDS or option in LISTING


def help_words(argv: list) -> list:
    """`netkeel apply --help` as `netkeel --help apply`: invoke would take a
    `--help` after the command for its positional argument (a manifest called
    "--help") and fail reading it."""
    if len(argv) > 2 and not argv[1].startswith("-") and any(a in ("--help", "-h") for a in argv[2:]):
        return [argv[0], "--help", argv[1]]
    return list(argv)


def chaos_words(argv: list) -> list:
    """`netkeel chaos --list`, `netkeel chaos revert NAME` and `netkeel vip status
    FILE` as users write them, in the forms invoke parses (`chaos list`, `chaos
    revert --fault NAME`, `vip status --file FILE`): invoke has no optional
    positional arguments."""
    argv = list(argv)
    if argv[1:3] == ["vip", "status"] and len(argv) > 3 and not argv[3].startswith("-"):
        return argv[:3] + ["--file", argv[3]] + argv[4:]
    if "chaos" not in argv:
        return argv
    at = argv.index("chaos")
    rest = argv[at + 1:]
    if "--list" in rest and not [a for a in rest if not a.startswith("-")]:
        rest = ["list"] + [a for a in rest if a != "--list"]
    elif len(rest) >= 2 and rest[0] == "revert" and not rest[1].startswith("-"):
        rest = ["revert", "--fault", rest[1]] + rest[2:]
    return argv[:at + 1] + rest
