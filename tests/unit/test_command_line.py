"""The command line's shape: the shared options keep their short flags in every
command, and `COMMAND --help` shows the command's help."""

from __future__ import annotations

import sys

import pytest

from toolkit.cli.common import SHORT_FLAGS
from toolkit.cli.history import user
from toolkit.cli.program import help_words


def _flags(task) -> dict:
    return {arg.name: set(arg.names) for arg in task.get_arguments()}


@pytest.mark.parametrize("name", sorted(user.task_names))
def test_the_shared_options_have_one_short_flag_everywhere_and_no_other_option_takes_it(name):
    flags = _flags(user[name])
    for option, names in flags.items():
        shared = SHORT_FLAGS.get(option.replace("-", "_"))
        if shared:
            assert shared in names, (name, option, names)
        else:
            assert not names & set(SHORT_FLAGS.values()), (name, option, names)


def test_chaos_takes_s_for_the_state_directory_as_drift_does():
    assert "s" in _flags(user["chaos"])["state_dir"] and "s" in _flags(user["drift"])["state_dir"]
    assert "n" in _flags(user["chaos"])["ns_prefix"]


@pytest.mark.parametrize("argv, expected", [
    (["netkeel", "apply", "--help"], ["netkeel", "--help", "apply"]),
    (["netkeel", "drift", "x.yaml", "-h"], ["netkeel", "--help", "drift"]),
    (["netkeel", "chaos", "list", "--help"], ["netkeel", "--help", "chaos"]),
    (["netkeel", "apply", "x.yaml"], ["netkeel", "apply", "x.yaml"]),
    (["netkeel", "--help", "apply"], ["netkeel", "--help", "apply"]),
])
def test_help_after_a_command_is_the_commands_help(argv, expected):
    assert help_words(argv) == expected


def test_every_error_a_command_can_report_is_documented_in_the_json_contract(repo):
    """docs/json.md lists each `error.type` a --json document may carry: every
    NetkeelError class (StepError never leaves the runtime: an apply reports it
    as ApplyError)."""
    import inspect

    from toolkit import errors

    documented = (repo / "docs" / "json.md").read_text()
    classes = [name for name, value in vars(errors).items()
               if inspect.isclass(value) and issubclass(value, errors.NetkeelError) and name != "StepError"]
    assert len(classes) > 10
    assert [name for name in classes if f"`{name}`" not in documented] == []


