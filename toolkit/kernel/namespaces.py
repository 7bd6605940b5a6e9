"""Kind "netns" in the kernel: the namespace itself."""

from __future__ import annotations

from ..core.resource import Resource

KIND = "netns"


def read(kernel, name: str) -> list:
    """The namespace, as a resource (the reader asks only for those that exist)."""
    return [Resource.make(KIND, (name,))]
