"""Typed, frozen descriptions of what a manifest declares."""

from .topology import Interface, Node, Route, Topology

__all__ = ["Interface", "Node", "Route", "Topology"]
