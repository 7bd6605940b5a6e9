"""Manifests: load YAML with line marks, check schema and semantics, build the model.

The one entry point most callers need is `load_topology(path)`; it raises
`ManifestError` with every problem found, and never touches the kernel.
"""

__all__ = ["load_topology", "load_topology_text"]


def __getattr__(name: str):
    # Imported on first use: fault files (manifest/fault.py) need none of the
    # topology's and policies' checks, and `chaos` should start fast.
    if name in __all__:
        from . import topology

        return getattr(topology, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
