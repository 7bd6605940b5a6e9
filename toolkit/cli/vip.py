"""`vip status [--file FILE]`: the VIP groups' speakers, as they say they are.

Per group and member: its state, priority, who it believes is active, how long
since its last transition, the adverts it has seen and from whom (with the
checksum mode each peer uses), and the failover times the RFC formulas give
for these settings. Without a file, every applied instance in the state
directory; with one, its groups, members without a running speaker included.
(`netkeel vip status FILE` is accepted too.)
"""

from __future__ import annotations

import json as jsonlib
import os
import time

from rich import box
from rich.markup import escape
from rich.table import Table

from ..errors import NetkeelError
from ..state import StateDir
from .common import HELP, command, expire_faults, kernel_session, out
from .invoking import task

ACTIONS = ("status",)


def timers(priority: int, interval_cs: int) -> dict:
    """What RFC 9568 predicts for a backup of `priority` hearing adverts every
    `interval_cs` centiseconds: Skew_Time (a graceful handover) and
    Master_Down_Interval (a silent master), in ms."""
    from ..vrrp.config import master_down_interval_ms, skew_time_ms

    return {"skew_ms": skew_time_ms(priority, interval_cs),
            "master_down_interval_ms": master_down_interval_ms(priority, interval_cs)}


@task(positional=["action"], help={
    "action": "status", "file": "a topology manifest: only its VIP groups (default: every applied instance)",
    "ns_prefix": HELP["ns_prefix"], "json": HELP["json"], "state_dir": HELP["state_dir"]})
@command("vip")
def vip(c, action, file=None, ns_prefix=None, json=False, state_dir=None):
    """VIP groups: the state of each member's VRRP speaker (vip status [--file FILE])."""
    if action not in ACTIONS:
        raise NetkeelError(f"vip {action!r}: say `vip status` (optionally --file FILE)")
    state = StateDir(state_dir)
    if os.geteuid() == 0:  # like every command: a fault past its time, or that lost its keeper,
        # ends now, so a speaker it stopped is not shown dead when its revert starts it again
        with kernel_session(False) as kernel:
            expire_faults(kernel, state)
    topology = None
    if file:
        from ..manifest import load_topology

        topology = load_topology(file)  # once: the rows, the check and the bystander's look all need it
    rows = _rows(state, topology, ns_prefix)
    applied = topology is not None and _applied(state, topology, ns_prefix or "")
    observed = _observed(topology, ns_prefix or "") if applied else {}
    if json:
        print(jsonlib.dumps({"format": 1, "command": "vip status", "members": rows,
                             "observed": [{"group": g, **o} for g, o in observed.items()]}, indent=2))
        return 0
    if not rows:
        out.print("no VIP group speakers" + (f" for {escape(file)}" if file else " in the applied instances"))
        return 0
    now = time.time()
    for group in dict.fromkeys((r["instance"], r["group"]) for r in rows):
        members = [r for r in rows if (r["instance"], r["group"]) == group]
        actives = [r["node"] for r in members if r["state"] == "active"]
        title = f"VIP group {group[1]} on {group[0]}: " + (
            f"active {', '.join(actives)}" if len(actives) == 1 else
            f"[red]{len(actives)} active ({', '.join(actives)}): split brain[/]" if actives else "[red]none active[/]")
        table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
        for column in ("member", "state", "priority", "believes active", "since", "adverts seen (from: count, "
                       "checksum)", "sent", "skew / master down"):
            table.add_column(column, overflow="fold")
        for r in members:
            since = f"{now - r['since']:.1f} s ago" if isinstance(r.get("since"), (int, float)) else ""
            seen = "\n".join(f"{ip}: {p.get('adverts')} ({p.get('checksum')}, prio {p.get('priority')}, "
                             f"{now - p['last']:.1f} s ago)" if isinstance(p.get("last"), (int, float)) else ip
                             for ip, p in sorted(r["peers"].items()))
            master = r.get("master") or {}
            table.add_row(f"{r['node']} ({r['interface']})", _state(r["state"]), str(r["priority"]),
                          f"{master.get('address', '')} (prio {master.get('priority')})" if master else "",
                          since, escape(seen), "" if r.get("adverts_sent") is None else str(r["adverts_sent"]),
                          f"{r['skew_ms']:g} / {r['master_down_interval_ms']:g} ms")
        out.print(table)
        if group[1] in observed:
            out.print(_observation(observed[group[1]]), soft_wrap=True)
    return 0


def _applied(state: StateDir, topology, prefix: str) -> bool:
    """Whether this state directory's inventory has the file's lab applied under
    `prefix`: the bystander's probe runs only in a namespace netkeel made."""
    from ..state.inventory import Inventory, instance_id

    return bool(Inventory(state).namespaces(instance_id(topology.name, prefix)))


