"""Human views: plans and drift as a diff grouped by node, live state as tables."""

from __future__ import annotations

from collections import defaultdict

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..core.action import CREATE, DELETE, MODIFY, Plan
from ..core.escapes import escape_controls
from ..core.owners import FOREIGN
from ..kinds import KINDS, NAMESPACE
from ..kinds.addr import addresses_by_device
from ..kinds.link import KIND as LINK
from . import IN_SYNC, node_name, shown
from .details import ABSENT, details

MARK = {CREATE: ("+", "green"), DELETE: ("-", "red"), MODIFY: ("~", "yellow")}


def _cell(value, keep: str = "") -> Text:
    """A name or value from a file or the kernel as a table cell: never read as
    rich markup (a device called `[link=x]y` made a hyperlink escape), its
    control characters written as escapes (a newline would forge a row; rich
    drops BEL and BS unseen)."""
    return Text(escape_controls(str(value), keep))


def _group(actions, prefix: str) -> dict:
    groups = defaultdict(list)
    for a in actions:
        groups[node_name(a.ns, prefix)].append(a)
    return groups


def _summary(plan: Plan) -> str:
    c = plan.counts()
    return f"{c[CREATE]} to create, {c[MODIFY]} to change, {c[DELETE]} to remove"


def print_plan(console: Console, plan: Plan, title: str, prefix: str = "", empty: str = IN_SYNC["plan"]) -> None:
    """A diff-like listing: nodes, then + / - / ~ lines; implicit lines dimmed;
    `empty` is what an empty plan says."""
    if plan.empty:
        console.print(f"[bold]{title}[/]: {empty}.")
        return
    console.print(f"[bold]{title}[/]: {_summary(plan)}")
    # Names and values from files and the kernel escaped here, each line built
    # whole: a newline in a device's name would forge a line of the plan.
    lines = []
    for node, actions in sorted(_group(plan.actions, prefix).items()):
        lines.append(Text(escape_controls(node), style="bold cyan"))
        for a in actions:
            mark, colour = MARK[a.op]
            line = Text(f"  {mark} ", style=colour)
            line.append(escape_controls(a.resource.label), style=colour)
            texts = [escape_controls(text) for text in _detail(a)]
            if len(texts) == 1:
                line.append(f"  {texts[0]}")
            if a.implicit:
                line.stylize("dim")
                line.append(f"  ({escape_controls(a.implicit)})", style="dim italic")
            lines.append(line)
            if len(texts) > 1:
                lines.extend(Text(f"      {text}", style=colour) for text in texts)
    print_lines(console, lines)


def print_lines(console: Console, lines: list) -> None:
    """Lines of rich Text (no newline inside one) in one go. rich costs about
    0.15 ms a print (a 1,000-node apply's 8,000 plan lines took 1.6 s of its 8 s):
    one print of them all, unwrapped (the terminal wraps them); off a terminal
    (no colours: CI logs, pipes) their plain text is written as it is."""
    if console.color_system is None and not console.record:
        try:
            console.file.write("".join(f"{line.plain}\n" for line in lines))
            console.file.flush()
        except BrokenPipeError:  # `netkeel plan | head`: the reader left, as rich's own print takes it
            console.on_broken_pipe()
        return
    console.print(Text("\n").join(lines), soft_wrap=True)


def _detail(action) -> list:
    """The text after an action's label: one line, or one line per detail."""
    if action.op == MODIFY:
        return [f"{what}: {live} → {desired}" for what, desired, live in details(action)]
    described = action.resource.describe()
    return [described] if described else []


def print_unmanaged(console: Console, unmanaged, prefix: str = "") -> None:
    for r in unmanaged:
        if r.owner == FOREIGN:
            why = r.describe() or "not netkeel's"
            console.print(f"[magenta]unmanaged[/] in {shown(node_name(r.ns, prefix))}: {shown(r.label)}: "
                          f"{shown(why)} (reported, never changed)", markup=True, highlight=False)
        else:
            why = f"{r.describe()} " if r.describe() else ""
            console.print(f"[magenta]{shown(r.owner)}[/] in {shown(node_name(r.ns, prefix))}: {shown(r.label)}: "
                          f"{shown(why)}(reported, left to its owner)", markup=True, highlight=False)


