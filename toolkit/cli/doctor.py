"""`doctor FILE`: the lab notes' failure stories, looked for in the running lab.

    doctor FILE [--ns-prefix P] [--only CHECK] [--json]

Exit 0 healthy, 2 findings, 1 error. Each finding says what is wrong, where,
the evidence, why it breaks traffic, and the fix (a manifest diff where one
applies). The checks read and probe inside the lab's namespaces; they never
change it.
"""

from __future__ import annotations

import json as jsonlib
from contextlib import contextmanager

from rich.markup import escape

from ..errors import NetkeelError
from .common import EXIT_CHANGES, HELP, command, out, require_root
from .invoking import task


@task(help={"file": HELP["file"], "ns_prefix": HELP["ns_prefix"], "json": HELP["json"],
            "only": "run one check only (see the list in `doctor --help`'s docs: README)",
            "state_dir": HELP["state_dir"], "verbose": HELP["verbose"]})
@command("doctor")
def doctor(c, file, ns_prefix="", only=None, json=False, state_dir=None, verbose=False):
    """Look for the lab notes' failure stories in the running lab (exit 2 when found)."""
    from ..doctor import checks
    from ..doctor.finding import ordered

    if only is not None and only not in checks.BY_NAME:
        raise NetkeelError(f"--only {only!r}: the checks are {', '.join(checks.BY_NAME)}")
    with diagnosed(file, ns_prefix, state_dir, verbose, only) as ctx:
        findings = ordered(checks.run(ctx))
        ran = [c.NAME for c in checks.to_run(ctx)]
    topology = ctx.topology
    if json:
        print(jsonlib.dumps({"format": 1, "command": "doctor", "topology": topology.name, "ns_prefix": ns_prefix,
                             "checks": ran, "healthy": not findings, "findings": [f.to_dict() for f in findings]},
                            indent=2))
    else:
        print_findings(topology.name, findings, ran)
    return EXIT_CHANGES if findings else 0


@contextmanager
def diagnosed(file, prefix, state_dir, verbose, only=None):
    """The Context of a running lab: its manifest loaded, its live state read
    (as drift reads it), on a kernel session. Raises NetkeelError (bad manifest,
    no root, not applied)."""
    from ..doctor.context import Context
    from ..kinds.netns import namespace_name
    from ..manifest import load_topology
    from ..state.inventory import instance_id
    from ..runtime.engine import Reconciler
    from ..state import StateDir
    from .common import kernel_session
    from .reconcile import native_resolver

    topology = load_topology(file)
    require_root()
    if any(r.native for n in topology.nodes for t in n.tables for ch in t.chains for r in ch.rules):
        from ..manifest.policy import resolve_native_rules

        topology, _ = resolve_native_rules(topology, native_resolver)
    from ..chaos import engine
    from .reconcile import active_faults

    state = StateDir(state_dir)
    with kernel_session(verbose) as kernel:
        active_faults(kernel, state, instance_id(topology.name, prefix))  # those whose time is up end now
        # Read without the faults' claims: the doctor looks at what the kernel does
        # now (an MTU a fault shrank included), and says which fault did it.
        rec = Reconciler(topology, kernel, state, prefix=prefix)
        missing = [ns for ns in sorted(rec.desired_namespaces) if not kernel.exists(ns)]
        if len(missing) == len(rec.desired_namespaces):
            raise NetkeelError(f"the lab is not running: no namespace {', '.join(missing)} (apply it first)")
        if not rec.inventory.namespaces(rec.instance):
            raise NetkeelError(f"{rec.instance} is not applied in {state.root}: the doctor probes only a lab netkeel "
                               "made (see --state-dir, --ns-prefix)")
        rec.check_ownership()  # never probes a namespace netkeel did not make, or one replaced since
        # Some gone (removed by hand): a finding each (checks/nodes.py), not an error.
        gone = tuple(n.name for n in topology.nodes if namespace_name(prefix, n.name) in missing)
        yield Context(topology, prefix, kernel, live=rec.read(), only=only,
                      faults=tuple(engine.active(state, rec.instance)), missing=gone)


def print_findings(name: str, findings: list, ran: list) -> None:
    if not findings:
        out.print(f"[green]healthy[/]: {escape(name)}: nothing found ({', '.join(ran)})")
        return
    out.print(f"[bold red]{len(findings)} finding{'s' if len(findings) != 1 else ''}[/] in {escape(name)} "
              f"(checks: {', '.join(ran)})")
    for f in findings:
        colour = "red" if f.severity == "error" else "yellow"
        out.print(f"\n[{colour}]{f.severity}[/] \\[{escape(f.check)}] [bold]{escape(f.title)}[/]", soft_wrap=True)
        out.print(f"  where: {escape(f.where)}", soft_wrap=True)
        for line in f.evidence:
            out.print(f"  evidence: {escape(line)}", soft_wrap=True)
        if f.why:
            out.print(f"  why: {escape(f.why)}", soft_wrap=True)
        if f.fix:
            out.print(f"  fix: {escape(f.fix)}", soft_wrap=True)
        if f.diff:
            out.print(escape(f.diff), soft_wrap=True, highlight=False)
