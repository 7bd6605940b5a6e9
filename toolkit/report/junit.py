"""Drift as a JUnit XML report, which CI systems display as test results.

One test case per node: it passes when the node is in sync, and fails listing
each difference (and each unmanaged object) otherwise.
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
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
