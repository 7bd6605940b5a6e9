"""`chaos`: declared, time-boxed faults (faults/NAME.yaml) on a running lab.

    chaos NAME|FILE [--duration 30s] [--ns-prefix P] [--dry-run] [--follow] [--json]
    chaos list        the fault files, their kinds, targets, durations, and whether this kernel can do them
    chaos status      the active faults: target, backend, time left, keeper
    chaos revert --fault NAME | --all

(invoke has no optional positional arguments, so the three words above take
the place of `--list`, `status` and `revert NAME`; the `netkeel` script accepts
both spellings.)
"""

from __future__ import annotations

import json as jsonlib
import os
import re
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

from rich import box
from rich.markup import escape
from rich.table import Table

from ..errors import FaultError, KernelError, NetkeelError
from ..state import StateDir
from .common import EXIT_ERROR, HELP, cell, command, err, expire_faults, kernel_session, out, require_root
from .invoking import task

FAULTS_DIR = "faults"
WORDS = ("list", "status", "revert")


def fault_path(name: str) -> Path:
    """faults/NAME.yaml, or the path itself when NAME is one."""
    if "/" in name or name.endswith((".yaml", ".yml")):
        return Path(name)
    return Path(FAULTS_DIR) / f"{name}.yaml"


def parse_duration(text: str, option: str = "--duration") -> int:
    """`option` (--duration; apply's --try): 30s, 500ms, 2m, 7d, or seconds; in milliseconds."""
    from ..manifest.fault import duration_ms

    if not re.fullmatch(r"[0-9]+(\.[0-9]+)?(us|ms|s|m|h|d)?", text or ""):
        raise NetkeelError(f"{option} {text!r}: write it like 30s, 500ms, 2m, 48h or 7d")
    value = duration_ms(text if text[-1].isalpha() else float(text))
    if not 100 <= value <= 7 * 24 * 3_600_000:
        raise NetkeelError(f"{option} {text!r}: from 100ms to 7 days (7d)")
    return int(value)


@task(positional=["name"], help={
    "name": "a fault (faults/NAME.yaml or a path), or: list, status, revert",
    "ns_prefix": "the lab's namespace prefix (default: the only applied instance of the fault's topology)",
    "duration": "how long, overriding the file's duration (30s, 500ms, 2m)",
    "dry_run": "show the kernel changes without making them",
    "follow": "stay in the foreground showing loss and RTT from a probe; revert on Ctrl-C",
    "fault": "with `revert`: the fault (name or lease id) to revert",
    "all": "with `revert`: revert every active fault",
    "json": HELP["json"], "state_dir": HELP["state_dir"], "verbose": HELP["verbose"]})
@command("chaos")
def chaos(c, name, ns_prefix=None, duration=None, dry_run=False, follow=False, fault=None, all=False,
          json=False, state_dir=None, verbose=False):
    """Inject a fault, time-boxed and reverted by itself at expiry; or list, status, revert."""
    state = StateDir(state_dir)
    if name == "list":
        return _list(state, json, verbose)
    if name == "status":
        return _status(state, json, verbose)
    if name == "revert":
        return _revert(state, fault, all, json, verbose)
    return _inject(state, name, ns_prefix, duration, dry_run, follow, json, verbose)


def _inject(state, name, prefix, duration, dry_run, follow, as_json, verbose) -> int:
    from ..chaos import engine
    from ..manifest.fault import load_fault
    from .keeper import start

    fault = load_fault(fault_path(name))  # bad input first, before anything else
    duration_ms = parse_duration(duration) if duration is not None else None  # "" is refused, not ignored
    require_root()
    with kernel_session(verbose) as kernel:
        lease, plan = engine.inject(kernel, state, fault, prefix=prefix, duration_ms=duration_ms, dry_run=dry_run,
                                    start_keeper=lambda lease_id: start(state.root, lease_id))
        if as_json:
            print(jsonlib.dumps(_document(fault, lease, plan), indent=2))
        else:
            _say_injected(fault, lease, plan)
        if follow and lease is not None:
            _follow(kernel, state, lease)
    return 0


def _document(fault, lease, plan) -> dict:
    doc = {"format": 1, "command": "chaos", "outcome": "planned" if lease is None else "injected",
           "fault": fault.name, "file": fault.source, "what": fault.text(),
           "backends": dict(plan.backends), "operations": plan.text()}
    if lease is not None:
        doc.update(lease=lease.id, instance=lease.instance, ns_prefix=lease.prefix,
                   started=_iso(lease.started), expires=_iso(lease.expires),
                   duration_s=round(lease.expires - lease.started, 3), keeper=lease.keeper)
    return doc


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds")