def test_an_empty_chaos_duration_is_refused_not_taken_for_the_files(tmp_path):
    """`--duration ''` used the fault file's duration silently (an empty
    --state-dir is refused alike); nothing is read or changed before the refusal."""
    import subprocess
    import sys
    from pathlib import Path

    result = subprocess.run([str(Path(sys.executable).with_name("netkeel")), "chaos", "loss-40", "--duration", "",
                             "--dry-run", "-s", str(tmp_path / "state")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "--duration '': write it like 30s, 500ms, 2m, 48h or 7d" in result.stderr
    assert not (tmp_path / "state").exists()


def _netkeel(*args, cwd=None):
    import subprocess
    import sys
    from pathlib import Path

    return subprocess.run([str(Path(sys.executable).with_name("netkeel")), *args], capture_output=True, text=True,
                          timeout=60, cwd=cwd)


def test_an_empty_rev_is_refused_not_taken_for_the_working_tree(tmp_path, repo):
    """`--rev ''` read the working tree silently (found by review), where an empty
    --state-dir or --duration is refused."""
    result = _netkeel("plan", "topologies/two-clients.yaml", "--rev", "", "-s", str(tmp_path / "state"), cwd=repo)
    assert result.returncode == 1 and "--rev is empty" in result.stderr, result.stderr
    assert not (tmp_path / "state").exists()


def test_a_bad_try_window_names_try_not_duration(tmp_path, repo):
    result = _netkeel("apply", "topologies/two-clients.yaml", "--try", "0s", "--confirm", "-s", str(tmp_path / "s"),
                      cwd=repo)
    assert result.returncode == 1 and "--try '0s': from 100ms to 7 days" in result.stderr, result.stderr


def test_an_invalid_fault_or_experiment_file_is_named_so_not_a_manifest(tmp_path, repo):
    faults = tmp_path / "faults"
    faults.mkdir()
    (faults / "bad.yaml").write_text("kind: loss\nwhat: 1\n")
    result = _netkeel("chaos", "bad", "--dry-run", "-s", str(tmp_path / "state"), cwd=tmp_path)
    assert result.returncode == 1 and "invalid fault file" in result.stderr, result.stderr
    assert "invalid manifest" not in result.stderr


@pytest.mark.parametrize("text, ms", [("7d", 7 * 86_400_000), ("1.5d", 129_600_000), ("168h", 7 * 86_400_000),
                                      ("100ms", 100), ("90", 90_000)])
def test_a_chaos_duration_may_be_written_in_days_up_to_a_week(text, ms):
    from toolkit.cli.chaos import parse_duration

    assert parse_duration(text) == ms


@pytest.mark.parametrize("text", ["8d", "7.01d", "99ms", "1w", "d", "-1d"])
def test_a_chaos_duration_out_of_range_or_unit_is_refused_with_its_range(text):
    from toolkit.cli.chaos import parse_duration
    from toolkit.errors import NetkeelError

    with pytest.raises(NetkeelError, match="--duration"):
        parse_duration(text)


def test_control_characters_in_names_reach_the_terminal_as_escapes_and_colours_still_do():
    """A device called x<ESC>[31my (made by hand in a lab) was printed raw by drift,
    doctor and apply: the terminal turned red, or worse. The CLI's consoles write
    such characters as escapes; rich's own styles stay codes."""
    import io

    from rich.console import Console
    from rich.table import Table

    from toolkit.cli.common import _EscapeControls, err, out

    assert all(any(isinstance(h, _EscapeControls) for h in c._render_hooks) for c in (out, err))
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=80, highlight=False)
    console.push_render_hook(_EscapeControls())
    table = Table()
    table.add_column("object")
    table.add_row("link x\x1b[31my")
    console.print(table)
    console.print("[bold]error[/]: fault a\x1b]0;title b\x00c")
    text = buffer.getvalue()
    assert "\x1b[31m" not in text and "\x1b]0" not in text and "\x00" not in text
    assert "x\\x1b[31my" in text and "a\\x1b]0;title b\\x00c" in text
    assert "\x1b[1m" in text  # bold, as rich writes it


def test_a_cell_from_a_file_is_one_line_of_text_never_markup():
    """A manifest path with a newline forged a row of `snapshots`; one with `[/x]`
    raised rich's MarkupError."""
    from rich.text import Text

    from toolkit.cli.common import cell

    assert cell("x.yaml\n  20261201T000000.000Z-dead FORGED") == "x.yaml\\x0a  20261201T000000.000Z-dead FORGED"
    assert Text.from_markup(cell("q[/x].yaml [red]r")).plain == "q[/x].yaml [red]r"


def test_the_script_knows_every_command_of_the_collection():
    from toolkit.cli.program import ALONE, COMMANDS

    assert set(COMMANDS) == set(user.task_names) | set(user.collections)
    assert set(ALONE) <= set(user.task_names)


@pytest.mark.parametrize("command", ["validate", "plan", "apply", "drift", "show", "destroy", "chaos"])
def test_a_reconcile_command_or_chaos_is_loaded_alone_and_is_the_same_command(command):
    from toolkit.cli.program import collection

    alone = collection(["netkeel", command, "lab.yaml", "--ns-prefix", "p-"])
    assert list(alone.task_names) == [command]
    assert alone[command] is user[command]  # the same task object: its options and help


@pytest.mark.parametrize("argv", [["netkeel"], ["netkeel", "--help"], ["netkeel", "--list"],
                                  ["netkeel", "history"], ["netkeel", "apply", "a.yaml", "drift", "a.yaml"],
                                  ["netkeel", "--help", "apply"], ["netkeel", "-e", "apply", "a.yaml"],
                                  # found by review: invoke's listing options after a command
                                  ["netkeel", "plan", "a.yaml", "--list"], ["netkeel", "plan", "a.yaml", "-l"],
                                  ["netkeel", "plan", "a.yaml", "--complete"],
                                  ["netkeel", "plan", "a.yaml", "--help=apply"]])
def test_anything_else_gets_the_whole_collection(argv):
    from toolkit.cli.program import collection

    assert collection(argv) is user


def test_the_console_script_leaves_with_the_status_sys_exit_would_give(monkeypatch, capsys):
    """console() leaves by os._exit (no interpreter teardown): the status and the
    output must be what sys.exit gave."""
    import io

    from toolkit.cli.program import _status

    assert [_status(code) for code in (None, 0, 2, 256 + 3)] == [0, 0, 2, 3]
    assert _status("refused: bad input") == 1 and "refused: bad input" in capsys.readouterr().err

    class Gone(io.StringIO):
        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr("sys.stdout", Gone())
    assert _status(0) == _status(2) == 120  # stdout could not take the rest: as the interpreter says it


def test_the_console_script_flushes_what_it_printed_before_leaving(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    netkeel = str(Path(sys.executable).with_name("netkeel"))
    version = subprocess.run([netkeel, "--version"], capture_output=True, text=True, timeout=60)
    assert (version.returncode, version.stdout.startswith("netkeel ")) == (0, True)
    (tmp_path / "lab.yaml").write_text("name: lab\nnodes:\n  a: {}\n")
    with open(tmp_path / "out", "w") as out:  # a file: fully buffered, so only a flush writes it
        result = subprocess.run([netkeel, "validate", str(tmp_path / "lab.yaml")], stdout=out,
                                stderr=subprocess.PIPE, text=True, timeout=60)
    assert result.returncode == 0 and "lab" in (tmp_path / "out").read_text()
    missing = subprocess.run([netkeel, "validate", str(tmp_path / "missing.yaml")], capture_output=True,
                             text=True, timeout=60)
    assert missing.returncode == 1 and "cannot read manifest" in missing.stdout + missing.stderr


def test_a_command_with_stdout_or_stderr_closed_says_its_outcome_by_its_status(tmp_path):
    """`netkeel ... >&-` ended in a traceback (Python leaves sys.stdout None);
    what would be said goes nowhere, and the status still tells (found by review)."""
    import subprocess
    import sys
    from pathlib import Path

    netkeel = str(Path(sys.executable).with_name("netkeel"))
    (tmp_path / "lab.yaml").write_text("name: lab\nnodes:\n  a: {}\n")
    for closing, manifest, status in ((">&-", "lab.yaml", 0), (">&-", "missing.yaml", 1), ("2>&-", "missing.yaml", 1),
                                      (">&- 2>&-", "lab.yaml", 0)):
        result = subprocess.run(["sh", "-c", f'exec "$0" validate "$1" {closing}', netkeel,
                                 str(tmp_path / manifest)], capture_output=True, text=True, timeout=60)
        assert result.returncode == status and "Traceback" not in result.stderr, (closing, manifest, result.stderr)


def _netkeel_in_process(argv: list, env: dict):
    """(status, stdout, stderr, whether invoke was imported) of program.main(argv) in a process of its own."""
    import subprocess
    import sys

    probe = ("import sys\nfrom toolkit.cli import program\nsys.argv = ['netkeel'] + sys.argv[1:]\n"
             "try:\n    program.main()\n    code = 0\nexcept SystemExit as exc:\n    code = exc.code\n"
             "sys.stdout.flush()\nprint('\\ninvoke loaded:', 'invoke' in sys.modules, file=sys.stderr)\n"
             "sys.exit(code)\n")
    result = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, timeout=120,
                            env=env)
    stderr, _, loaded = result.stderr.rpartition("\ninvoke loaded: ")
    return result.returncode, result.stdout, stderr, loaded.strip() == "True"


@pytest.mark.parametrize("command", ["validate", "plan", "apply", "drift", "show", "destroy"])
@pytest.mark.parametrize("manifest", ["missing", "invalid", "valid"])
def test_a_plain_reconcile_command_runs_its_task_without_invoke_and_says_the_same(tmp_path, command, manifest):
    """`netkeel drift FILE --ns-prefix P --state-dir D` calls the task's body
    directly (invoke costs a tenth of a second to import): its status and every
    line it prints are what the same task run by invoke (`--file FILE`) gives."""
    import os

    if manifest == "valid" and (command == "apply" or os.geteuid() != 0):
        pytest.skip("reads the kernel as root (an apply would make a namespace)")
    (tmp_path / "invalid.yaml").write_text("name: lab\nnodes:\n  a: {interfaces: [{name: 7}]}\n  b: 3\n")
    (tmp_path / "valid.yaml").write_text("name: lab\nnodes:\n  a: {}\n")
    path = str(tmp_path / f"{manifest}.yaml")
    env = dict(os.environ, NETKEEL_STATE_DIR=str(tmp_path / "state"))
    options = [] if command == "validate" else ["--ns-prefix", f"nkcl{os.getpid()}-"]  # (none made: no apply)
    plain = _netkeel_in_process([command, path, *options], env)
    by_invoke = _netkeel_in_process([command, "--file", path, *options], env)
    assert plain[3] is False and by_invoke[3] is True
    assert plain[:3] == by_invoke[:3]
    if manifest != "valid":
        assert plain[0] == 1
        assert {"missing": "cannot read manifest", "invalid": "invalid manifest"}[manifest] in plain[2]


@pytest.mark.parametrize("argv", [["drift", "a.yaml", "-n", "p-"], ["drift", "a.yaml", "--json"],
                                  ["validate", "a.yaml", "--ns-prefix", "p-"], ["show", "a.yaml", "-v"],
                                  ["drift", "a.yaml", "--ns-prefix", "apply"], ["apply", "a.yaml", "b.yaml"],
                                  ["drift", "a.yaml", "--ns-prefix"], ["drift", "apply"], ["plan", "a.yaml", "--help"]])
def test_any_other_command_line_is_invokes_to_read(tmp_path, argv):
    import os

    env = dict(os.environ, NETKEEL_STATE_DIR=str(tmp_path / "state"))
    assert _netkeel_in_process(argv, env)[3] is True


def test_a_signal_just_after_a_plain_commands_body_is_as_invokes_exit_1_without_a_word(monkeypatch, capsys):
    """The body's SIGTERM handler is still in place a moment after it returns:
    invoke's Program left silently with 1 there, and so does the plain path
    (it said "interrupted" after a verified apply: found by review)."""
    from toolkit.cli import reconcile

    def drift(c, file, ns_prefix="", state_dir=None):
        print("drift of lab: in sync, no drift.")
        raise KeyboardInterrupt  # as the handler raises it on SIGTERM

    monkeypatch.setattr(reconcile, "drift", drift)
    assert reconcile.run_plain("drift", "lab.yaml", "p-", None) == 1
    said = capsys.readouterr()
    assert said.out == "drift of lab: in sync, no drift.\n" and "interrupted" not in said.err


def test_invoke_leaves_at_once_only_when_the_verdict_answered(monkeypatch, capsys):
    """tasks.py asks answer_early(argv) before any task's module is imported:
    an answer leaves the process there with its status (as console() does);
    none lets invoke go on; Ctrl-C or a reader gone leave with 1."""
    from toolkit.cli import program, quick

    class Left(Exception):
        pass

    def leave(status):
        raise Left(status)

    import signal

    monkeypatch.setattr(program.os, "_exit", leave)
    ignored = []
    monkeypatch.setattr(signal, "signal", lambda number, handler: ignored.append((number, handler)))
    for said, status in ((None, None), (0, 0), (2, 2), (KeyboardInterrupt, 1)):
        ignored.clear()
        def answer(argv, said=said):
            assert argv == ["invoke", "drift", "a.yaml"]
            if said is KeyboardInterrupt:
                raise KeyboardInterrupt
            return said

        monkeypatch.setattr(quick, "answer", answer)
        if status is None:
            assert program.answer_early(["invoke", "drift", "a.yaml"]) is None
            assert ignored == []  # invoke goes on, Ctrl-C and SIGTERM as ever
            continue
        with pytest.raises(Left) as left:
            program.answer_early(["invoke", "drift", "a.yaml"])
        assert left.value.args == (status,)
        # Said: a signal while the output is flushed would only change the status.
        assert ignored == [(signal.SIGINT, signal.SIG_IGN), (signal.SIGTERM, signal.SIG_IGN)]
    assert "interrupted" in capsys.readouterr().err


def test_invoke_writes_the_quick_answers_bytecode_as_python_would(monkeypatch):
    """invoke imports tasks.py with bytecode writing off: left so, the modules
    answer_early imports would be compiled again by every `invoke drift`."""
    from toolkit.cli import program, quick

    monkeypatch.setattr(quick, "answer", lambda argv: None)
    for environment, off in ((None, False), ("1", True)):
        monkeypatch.setattr(sys, "dont_write_bytecode", True)  # as invoke leaves it
        if environment is None:
            monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
        else:
            monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", environment)
        program.answer_early(["invoke", "drift", "a.yaml"])
        assert sys.dont_write_bytecode is off

