"""The plan listing (report/human.print_plan): one print for all its lines, the
same text with and without colours, and a device's name from the kernel never
reaching the terminal raw."""

from __future__ import annotations

import io
import re

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
