"""Kind "netns": a network namespace, key (ns,). Deleting one removes everything
in it; a new one comes with a loopback device, down."""

from __future__ import annotations

from ..core.resource import Resource
from .base import CREATE, DELETE, Action, Kind


def namespace_name(prefix: str, node: str) -> str:
    return f"{prefix}{node}"


class Namespace(Kind):
    name = "netns"
    key_arity = 1

    def compile(self, topology, prefix):
        return [Resource.make(self.name, (namespace_name(prefix, node.name),)) for node in topology.nodes]

    def plan(self, planner) -> None:
        want, have = planner.of_kind(planner.want, self.name), planner.of_kind(planner.have, self.name)
        for ident in have.keys() - want.keys():
            planner.actions.append(Action(DELETE, live=have[ident]))
            planner.gone[ident] = "with its namespace"
        for ident in want.keys() - have.keys():
            planner.actions.append(Action(CREATE, desired=want[ident]))
            planner.born(ident[1][0])

    def place(self, resource):
        return (resource.ns, None)

    def label(self, resource) -> str:
        return "namespace"

    def run(self, backend, phase, actions) -> None:
        for action in actions:
            if phase == "delete":
                backend.remove_namespace(action.ns)
            else:
                backend.create_namespace(action.ns)


KIND = Namespace()


def ident(ns: str) -> tuple:
    """The ident of namespace `ns`: what every resource in it vanishes with."""
    return (KIND.name, (ns,))


def names(resources) -> set:
    """The namespaces among `resources`."""
    return {r.ns for r in resources if r.kind == KIND.name}
