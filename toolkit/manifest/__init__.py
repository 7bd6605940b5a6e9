"""Manifests: load YAML with line marks, check schema and semantics, build the model.

The one entry point most callers need is `load_topology(path)`; it raises
`ManifestError` with every problem found, and never touches the kernel.
"""

from .topology import load_topology, load_topology_text

__all__ = ["load_topology", "load_topology_text"]
