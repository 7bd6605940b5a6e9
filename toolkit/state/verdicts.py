"""In-sync verdicts: what lets a drift check or a no-op apply answer "in sync"
without loading the manifest, compiling it or listing a ruleset.

When a whole comparison finds a topology instance in sync (a clean `drift`, an
`apply` with nothing to do), the command keeps here what that answer rested on:

  * the files its manifest load read, by SHA-256 (as the compile cache keeps
    them), netkeel's code fingerprint, the working directory, the manifest path
    and prefix (the entry's name), and the boot;
  * the state directory's parts that change what a command does or says
    (inventory and identities by content; journal, trials and fault leases by
    file identity: any change to them since is a change here);
  * what the read asked for (namespaces, sysctls, veth peers) and a digest of
    what it found, nftables aside;
  * for each namespace read, its nftables marks (cookie, ruleset generation,
    devices): taken only where the ruleset memo holds the tables those marks
    stand for (state/rulesets.py), so equal marks mean equal tables; and the
    namespaces where a table of ours is read as JSON, never by its text (it
    has no text to send): what a drift reads ahead there when the marks moved
    (cli/quick.py), speed alone.

A quick check (cli/quick.py) then reads the same namespaces again, marks
instead of tables, and if every one of these is what it was, the comparison
would find what it found: in sync. Anything else, or any doubt, and the command
runs as it always does. A verdict can make a command faster, never different.
"""

from __future__ import annotations

import hashlib
import os
import stat

from .rulesets import boot_id

DIRECTORY = "cache/verdicts"
FORMAT = 3  # 3: live_digest over each resource's repr
KEEP = 64  # entries; the oldest beyond this are removed on writing
MAX_BYTES = 16 * 1024 * 1024  # a larger file is not one netkeel wrote (a 2,000-node lab's: ~1 MB)
NFT_KIND = "nft_table"  # what nftables.read yields, foreign tables included: known by marks
# Hashed whole: small, and what ownership checks read.
CONTENT = ("inventory.json", "identities.json", "identities.log")
# Known by file identity: the journal (any change appends), trials and leases.
IDENTITY = ("journal.jsonl", "journal-index.json")
LISTED = ("trials", "leases")


def entry_name(manifest: str, prefix: str) -> str:
    from .compiled import entry_name as cache_entry

    return cache_entry(DIRECTORY, FORMAT, manifest, prefix)


def live_digest(resources) -> str:
    """The SHA-256 of what a read found, nftables tables aside (their marks stand
    for them). Each resource as Python writes its tuple (text, numbers, None and
    tuples of those, text escaped): a third of the time of JSON, 7,000 resources
    of a 1,000-node lab in 18 ms."""
    shown = sorted(repr((r.kind, r.key, r.owner, r.spec)) for r in resources if r.kind != NFT_KIND)
    return hashlib.sha256("\n".join(shown).encode()).hexdigest()


def state_stamp(state) -> str:
    """A digest of the state directory's parts that change a command's answer."""
    digest = hashlib.sha256()
    with state.directory() as fd:
        for name in CONTENT:
            content = state.read_bytes(name)
            digest.update(f"{name}\0{'-' if content is None else hashlib.sha256(content).hexdigest()}\0".encode())
        for name in IDENTITY:
            digest.update(f"{name}\0{_identity(name, fd)}\0".encode())
    for directory in LISTED:
        try:
            with state.directory(directory) as fd:
                names = sorted(os.listdir(fd))
                for name in names:
                    digest.update(f"{directory}/{name}\0{_identity(name, fd)}\0".encode())
        except FileNotFoundError:
            digest.update(f"{directory}\0-\0".encode())
    return digest.hexdigest()


def _identity(name: str, dir_fd: int) -> str:
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return "-"
    return f"{stat.S_IFMT(info.st_mode)}:{info.st_ino}:{info.st_size}:{info.st_mtime_ns}:{info.st_ctime_ns}"


def hints_record(hints: dict):
    """Read hints as JSON (kinds.read_hints: sysctls per namespace, veth peers), or
    None for hints of another shape (no verdict then)."""
    if set(hints) - {"sysctls", "veth_peers"}:
        return None
    return {"sysctls": {ns: sorted(names) for ns, names in sorted(hints.get("sysctls", {}).items())},
            "veth_peers": sorted([ns, ifname, peer] for (ns, ifname), peer in hints.get("veth_peers", {}).items())}


def hints_from(record: dict) -> dict:
    """The hints a record holds (hints_record's inverse). Raises on a malformed one."""
    sysctls = {str(ns): {str(n) for n in names} for ns, names in record["sysctls"].items()}
    peers = {(str(ns), str(ifname)): str(peer) for ns, ifname, peer in record["veth_peers"]}
    return {"sysctls": sysctls, "veth_peers": peers}


def marks_record(marks: dict) -> dict:
    return {ns: [cookie, generation, devices] for ns, (cookie, generation, devices) in sorted(marks.items())}


class Verdicts:
    def __init__(self, state):
        self.state = state

    def load(self, manifest: str, prefix: str) -> dict | None:
        """The verdict kept for this manifest and prefix (this code, this working
        directory, this boot), or None. Never raises."""
        try:
            # Sealed: one flipped bit must not be believed; larger than MAX_BYTES: not read.
            data = self.state.read_sealed_json(entry_name(manifest, prefix), limit=MAX_BYTES)
            if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("manifest") != str(manifest) \
                    or data.get("prefix") != prefix or data.get("boot") != boot_id() or not boot_id():
                return None
            return data
        except Exception:  # noqa: BLE001 - unreadable, unsafe, malformed: no verdict
            return None

    def forget(self, manifest: str, prefix: str) -> None:
        """Remove the verdict kept for this manifest and prefix: a whole
        comparison found what it no longer stands for. Never raises."""
        try:
            self.state.unlink(entry_name(manifest, prefix))
        except Exception:  # noqa: BLE001 - none kept, or unsafe: nothing to believe either way
            pass

    def record(self, manifest: str, prefix: str, name: str, reads: dict, names, hints: dict, marks: dict,
               live, stamp: str, by_json=()) -> bool:
        """Keep an in-sync verdict (see the module's docstring): `stamp` is the
        state_stamp() taken before the caller checked the state; False if what
        the verdict would rest on is not all known. Never raises."""
        hints = hints_record(hints)
        if hints is None or not reads or not self.state.root.is_dir():
            return False
        data = {"format": FORMAT, "manifest": str(manifest), "prefix": prefix, "boot": boot_id(), "name": name,
                "reads": reads, "names": sorted(names), "hints": hints, "marks": marks_record(marks),
                "live": live_digest(live), "state": stamp, "by_json": sorted(by_json)}
        try:
            self.state.write_sealed_json(entry_name(manifest, prefix), data, durable=False)
            self.state.keep_newest(DIRECTORY, KEEP)
        except Exception:  # noqa: BLE001 - a verdict that cannot be kept only costs a whole comparison
            return False
        return True