def _say_injected(fault, lease, plan) -> None:
    backends = ", ".join(f"{kind} by {backend}" for kind, backend in plan.backends)
    head = "would inject" if lease is None else "injected"
    out.print(f"[bold]{head}[/] fault {escape(fault.name)}: {escape(fault.text())}", highlight=False)
    out.print(f"  backends: {escape(backends)}", highlight=False)
    for line in plan.text():
        out.print(f"  $ {escape(line)}", highlight=False, soft_wrap=True)
    if lease is not None:
        out.print(f"  in place (checked in the kernel); lease {lease.id} on {escape(lease.instance)}; "
                  f"ends {_iso(lease.expires)} (in {lease.left():.0f} s), kept by pid {lease.keeper}. "
                  f"`chaos revert --fault {escape(fault.name)}` ends it now.", highlight=False, soft_wrap=True)


def _status(state, as_json, verbose) -> int:
    from ..chaos import engine

    if os.geteuid() == 0:  # like every command: what has run out (or lost its keeper) ends now
        with kernel_session(verbose) as kernel:
            expire_faults(kernel, state)
    leases = engine.active(state)
    # A lease file netkeel cannot read may stand for a fault still in place: never
    # "no active fault" and exit 0 then (found by review: a link left down so).
    damaged = engine.damaged(state)
    if as_json:
        print(jsonlib.dumps({"format": 1, "command": "chaos status", "faults": [
            {"fault": l.fault, "lease": l.id, "instance": l.instance, "what": l.text,
             "backends": dict(l.backends), "left_s": round(l.left(), 1), "state": l.state,
             "keeper": l.keeper, "keeper_alive": engine.keeper_alive(l), "injector": l.injector}
            for l in leases], "damaged": damaged}, indent=2))
        return EXIT_ERROR if damaged else 0
    if not leases:
        out.print(f"no active fault in {state.root}" + (" that netkeel can read" if damaged else ""))
        return _say_damaged(damaged)
    table = Table(title=f"active faults in {state.root}", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("fault", "instance", "what", "backend", "state", "left", "keeper"):
        table.add_column(column, overflow="fold")
    for l in leases:
        alive = engine.keeper_alive(l)
        table.add_row(*(cell(v) for v in (l.fault, l.instance, l.text,
                                          ", ".join(f"{k}: {b}" for k, b in l.backends), l.state)),
                      f"{l.left():.0f} s", f"{l.keeper} ({'running' if alive else 'GONE: ends at the next command'})",
                      style=None if alive and l.state != "broken" else "yellow")
    out.print(table)
    return _say_damaged(damaged)


def _say_damaged(damaged: list) -> int:
    """EXIT_ERROR, said, if any lease file is damaged; else 0."""
    for problem in damaged:
        err.print(f"[bold red]error[/]: {escape(problem)}: the fault it recorded may still be in place, and "
                  "netkeel cannot revert it: check the lab (`drift`), then remove the file", soft_wrap=True)
    return EXIT_ERROR if damaged else 0


def _revert(state, name, every, as_json, verbose) -> int:
    from ..chaos import engine

    if not name and not every:
        raise NetkeelError("chaos revert: say which with --fault NAME, or --all")
    require_root()
    targets = engine.active(state) if every else engine.find(state, name)
    if not targets and not every:
        raise FaultError(name, "revert", "no such active fault (see `chaos status`)")
    done, failed = [], []
    with kernel_session(verbose) as kernel:
        # Newest first, as faults stack (an MTU set on a link another fault holds
        # down); each one tried, whatever the one before it met.
        for lease in reversed(targets):
            try:
                if engine.revert(kernel, state, lease.id, why="`chaos revert`") is not None:
                    done.append(lease)
            except (KernelError, TimeoutError) as exc:
                failed.append((lease, exc))
    damaged = engine.damaged(state) if every else []  # --all cannot be all then
    if as_json:
        print(jsonlib.dumps({"format": 1, "command": "chaos revert", "reverted": [l.id for l in done],
                             "failed": {l.id: str(e) for l, e in failed}, "damaged": damaged}, indent=2))
    else:
        for lease in done:
            out.print(f"reverted fault {escape(lease.fault)} ({escape(lease.text)}) on {escape(lease.instance)}")
        for lease, exc in failed:
            err.print(f"[bold red]error[/]: revert fault {escape(lease.fault)} ({escape(lease.id)}): "
                      f"{escape(str(exc))}; its lease stays, and the next command tries again", soft_wrap=True)
        if not done and not failed:
            out.print("nothing to revert" + (" that netkeel can read" if damaged else ""))
        _say_damaged(damaged)
    return EXIT_ERROR if failed or damaged else 0


def _list(state, as_json, verbose) -> int:
    """The fault files, and whether this kernel can do each (probed once, cached)."""
    from ..chaos.plan import choose
    from ..errors import ManifestError
    from ..manifest.fault import load_fault

    can = None
    if os.geteuid() == 0:
        from ..chaos.engine import capabilities

        with kernel_session(verbose) as kernel:
            can = capabilities(kernel, state)
    rows = []
    for path in sorted(Path(FAULTS_DIR).glob("*.yaml")):
        try:
            fault = load_fault(path)
        except ManifestError as exc:
            rows.append({"fault": path.stem, "file": str(path), "error": str(exc.problems[0])})
            continue
        verdict = "unknown (run as root to probe)"
        if can is not None:
            try:
                verdict = "yes: " + ", ".join(f"{k} by {b}" for k, b in choose(fault, can))
            except FaultError as exc:
                verdict = f"no: {str(exc).partition(': ')[2]}"
        rows.append({"fault": fault.name, "file": str(path), "what": fault.text(), "kinds": list(fault.kinds),
                     "duration_s": fault.duration_ms / 1000, "topology": fault.topology, "here": verdict})
    if as_json:
        print(jsonlib.dumps({"format": 1, "command": "chaos list", "capabilities": can, "faults": rows}, indent=2))
        return 0
    table = Table(title=f"faults in {FAULTS_DIR}/" + (f" (this kernel: {', '.join(can)})" if can else ""),
                  title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("fault", "what", "duration", "topology", "this kernel"):
        table.add_column(column, overflow="fold")
    for row in rows:
        if "error" in row:
            table.add_row(cell(row["fault"]), cell(f"invalid: {row['error']}"), "", "", "", style="red")
        else:
            table.add_row(cell(row["fault"]), cell(row["what"]), f"{row['duration_s']:g} s",
                          cell(row["topology"] or ""), cell(row["here"]),
                          style=None if not row["here"].startswith("no") else "dim")
    out.print(table)
    return 0


# -- --follow ------------------------------------------------------------------------------------

def _follow(kernel, state, lease) -> None:
    """Ping across the target once every 0.2 s, a line a second, until the
    fault ends (or Ctrl-C, which reverts it). Bounded by the lease's time."""
    from ..chaos import engine

    source, address = _probe_ends(kernel, state, lease)
    if source is None:
        err.print("  (no address to probe across this target; waiting for the fault to end)")
    proc = None
    if source is not None:
        proc = subprocess.Popen(["ip", "netns", "exec", source, "ping", "-n", "-O", "-i", "0.2", "-W", "1",
                                 "-w", str(int(lease.left()) + 1), address],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        out.print(f"  following: ping {address} from {source}, a line a second (Ctrl-C reverts)")
    try:
        sent = got = 0
        rtts: list = []
        last = time.monotonic()
        while lease.left() > 0 and engine.find(state, lease.id):
            line = proc.stdout.readline() if proc else (time.sleep(0.5) or "")
            if proc and not line:
                break
            if "time=" in line:
                got += 1
                sent += 1
                rtts.append(float(line.split("time=")[1].split()[0]))
            elif "no answer" in line:
                sent += 1
            if time.monotonic() - last >= 1 and sent:
                rtts.sort()
                p50 = f"{rtts[len(rtts) // 2]:.2f} ms" if rtts else "-"
                out.print(f"  {lease.left():5.0f} s left  sent {sent:3d}  lost {100 * (sent - got) / sent:5.1f}%  "
                          f"rtt p50 {p50}")
                sent = got = 0
                rtts = []
                last = time.monotonic()
    except KeyboardInterrupt:
        engine.revert(kernel, state, lease.id, why="Ctrl-C of `chaos --follow`")
        out.print(f"reverted fault {escape(lease.fault)}")
    finally:
        if proc:
            proc.kill()
            proc.wait(timeout=5)


def _probe_ends(kernel, state, lease) -> tuple:
    """(namespace to ping from, address to ping): across the target's link to the
    address at its other end, or from a partition's first node of side A to the
    first address of side B."""
    from ..kinds.addr import KIND as ADDR
    from ..kinds.link import KIND as LINK
    from ..manifest.fault import load_fault

    fault = load_fault(lease.file)

    def addresses(ns, dev=None, beside=()):
        # Read with the namespace at the link's other end: a veth into a namespace
        # not read is foreign, and its addresses with it.
        return [r.key[2].split("/")[0] for r in kernel.read([ns, *beside], {})
                if r.kind == ADDR.name and r.ns == ns and (dev is None or r.key[1] == dev) and ":" not in r.key[2]]

    if fault.partition is not None:
        far = addresses(lease.prefix + fault.partition.b[0])
        return (lease.prefix + fault.partition.a[0], far[0]) if far else (None, None)
    ns, dev = lease.prefix + fault.target.node, fault.target.interface
    peer = next((r.get("peer") for r in kernel.read([ns], {}) if r.kind == LINK.name and r.key == (ns, dev)), None)
    if peer and "/" in peer:
        peer_ns, _, peer_dev = peer.partition("/")
        far = addresses(peer_ns, peer_dev, beside=(ns,))
        if far:
            return ns, far[0]
    return None, None
