"""Snapshots: the live state of a topology instance, saved before every change.

One JSON file per snapshot under snapshots/, written atomically (temp file,
fsync, rename) with mode 0600, named after its id. Only files named exactly as
new_id() names them are snapshots: anything else in snapshots/ is left alone,
never listed, loaded or pruned. A snapshot holds the resources read from the
kernel (informational fields left out), which namespaces were read and which
the instance owned, and where the change came from: the manifest files with
their sha256, and the git commit of the manifest's repository.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ..core.owners import FOREIGN, TOPOLOGY, is_managed, is_overlay
from ..core.resource import Resource
from ..kinds import BY_NAME, FOREIGN_NAMES, NAMES
from ..kinds.base import shown
from ..kinds.netns import names as namespace_names
from ..errors import NetkeelError, SnapshotError
from . import validation
from .journal import Journal
from .statedir import StateDir, canonical_json

DIRECTORY = "snapshots"
FORMAT = 2  # 2: with the SHA-256 of its content (1: without)
DEFAULT_KEEP = 50
KEEP_ENV = "NETKEEL_SNAPSHOT_KEEP"


@dataclass(frozen=True)
class Snapshot:
    id: str
    time: str                     # UTC, ISO 8601
    instance: str                 # topology name + namespace prefix
    topology: str
    prefix: str
    reason: str                   # "before apply", "before rollback", ...
    resources: tuple              # Resource, live, without "_" fields
    namespaces: tuple             # every namespace read (scope)
    owned: tuple                  # what the inventory said the instance owned
    manifests: tuple = ()         # ({"path", "sha256"}, ...)
    git: dict = field(default_factory=dict)  # {"commit", "dirty", "root"} or {}

    @property
    def present(self) -> set:
        """The namespaces that existed when the snapshot was taken."""
        return namespace_names(self.resources)


def new_id(now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    return now.strftime("%Y%m%dT%H%M%S.%f")[:-3] + "Z-" + secrets.token_hex(2)


# Exactly what new_id() makes: UTC time to the millisecond, then 4 random hex digits.
ID = re.compile(r"[0-9]{8}T[0-9]{6}\.[0-9]{3}Z-[0-9a-f]{4}")


def resource_to_json(r: Resource) -> dict:
    out = {"kind": r.kind, "key": list(r.key), "spec": {k: v for k, v in r.spec if not k.startswith("_")}}
    if r.owner != TOPOLOGY:
        out["owner"] = r.owner
    return out


def resource_from_json(data: dict) -> Resource:
    kind, owner = data["kind"], data.get("owner", TOPOLOGY)
    if kind in FOREIGN_NAMES:  # snapshots before owners named foreign objects `<kind>_foreign`
        kind, owner = FOREIGN_NAMES[kind], FOREIGN
    return Resource.make(kind, tuple(data["key"]), owner=owner, **{k: _frozen(v) for k, v in data["spec"].items()})


def _frozen(value):
    """JSON lists back to the tuples resources hold."""
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


class Snapshots:
    """The snapshots in a state directory."""

    def __init__(self, state: StateDir):
        self.state = state

    def path(self, snapshot_id: str):
        return self.state.path(DIRECTORY, f"{snapshot_id}.json")

    def save(self, snapshot: Snapshot) -> None:
        _check_id(snapshot.id)
        data = {"format": FORMAT, "id": snapshot.id, "time": snapshot.time, "instance": snapshot.instance,
                "topology": snapshot.topology, "prefix": snapshot.prefix, "reason": snapshot.reason,
                "namespaces": sorted(snapshot.namespaces), "owned": sorted(snapshot.owned),
                "manifests": list(snapshot.manifests), "git": snapshot.git,
                "resources": [resource_to_json(r) for r in sorted(snapshot.resources)]}
        data["sha256"] = content_digest(data)
        self.state.write_json(f"{DIRECTORY}/{snapshot.id}.json", data)

    def load(self, snapshot_id: str) -> Snapshot:
        """Raises SnapshotError naming the file if it is missing or corrupt."""
        path = self.path(snapshot_id)
        if not ID.fullmatch(snapshot_id):
            raise SnapshotError(f"no snapshot {snapshot_id}: snapshot ids look like {new_id()} "
                                f"(`snapshots` lists them)")
        try:
            data = self.state.read_json(f"{DIRECTORY}/{snapshot_id}.json")
        except (OSError, ValueError, NetkeelError) as exc:
            raise SnapshotError(f"snapshot {snapshot_id} is unreadable or corrupt ({path}): "
                                f"{type(exc).__name__}: {exc}") from None
        if data is None:
            raise SnapshotError(f"no snapshot {snapshot_id} (looked for {path})")
        problem = _seal_problem(data) or validation.problem("snapshot", data) or \
            (data["id"] != snapshot_id and f"it names itself {data['id']}") or _resources_problem(data)
        if problem:
            raise SnapshotError(f"snapshot {snapshot_id} is not a valid netkeel snapshot ({path}): {problem}")
        return _snapshot(data)

    def ids(self) -> list:
        """Snapshot ids, oldest first (ids sort by time): regular files named by new_id()."""
        return _ids(self.state.regular_files(DIRECTORY))

    def listing(self) -> list:
        """[(id, Snapshot or the SnapshotError that loading it raised)], oldest
        first; a snapshot's name standing for something else than a regular
        file (a link, a FIFO: never read) is listed with the error it is."""
        entries = self.state.entries(DIRECTORY)
        out = []
        for snapshot_id in _ids(name for name, kind in entries.items() if kind is None):
            try:
                out.append((snapshot_id, self.load(snapshot_id)))
            except SnapshotError as exc:
                out.append((snapshot_id, exc))
        for snapshot_id in _ids(name for name, kind in entries.items() if kind is not None):
            path = self.state.root / DIRECTORY / f"{snapshot_id}.json"
            out.append((snapshot_id, SnapshotError(f"snapshot {snapshot_id} is {entries[snapshot_id + '.json']}, "
                                                   f"not a file netkeel wrote ({path}): never read; remove it")))
        return sorted(out, key=lambda item: item[0])

    def prune(self, keep: int, pinned=()) -> list:
        """Remove all but the newest `keep` snapshots, never one in `pinned` nor one the
        journal still points to (Journal.pinned). Returns the ids removed."""
        ids = self.ids()
        protected = set(pinned) | Journal(self.state).pinned()
        removable = [i for i in ids[:max(0, len(ids) - keep)] if i not in protected]
        for snapshot_id in removable:
            self.state.unlink(f"{DIRECTORY}/{snapshot_id}.json")
        return removable


def _ids(names) -> list:
    """The snapshot ids among these entry names, sorted."""
    return sorted(name[:-5] for name in names if name.endswith(".json") and ID.fullmatch(name[:-5]))


def content_digest(data: dict) -> str:
    """The SHA-256 of a snapshot document's content, its own digest aside."""
    content = {k: v for k, v in data.items() if k != "sha256"}
    return hashlib.sha256(canonical_json(content, sort_keys=True)).hexdigest()


