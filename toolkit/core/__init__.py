"""The bottom layer: the shapes every other layer shares.

    resource.py   Resource (kind, key, spec, owner) and field comparison
    owners.py     who a live object belongs to, and the markers that tell
    backend.py    the protocol a backend (the kernel, or a fake) implements

It imports nothing of netkeel but `toolkit.errors` (and, lazily, the kind
registry in toolkit/kinds, its sibling in the bottom layer).
"""
