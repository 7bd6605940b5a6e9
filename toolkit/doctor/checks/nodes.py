"""Nodes whose namespace is gone: removed by hand (`ip netns del`), with every
link, address and route in it, and the veth peers of its links in the nodes
beside it. The other checks probe from and through every node, so where one is
missing they do not run: their findings would all be this one's, said again
as unreachable pairs and missing routes."""

from __future__ import annotations

from ..finding import Finding

NAME = "nodes"
DOC = "every node's namespace exists (one removed by hand takes its links, addresses and routes with it)"


def run(ctx) -> list:
    return [Finding(NAME, f"node {node} is not running: its namespace {ctx.ns(node)} is gone", node,
                    evidence=(f"no network namespace {ctx.ns(node)} (ip netns list)",),
                    why="with it went its links (and their other ends in the nodes beside it), its addresses "
                        "and routes: nothing reaches it or passes through it",
                    fix="`apply` the manifest again: it makes the node again, with its links (`drift` names "
                        "all that is missing)",
                    nodes=(node,))
            for node in ctx.missing]
