"""The plan listing (report/human.print_plan): one print for all its lines, the
same text with and without colours, and a device's name from the kernel never
reaching the terminal raw."""

from __future__ import annotations

import io
import re

import pytest

from rich.console import Console

from toolkit.core.action import CREATE, DELETE, Action, Plan
from toolkit.core.resource import Resource
from toolkit.report.human import print_plan

LONG = "x" * 150  # longer than the console is wide


def plan() -> Plan:
    return Plan((
        Action(CREATE, desired=Resource.make("link", ("p-a", "eth0"), kind="veth", peer="p-b/eth0", mtu=1500)),
        Action(CREATE, desired=Resource.make("addr", ("p-a", "eth0", "10.0.0.1/30"))),
        Action(DELETE, live=Resource.make("link", ("p-b", "evil\x1b[31m\n+ forged"), kind="veth", peer=LONG)),
    ))


def printed(color: bool) -> str:
    file = io.StringIO()
    console = Console(file=file, width=60, color_system="standard" if color else None, force_terminal=color,
                      highlight=False, emoji=False)
    print_plan(console, plan(), "applying lab", prefix="p-")
    return file.getvalue()


def test_the_listing_is_the_same_text_with_and_without_colours():
    plain, coloured = printed(False), printed(True)
    assert "\x1b[" in coloured and "\x1b[" not in plain
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == plain


def test_every_action_is_one_line_whatever_its_length_or_name():
    lines = printed(False).splitlines()
    assert lines[0] == "applying lab: 2 to create, 0 to change, 1 to remove"
    assert lines[1] == "a" and lines[2].startswith("  + link eth0") and lines[3].startswith("  + addr")
    assert lines[4] == "b"
    assert lines[5].startswith("  - link evil\\x1b[31m\\x0a+ forged") and lines[5].endswith(LONG)  # not wrapped
    assert len(lines) == 6


class _LeftReader(io.StringIO):
    """Takes the title's line, then its reader is gone."""

    def write(self, text):
        if self.getvalue():
            raise BrokenPipeError(32, "Broken pipe")
        return super().write(text)


def test_a_reader_that_left_ends_the_command_as_richs_own_print_does(monkeypatch):
    """Found by review: `netkeel plan | head` said "error: Broken pipe"."""
    console = Console(file=_LeftReader(), color_system=None)
    left = []
    monkeypatch.setattr(console, "on_broken_pipe", lambda: left.append(True) or (_ for _ in ()).throw(SystemExit(1)))
    with pytest.raises(SystemExit) as leaving:
        print_plan(console, plan(), "applying lab", prefix="p-")
    assert leaving.value.code == 1 and left == [True]
    assert console.file.getvalue().startswith("applying lab")


def test_names_in_drift_and_unmanaged_lines_are_never_markup_nor_raw_controls():
    """Found by review: a device made by hand as `[link=x]y` came out of `drift` as
    a hyperlink escape (its name read as rich markup), `[red]m` as `m`, and a BEL
    or BS in a name was dropped unseen."""
    from toolkit.report.human import print_drift

    hostile = ("[link=x]y", "[red]m", "b\x08\x08ok", "d\x07")
    drifted = Plan(tuple(Action(DELETE, live=Resource.make("link", ("p-a", name), kind="bridge"))
                         for name in hostile))
    unmanaged = [Resource.make("link", ("p-a", "[bold]u\x1b[31m"), owner="foreign", kind="dummy")]
    for color in (False, True):
        file = io.StringIO()
        console = Console(file=file, width=200, color_system="standard" if color else None, force_terminal=color)
        print_drift(console, drifted, "drift of lab", prefix="p-", unmanaged=unmanaged)
        text = re.sub(r"\x1b\[[0-9;]*m", "", file.getvalue())
        assert "\x1b" not in text and "\x07" not in text and "\x08" not in text
        for shown in ("[link=x]y", "[red]m", "b\\x08\\x08ok", "d\\x07", "[bold]u\\x1b[31m"):
            assert shown in text, (shown, text)