def print_overlays(console: Console, overlays) -> None:
    for text in overlays:
        console.print(f"[magenta]active[/] {shown(text)} (reported, left to its lease)", markup=True, highlight=False)


def print_drift(console: Console, plan: Plan, title: str, prefix: str = "", unmanaged=(), overlays=()) -> None:
    """Each difference with its node, object, desired and live values; then what
    is not the topology's (unmanaged objects, active faults)."""
    if plan.empty:
        console.print(f"[bold]{title}[/]: " + (f"{IN_SYNC['drift']}." if not (unmanaged or overlays) else
                                              "the managed state is in sync, but:"))
        print_overlays(console, overlays)
        print_unmanaged(console, unmanaged, prefix)
        return
    table = Table(title=f"{title}: {len(plan.actions)} difference(s)", title_justify="left",
                  box=box.SIMPLE_HEAD)
    for column in ("node", "object", "difference", "desired", "live"):
        table.add_column(column, overflow="fold")
    for node, actions in sorted(_group(plan.actions, prefix).items()):
        for a in actions:
            if a.op == MODIFY:
                for what, desired, live in details(a):
                    table.add_row(_cell(node), _cell(a.resource.label), _cell(f"{what} changed" if ABSENT not in
                                                                               (desired, live) else what),
                                  _cell(desired), _cell(live), style="yellow")
            elif a.op == CREATE:
                table.add_row(_cell(node), _cell(a.resource.label), "missing",
                              _cell(a.resource.describe() or "present"), "(absent)", style="red")
            else:
                note = f" ({a.implicit})" if a.implicit else ""
                table.add_row(_cell(node), _cell(a.resource.label), _cell("unexpected" + note), "(absent)",
                              _cell(a.resource.describe() or "present"), style="magenta")
    console.print(table)
    print_overlays(console, overlays)
    print_unmanaged(console, unmanaged, prefix)


def print_live(console: Console, resources, title: str, prefix: str = "") -> None:
    """Live state per node: interfaces with addresses, then what every other kind shows."""
    by_ns = defaultdict(lambda: defaultdict(list))
    for r in resources:
        by_ns[r.ns][r.kind].append(r)
    if not by_ns:
        console.print(f"[bold]{title}[/]: no namespace of this topology exists.")
        return
    ifaces = Table(title=f"{title}: interfaces", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("node", "interface", "kind", "state", "mtu", "addresses", "peer / master"):
        ifaces.add_column(column, overflow="fold")
    others = Table(title="routes, sysctls and firewall", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("node", "what", "value"):
        others.add_column(column)
    for ns in sorted(by_ns):
        kinds, node = by_ns[ns], node_name(ns, prefix)
        everything = [r for rs in kinds.values() for r in rs]
        addresses = addresses_by_device(everything)
        managed_links = [r for r in kinds[LINK.name] if r.owner != FOREIGN]
        for name, kind_, state, mtu, addrs, other, dim in LINK.interface_rows(managed_links, addresses):
            ifaces.add_row(_cell(node), _cell(name), _cell(kind_), _cell(state), _cell(mtu), _cell(addrs, keep="\n"),
                           _cell(node_name(other, prefix) if "/" in other else other), style="dim" if dim else None)
        for k in KINDS:
            if k is NAMESPACE:
                continue
            mine = [r for r in kinds[k.name] if r.owner != FOREIGN]
            foreign = [r for r in kinds[k.name] if r.owner == FOREIGN]
            for what, value in (k.show_rows(mine, addresses) if k is not LINK else []):
                others.add_row(_cell(node), _cell(what), _cell(value))
            for r in sorted(foreign):
                others.add_row(_cell(node), _cell(r.label),
                               _cell(f"unmanaged: {r.describe() or 'not netkeel' + chr(39) + 's'}"),
                               style="magenta")
    console.print(ifaces)
    if others.row_count:
        console.print(others)