def _observation(o: dict) -> str:
    """What the bystander saw, in a line or two; red when it is a split brain."""
    if o.get("error"):
        return f"  seen from {escape(o['node'])}: [yellow]could not look[/] ({escape(o['error'])})"
    sources = ", ".join(f"{ip} (prio {a['priority']}, {a['count']} adverts)" for ip, a in sorted(o["adverts"].items()))
    answers = "; ".join(f"{vip} answered by " + (", ".join(f"{m} ({o['macs'].get(m, '?')})" for m in macs) or "nobody")
                        for vip, macs in sorted(o["arp"].items()))
    split = len(o["adverts"]) > 1 or any(len(m) > 1 for m in o["arp"].values())
    head = "[bold red]split brain[/] " if split else ""
    return (f"  {head}seen from {escape(o['node'])} in {o['ms']:.0f} ms: adverts from {sources or 'nobody'}; "
            f"{escape(answers)}")


def _observed(topology, prefix: str) -> dict:
    """group -> what a node on its segment that is not a member sees (toolkit/vrrp/observe.py):
    who advertises, and which MACs answer ARP for the VIPs."""
    import ipaddress
    import subprocess
    import sys

    out = {}
    for group in topology.vips:
        vips = [str(ipaddress.ip_interface(a).ip) for a in group.addresses]
        subnet = ipaddress.ip_interface(group.addresses[0]).network
        members = {m.node for m in group.members}
        observer = next(((n.name, i.name) for n in topology.nodes if n.name not in members for i in n.interfaces
                         if any(":" not in a and ipaddress.ip_interface(a).ip in subnet for a in i.addresses)), None)
        if observer is None:
            continue
        ms = min(3000, max(300, 3 * group.interval_cs * 10 + 100))
        macs = {}
        for m in group.members:
            link = subprocess.run(["ip", "-n", prefix + m.node, "-j", "link", "show", "dev", m.interface],
                                  capture_output=True, text=True, timeout=10)
            try:
                macs[jsonlib.loads(link.stdout)[0]["address"]] = m.node
            except (ValueError, IndexError, KeyError):
                pass
        found = subprocess.run(["ip", "netns", "exec", prefix + observer[0], sys.executable, "-m",
                                "toolkit.vrrp.observe", observer[1], str(group.vrid), ",".join(vips), str(ms)],
                               capture_output=True, text=True, timeout=ms / 1000 + 10)
        entry = {"node": observer[0], "ms": ms, "macs": macs}
        try:
            entry.update(jsonlib.loads(found.stdout))
        except ValueError:
            entry["error"] = found.stderr.strip() or f"exit {found.returncode}"
        out[group.name] = entry
    return out


def _state(state: str) -> str:
    colour = {"active": "green", "backup": "cyan", "not running": "red", "dead": "red"}.get(state)
    return f"[{colour}]{state}[/]" if colour else state


def _rows(state: StateDir, topology, prefix: str) -> list:
    """One row per member speaker: declared members (with a file) or every
    speaker with files under an applied instance's namespaces."""
    from ..kernel import speakers
    from ..state.inventory import Inventory, instance_id

    inventory = Inventory(state)
    if topology is not None:
        prefix = prefix or ""
        instance = instance_id(topology.name, prefix)
        wanted = [(instance, prefix + m.node, m.node, g, m) for g in topology.vips for m in g.members]
    else:
        wanted = []
        for instance, entry in sorted(inventory.instances.items()):
            pre = entry.get("prefix", "")
            if prefix is not None and pre != prefix:
                continue
            for ns in sorted(entry.get("namespaces", [])):
                for group in speakers.groups(ns):
                    wanted.append((instance, ns, ns[len(pre):], group, None))
    rows = []
    for instance, ns, node, group, member in wanted:
        name = group.name if member is not None else group
        said = speakers.running(ns, name)
        config = _config(speakers.config_path(ns, name))
        priority = member.priority if member is not None else config.get("priority")
        interval = group.interval_cs if member is not None else config.get("interval_cs") or 100
        rows.append({
            "instance": instance, "group": name, "node": node, "namespace": ns,
            "interface": member.interface if member is not None else config.get("interface"),
            "state": said.get("state") if said else ((speakers.status(ns, name) or {}).get("state") == "dead"
                                                    and "dead" or "not running"),
            "priority": priority, "since": (said or {}).get("since"), "master": (said or {}).get("master"),
            "peers": (said or {}).get("peers") or {}, "adverts_sent": (said or {}).get("adverts_sent"),
            "holding": bool((said or {}).get("holding")), "pid": (said or {}).get("pid"),
            **timers(priority or 100, interval)})
    return rows


def _config(path: str) -> dict:
    """A speaker's configuration file, as far as it is well formed ({} if not)."""
    try:
        with open(path) as f:
            data = jsonlib.load(f)
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict):
        return {}
    wrong = [k for k, kind in (("priority", int), ("interval_cs", int), ("interface", str)) if k in data
             and (not isinstance(data[k], kind) or isinstance(data[k], bool) or kind is int and data[k] <= 0)]
    return {k: v for k, v in data.items() if k not in wrong}
