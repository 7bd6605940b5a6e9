"""drift_report: drift as JUnit XML, one test case per node, built from plans that
toolkit.planner.diff makes of hand-made desired and live resources."""

import xml.etree.ElementTree as ET

from toolkit.planner import diff
from toolkit.core.resource import Resource
from toolkit.report.junit import drift_report

R = Resource.make
PREFIX = "t_"


def link(ns, name, mtu=1500):
    return R("link", (ns, name), kind="veth", mtu=mtu, state="up")


NAMESPACES = ("t_a", "t_b", "t_c", "t_d")
DESIRED = frozenset({R("netns", (ns,)) for ns in NAMESPACES} |
                    {R("link", (ns, "lo"), state="up") for ns in NAMESPACES} | {
    link("t_a", "eth0"), link("t_b", "eth1"), R("addr", ("t_b", "eth1", "10.0.0.1/24")),
    link("t_d", "eth2"),
})
IN_SYNC = DESIRED - {R("link", (ns, "lo"), state="up") for ns in NAMESPACES} | \
    {R("link", (ns, "lo"), kind="loopback", mtu=65536, state="up") for ns in NAMESPACES}
DRIFTED = IN_SYNC - {R("addr", ("t_b", "eth1", "10.0.0.1/24")), link("t_a", "eth0")} | {
    link("t_a", "eth0", mtu=9000),                                       # changed
    R("route", ("t_a", "10.9.0.0/24", 0), via="10.0.0.9", dev="eth0"),  # not in the manifest
}
FOREIGN = [R("nft_table", ("t_c", "inet", "filter"), owner="foreign")]
NODES = ["a", "b", "c", "d"]


def report(live, unmanaged=(), topology="lab"):
    xml = drift_report(topology, NODES, diff(DESIRED, live), unmanaged, prefix=PREFIX)
    assert xml.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
    root = ET.fromstring(xml.split("\n", 1)[1])
    assert root.tag == "testsuites"
    (suite,) = root
    return suite


def failures(suite) -> dict:
    return {case.get("name"): case.find("failure").text.splitlines()
            for case in suite if case.find("failure") is not None}


def test_drift_gives_one_failing_case_per_drifted_node():
    suite = report(DRIFTED, FOREIGN)
    assert suite.get("name") == "netkeel drift lab"
    assert [case.get("name") for case in suite] == ["node a", "node b", "node c", "node d"]
    assert {case.get("classname") for case in suite} == {"netkeel.drift.lab"}
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("4", "3", "0")
    assert failures(suite) == {
        "node a": ["route 10.9.0.0/24: unexpected", "link eth0: changed (mtu: desired 1500, live 9000)"],
        "node b": ["addr 10.0.0.1/24 on eth1: missing"],
        "node c": ["nft table inet filter: unmanaged (not netkeel's)"],
    }
    failure = suite.find("testcase[@name='node a']/failure")
    assert (failure.get("type"), failure.get("message")) == ("drift", "2 difference(s)")


def test_no_drift_gives_no_failures():
    suite = report(IN_SYNC)
    assert (suite.get("tests"), suite.get("failures")) == ("4", "0")
    assert failures(suite) == {}


def test_a_missing_namespace_and_names_needing_escaping():
    suite = report(IN_SYNC - {r for r in IN_SYNC if r.ns == "t_d"}, topology="a<b&c")
    assert suite.get("name") == "netkeel drift a<b&c"
    assert failures(suite)["node d"] == ["namespace: missing", "link eth2: missing",
                                         "link lo: changed (state: desired up, live down)"]
    assert suite.get("failures") == "1"


def test_a_drift_check_that_could_not_run_is_one_test_case_in_error():
    from toolkit.errors import ManifestError, Problem
    from toolkit.report.junit import error_report

    error = ManifestError([Problem("lab.yaml", 3, "nodes.a", "expected a mapping")])
    suite = ET.fromstring(error_report("lab.yaml", error)).find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("1", "0", "1")
    problem = suite.find("testcase/error")
    assert problem.get("type") == "ManifestError"
    assert "lab.yaml:3" in problem.text and "expected a mapping" in problem.text
