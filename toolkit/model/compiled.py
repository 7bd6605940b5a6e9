"""A topology as the reconciler needs it, compiled for one namespace prefix.

The reconciler needs the topology's name, where it came from, its nodes' names
and the resources it declares; nothing else of the model. Keeping that apart
lets a command take it from the compile cache (state/compiled.py) instead of
parsing and checking the same files again.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Compiled:
    """A topology compiled: every resource it declares, and what it was built from."""

    name: str
    source: str                 # the manifest's path, as given
    prefix: str
    node_names: tuple
    desired: frozenset          # core.resource.Resource, every one the topology declares
    # Every file it was built from, (path, sha256), the manifest first: provenance.
    files: tuple = field(default=(), compare=False)
    # Every file its load read, {path: sha256}, the manifest's included: what
    # the compile cache and in-sync verdicts (state/verdicts.py) check again.
    reads: dict = field(default_factory=dict, compare=False)
