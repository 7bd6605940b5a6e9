"""The inventory: which namespaces netkeel created, for which topology instance.

A namespace has no place to carry a marker, so ownership of namespaces lives
here. An instance is a topology name plus the namespace prefix it was applied
with, so the same file can run side by side under different prefixes.
"""

from __future__ import annotations

import errno
from datetime import datetime, timezone

from ..errors import InventoryError
from . import validation
from .statedir import StateDir

FILE = "inventory.json"


def instance_id(topology_name: str, prefix: str) -> str:
    """`name`, or `name@prefix`: '@' is in neither a topology name nor a prefix,
    so two (name, prefix) pairs never share an id."""
    return f"{topology_name}@{prefix}" if prefix else topology_name


class Inventory:
    def __init__(self, state: StateDir):
        """Raises InventoryError if the inventory file is damaged."""
        self.state = state
        try:
            data = state.read_json(FILE, default={"version": 1, "instances": {}})
        except (ValueError, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):  # the process's trouble
                raise InventoryError(f"cannot open {state.path(FILE)}: {exc.strerror} (a namespace holds three "
                                     "open files while a command runs: raise the limit, `ulimit -n`)") from None
            raise InventoryError(f"{state.path(FILE)} is unreadable ({exc}); it is not a netkeel inventory "
                                 "any more: move it aside") from None
        problem = validation.problem("inventory", data)
        if problem:
            raise InventoryError(f"{state.path(FILE)} is not a netkeel inventory ({problem}); "
                                 "move it aside")
        self.data = data

    @property
    def instances(self) -> dict:
        return self.data["instances"]

    def namespaces(self, instance: str) -> set:
        return set(self.instances.get(instance, {}).get("namespaces", []))

    def owner_of(self, namespace: str) -> str | None:
        for instance, entry in self.instances.items():
            if namespace in entry.get("namespaces", []):
                return instance
        return None

    def remembered(self, instance: str) -> list:
        """(kind, key) of every object the instance has set that no later manifest
        can remove (a sysctl keeps its value): a snapshot must read them all, or a
        rollback could not put them back."""
        return [(item[0], tuple(item[1:])) for item in self.instances.get(instance, {}).get("remember", [])
                if isinstance(item, list) and len(item) >= 2 and all(isinstance(x, (str, int)) for x in item)]

    def record(self, instance: str, namespaces, unless_same: bool = False, **details) -> None:
        """Set the namespaces `instance` owns (dropping the instance when none) and save.
        `unless_same`: not if it owns those already, with these details (the
        ownership a change takes before it begins, when it makes nothing new:
        no durable write, its time aside, to say what the file says)."""
        namespaces = sorted(set(namespaces))
        entry = self.instances.get(instance)
        if unless_same and namespaces and isinstance(entry, dict) and entry.get("namespaces") == namespaces \
                and all(entry.get(k) == v for k, v in details.items()):
            return
        if namespaces:
            entry = self.instances.setdefault(instance, {})
            entry.update(details)
            entry["namespaces"] = namespaces
            if "remember" in entry:  # only what lives in a namespace still owned
                entry["remember"] = [item for item in entry["remember"] if item[1] in namespaces]
            entry["updated"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        else:
            self.instances.pop(instance, None)
        self.state.write_json(FILE, self.data)
