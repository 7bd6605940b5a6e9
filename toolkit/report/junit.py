"""Drift as a JUnit XML report, which CI systems display as test results.

One test case per node: it passes when the node is in sync, and fails listing
each difference (and each unmanaged object) otherwise. A drift check that could
not run (an invalid manifest, a refusal) is one test case in error: CI must not
go on showing an older report that passed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict

from . import node_name
from .details import details


def drift_report(topology: str, nodes, plan, unmanaged, prefix: str = "") -> str:
    problems = defaultdict(list)
    for action in plan.actions:
        word = {"create": "missing", "delete": "unexpected", "modify": "changed"}[action.op]
        line = f"{action.resource.label}: {word}"
        if action.op == "modify":
            line += " (" + "; ".join(f"{w}: desired {d}, live {l}" for w, d, l in details(action)) + ")"
        problems[node_name(action.ns, prefix)].append(line)
    for r in unmanaged:
        problems[node_name(r.ns, prefix)].append(f"{r.label}: unmanaged (not netkeel's)")
    names = sorted(set(nodes) | set(problems))
    failures = sum(1 for n in names if problems[n])
    suite = ET.Element("testsuite", name=f"netkeel drift {topology}", tests=str(len(names)),
                       failures=str(failures), errors="0")
    for name in names:
        case = ET.SubElement(suite, "testcase", classname=f"netkeel.drift.{topology}", name=f"node {name}")
        if problems[name]:
            failure = ET.SubElement(case, "failure", message=f"{len(problems[name])} difference(s)",
                                    type="drift")
            failure.text = "\n".join(problems[name])
    return _document(suite)


def error_report(manifest: str, error: BaseException) -> str:
    """The report of a drift check that could not run: one test case, in error."""
    suite = ET.Element("testsuite", name=f"netkeel drift {manifest}", tests="1", failures="0", errors="1")
    case = ET.SubElement(suite, "testcase", classname="netkeel.drift", name=f"drift {manifest}")
    problem = ET.SubElement(case, "error", message=str(error).split("\n", 1)[0][:200], type=type(error).__name__)
    problem.text = str(error)  # every problem, for a manifest error
    return _document(suite)


def _document(suite) -> str:
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
