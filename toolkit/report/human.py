"""Human views: plans and drift as a diff grouped by node, live state as tables."""

from __future__ import annotations

from collections import defaultdict

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..reconcile.plan import CREATE, DELETE, MODIFY, Plan
from ..reconcile.resources import UNMANAGED_KINDS
from . import node_name
from .details import ABSENT, details

MARK = {CREATE: ("+", "green"), DELETE: ("-", "red"), MODIFY: ("~", "yellow")}


def _group(actions, prefix: str) -> dict:
    groups = defaultdict(list)
    for a in actions:
        groups[node_name(a.ns, prefix)].append(a)
    return groups


def _summary(plan: Plan) -> str:
    c = plan.counts()
    return f"{c[CREATE]} to create, {c[MODIFY]} to change, {c[DELETE]} to remove"


def print_plan(console: Console, plan: Plan, title: str, prefix: str = "") -> None:
    """A diff-like listing: nodes, then + / - / ~ lines; implicit lines dimmed."""
    if plan.empty:
        console.print(f"[bold]{title}[/]: nothing to do, the kernel matches the manifest.")
        return
    console.print(f"[bold]{title}[/]: {_summary(plan)}")
    for node, actions in sorted(_group(plan.actions, prefix).items()):
        console.print(Text(node, style="bold cyan"))
        for a in actions:
            mark, colour = MARK[a.op]
            line = Text(f"  {mark} ", style=colour)
            line.append(a.resource.label, style=colour)
            lines = _detail(a)
            if len(lines) == 1:
                line.append(f"  {lines[0]}")
            if a.implicit:
                line.stylize("dim")
                line.append(f"  ({a.implicit})", style="dim italic")
            console.print(line)
            if len(lines) > 1:
                for text in lines:
                    console.print(Text(f"      {text}", style=colour))


def _detail(action) -> list:
    """The text after an action's label: one line, or one line per detail."""
    if action.op == MODIFY:
        return [f"{what}: {live} → {desired}" for what, desired, live in details(action)]
    described = action.resource.describe()
    return [described] if described else []


def print_unmanaged(console: Console, unmanaged, prefix: str = "") -> None:
    for r in unmanaged:
        why = r.describe() or "not netkeel's"
        console.print(f"[magenta]unmanaged[/] in {node_name(r.ns, prefix)}: {r.label}: {why} (reported, never changed)",
                      markup=True, highlight=False)


def print_drift(console: Console, plan: Plan, title: str, prefix: str = "", unmanaged=()) -> None:
    """Each difference with its node, object, desired and live values."""
    if plan.empty:
        console.print(f"[bold]{title}[/]: " + ("in sync, no drift." if not unmanaged else
                                              "the managed state is in sync, but:"))
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
                    table.add_row(node, a.resource.label, f"{what} changed" if ABSENT not in (desired, live)
                                  else what, desired, live, style="yellow")
            elif a.op == CREATE:
                table.add_row(node, a.resource.label, "missing", a.resource.describe() or "present",
                              "(absent)", style="red")
            else:
                note = f" ({a.implicit})" if a.implicit else ""
                table.add_row(node, a.resource.label, "unexpected" + note, "(absent)",
                              a.resource.describe() or "present", style="magenta")
    console.print(table)
    print_unmanaged(console, unmanaged, prefix)


def print_live(console: Console, resources, title: str, prefix: str = "") -> None:
    """Live state per node: interfaces with addresses, then routes and sysctls."""
    by_ns = defaultdict(lambda: defaultdict(list))
    for r in resources:
        by_ns[r.ns][r.kind].append(r)
    if not by_ns:
        console.print(f"[bold]{title}[/]: no namespace of this topology exists.")
        return
    ifaces = Table(title=f"{title}: interfaces", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("node", "interface", "kind", "state", "mtu", "addresses", "peer / master"):
        ifaces.add_column(column, overflow="fold")
    routes = Table(title="routes, sysctls and firewall", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("node", "what", "value"):
        routes.add_column(column)
    for ns in sorted(by_ns):
        kinds, node = by_ns[ns], node_name(ns, prefix)
        addrs = defaultdict(list)
        for a in kinds["addr"]:
            addrs[a.key[1]].append(a.key[2])
        for link in sorted(kinds["link"]):
            f = link.fields()
            other = node_name(f.get("peer") or "", prefix) or (f"master {f['master']}" if f.get("master") else "")
            ifaces.add_row(node, link.key[1], f.get("kind"), f.get("state"), str(f.get("mtu", "")),
                           "\n".join(addrs.get(link.key[1], [])), other,
                           style=None if f.get("state") == "up" else "dim")
        for r in sorted(kinds["route"]):
            routes.add_row(node, r.label, r.describe())
        for s in sorted(kinds["sysctl"]):
            routes.add_row(node, s.label, str(s.get("value")))
        for t in sorted(kinds["nft_table"]):
            routes.add_row(node, t.label, t.describe())
        for kind in UNMANAGED_KINDS:
            for t in sorted(kinds[kind]):
                routes.add_row(node, t.label, f"unmanaged: {t.describe() or 'not netkeel' + chr(39) + 's'}",
                               style="magenta")
    console.print(ifaces)
    if routes.row_count:
        console.print(routes)