def _seal_problem(data) -> str:
    """What says a snapshot document is not what netkeel wrote, or "". A rollback
    applies it: one flipped bit (an address 10.0.1.2 read as 10.0.1.3) passed
    every other check and was restored "verified" (found by review). Snapshots
    of format 1 (older netkeel) have no digest and are taken as they are."""
    if not isinstance(data, dict):
        return ""  # the schema says what it is not
    written = data.get("format", 1)
    if written == 1 and "sha256" not in data:
        return ""
    if written != FORMAT:
        return f"format {shown(written)} is not one this netkeel reads (1 or {FORMAT})"
    if data.get("sha256") != content_digest(data):
        return "it is damaged: its content does not match the SHA-256 written with it"
    return ""


def _resources_problem(data: dict) -> str:
    """What is wrong with the resources of a snapshot document the schema accepted,
    as each kind checks its keys and specs, or "". A snapshot that passes can be
    restored: every resource of a known kind and owner, its key and spec such as
    the kind hands to the kernel, none twice, and none the topology would make in
    (or reach into) a namespace the snapshot does not list, which a rollback
    checks the ownership of."""
    seen: dict = {}
    for number, resource in enumerate(data["resources"]):
        where = f"resources[{number}]"
        problem = _resource_problem(resource, set(data["namespaces"]))
        if problem:
            return f"{where} ({shown(resource['kind'])} {shown(resource['key'])}): {problem}"
        ident = (FOREIGN_NAMES.get(resource["kind"], resource["kind"]), tuple(resource["key"]))
        if ident in seen:
            return f"{where} ({shown(resource['kind'])} {shown(resource['key'])}) repeats resources[{seen[ident]}]"
        seen[ident] = number
    return ""


def _resource_problem(resource: dict, namespaces: set) -> str:
    name, owner = resource["kind"], resource.get("owner", TOPOLOGY)
    kind = BY_NAME.get(FOREIGN_NAMES.get(name, name))
    if kind is None:
        return f"unknown kind {shown(name)} (netkeel knows {', '.join(NAMES)})"
    if not isinstance(owner, str) or not (owner in (TOPOLOGY, FOREIGN) or is_overlay(owner)):
        return f"unknown owner {shown(owner)}"
    if name in FOREIGN_NAMES or not is_managed(owner):
        # Never made nor removed, only reported: its key as the kernel reader names
        # such objects (a route in table 100), and it may reach anywhere.
        return kind.check_key_shape(resource["key"]) or kind.check_spec(resource["spec"])
    problem = kind.check_key(resource["key"]) or kind.check_spec(resource["spec"])
    if problem:
        return problem
    outside = sorted(kind.reaches(resource["key"], resource["spec"]) - namespaces)
    return f"it is in (or reaches into) namespace {outside[0]}, which the snapshot does not list" if outside else ""


def _check_id(snapshot_id: str) -> None:
    if not ID.fullmatch(snapshot_id):
        raise ValueError(f"not a snapshot id: {snapshot_id!r} (make one with new_id())")


def _snapshot(data: dict) -> Snapshot:
    """A Snapshot from a document the schema accepted."""
    return Snapshot(
        id=data["id"], time=data["time"], instance=data["instance"], topology=data["topology"],
        prefix=data["prefix"], reason=data.get("reason", ""),
        resources=tuple(resource_from_json(r) for r in data["resources"]),
        namespaces=tuple(data["namespaces"]), owned=tuple(data["owned"]),
        manifests=tuple(data.get("manifests", ())), git=data.get("git") or {})


def keep_setting() -> int:
    """How many snapshots to keep ($NETKEEL_SNAPSHOT_KEEP, unset or empty: DEFAULT_KEEP).
    A value that is no whole number of at least 1 is refused, not read as something else."""
    value = os.environ.get(KEEP_ENV, "").strip()
    if not value:
        return DEFAULT_KEEP
    if not (value.isascii() and value.isdigit()) or int(value) < 1:
        raise NetkeelError(f"${KEEP_ENV}={value[:40]!r}: expected how many snapshots to keep, a whole number "
                           f"of 1 or more (unset: {DEFAULT_KEEP})")
    return int(value)
