"""Kind "netns" in the kernel: the namespace itself."""

from __future__ import annotations

from ..core.resource import Resource

KIND = "netns"


def read(kernel, name: str) -> list:
    return [Resource.make(KIND, (name,))] if kernel.exists(name) else []
