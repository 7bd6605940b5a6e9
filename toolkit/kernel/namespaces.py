"""Adapter for kind "netns": the namespace itself."""

from __future__ import annotations

from ..reconcile.resources import Resource


def read(kernel, name: str) -> list:
    return [Resource.make("netns", (name,))] if kernel.exists(name) else []


def run(kernel, phase: str, action) -> None:
    name = action.key[0]
    if phase == "delete":
        kernel.remove_namespace(name)
    elif phase == "create":
        kernel.create_namespace(name)
