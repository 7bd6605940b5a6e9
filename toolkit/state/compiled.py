"""The compile cache: a topology's compiled resources, kept by the bytes they came from.

Loading a manifest (YAML with line marks, the schema, the semantic checks) and
compiling its policies costs more than anything else in a no-op apply or a
drift check of a large firewall (0.6 s of 0.9 s for 10,000 rules). Its result
depends only on the bytes of the files read, on netkeel's own code (and the
libraries that parse and check), and on the namespace prefix. So each command
that loads and compiles successfully keeps the result here, and the next one
that names the same manifest takes it if, and only if:

  * the code fingerprint is the same (netkeel's source files, the YAML, schema
    and libnftables libraries, by path, size and modification time);
  * every file the load read has the same SHA-256 now (read again, whole), and
    may still be read (a policy file must be inside the manifest's repository
    or directory: a link pointing elsewhere since is a miss, and the load refuses it);
  * the manifest path, the working directory (relative paths) and the prefix
    are the same (they are the entry's name).

Anything else, or any doubt (unreadable, malformed, foreign entry), is a miss:
the command loads as it always did. Bad input is never cached, so a manifest
that fails keeps failing with its messages. Entries are written by netkeel in
its own state directory (0700, checked by statedir.py), sealed by their SHA-256
(a damaged entry is a miss); reading one checks its shape and that every
resource lives in a namespace of its prefix.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from pathlib import Path

from .codec import decode, encode
from .statedir import canonical_json, json_line, parse_sealed_json

DIRECTORY = "cache/compiled"
FORMAT = 4  # two lines, sealed (statedir.write_sealed): a header, then the resources (4: tables' `_shown`)
KEEP = 64  # entries; the oldest beyond this are removed on writing


@functools.lru_cache(maxsize=1)
def fingerprint() -> str:
    """Netkeel's code and the libraries a compile depends on, by path, size and
    modification time: a change of any makes every entry a miss."""
    digest = hashlib.sha256(sys.version.encode())
    package = Path(__file__).resolve().parents[1]
    for root, dirs, files in os.walk(package):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")  # bytecode and generated validators: not sources
        for name in sorted(files):
            if name.endswith((".py", ".json")):
                _stat_into(digest, os.path.join(root, name))
    for entry in sys.path:  # the parsers and checkers, found without importing them
        for module in ("yaml/__init__.py", "_yaml", "jsonschema/__init__.py", "nftables.py"):
            _stat_into(digest, os.path.join(entry or ".", module))
    for libdir in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/lib"):
        _stat_into(digest, os.path.join(libdir, "libnftables.so.1"))
    return digest.hexdigest()


def _stat_into(digest, path: str) -> None:
    try:
        info = os.stat(path)
    except OSError:
        return
    digest.update(f"{path}\0{info.st_size}\0{info.st_mtime_ns}\0".encode())


def entry_name(directory: str, form: int, manifest: str, prefix: str) -> str:
    """The file of a cache entry for a manifest path, prefix and working directory
    (relative paths), made by this code in this entry format."""
    key = json.dumps([form, fingerprint(), os.getcwd(), str(manifest), prefix])
    return f"{directory}/{hashlib.sha256(key.encode()).hexdigest()[:40]}.json"


def unchanged(reads, manifest: str, read, refused) -> bool:
    """Whether every file a load read ({path: sha256}, the manifest among them)
    has the same bytes now and may still be read (`refused(path, manifest)`, as
    CompileCache takes it, is None for each: manifest.files.no_longer_readable).
    Never raises."""
    if not isinstance(reads, dict) or manifest not in reads:
        return False
    for path, digest in reads.items():
        try:
            if refused(path, manifest) is not None:
                return False
            if hashlib.sha256(read(path)).hexdigest() != digest:
                return False
        except Exception:  # noqa: BLE001 - gone or unreadable now: load as usual (and report it)
            return False
    return True


class Recorder:
    """Wraps a manifest reader (`read(path) -> bytes`), noting each file it read
    and the SHA-256 of what it got."""

    def __init__(self, read):
        self._read = read
        self.reads: dict = {}
        # A git revision's reader says where its repository is: the path checks of
        # what a revision names are the revision's, not the working tree's.
        self.root = getattr(read, "root", None)

    def __call__(self, path):
        data = self._read(path)
        self.reads[str(path)] = hashlib.sha256(data).hexdigest()
        return data


class CompileCache:
    def __init__(self, state, read, refused=None):
        """`read(path) -> bytes` reads manifests (manifest.files.read_file);
        `refused(path, manifest)` says why a file the manifest names may not be
        read now (manifest.files.outside_problem: a link that points elsewhere
        since, an environment that no longer allows it), or None: asked again of
        every file at each lookup, since it depends on more than their bytes."""
        self.state = state
        self._read = read
        self._refused = refused or (lambda path, manifest: None)

    def _name(self, manifest: str, prefix: str) -> str:
        """One entry per manifest, prefix and working directory: the code
        fingerprint is inside (another code's entry is a miss, and replaced), so
        an upgrade leaves no entries of megabytes behind."""
        key = json.dumps([FORMAT, os.getcwd(), str(manifest), prefix])
        return f"{DIRECTORY}/{hashlib.sha256(key.encode()).hexdigest()[:40]}.json"

    def lookup(self, manifest, prefix: str) -> Compiled | None:
        """The compiled topology if every file it came from is unchanged; else None.
        An entry is two lines under a seal: the header (what it came from) is
        read first, alone and unchecked, to tell a miss (an edited policy) without
        reading and hashing the resources (25 MB for 50,000 rules); an entry that
        may answer is read whole, its seal checked, and its resources parsed."""
        try:
            name = self._name(manifest, prefix)
            head = self.state.read_sealed_head(name, 1)
            if head is not None and not self._holds(parse_sealed_json(head[0]), str(manifest), prefix):
                return None
            found = self.state.read_sealed(name)
            if found is None or len(found) != 2:
                return None
            data = parse_sealed_json(found[0])
            if (head is None or found[0] != head[0]) and not self._holds(data, str(manifest), prefix):
                return None  # (written again between the two reads: the sealed header is asked)
            return self._made(data, found[1], prefix)
        except Exception:  # noqa: BLE001 - unreadable, unsafe, malformed: load as usual
            return None

    def _holds(self, data, manifest: str, prefix: str) -> bool:
        """Whether an entry's header is this netkeel's, for this manifest and
        prefix, and every file it was compiled from is unchanged."""
        return isinstance(data, dict) and data.get("format") == FORMAT and data.get("manifest") == manifest \
            and data.get("prefix") == prefix and data.get("code") == fingerprint() \
            and unchanged(data["reads"], manifest, self._read, self._refused)

    def _made(self, data: dict, rest, prefix: str) -> Compiled | None:
        desired = frozenset(decode(item) for item in parse_sealed_json(rest))
        if not all(isinstance(r.key[0], str) and r.key[0].startswith(prefix) for r in desired):
            return None
        files = tuple((str(p), str(h)) for p, h in data["files"])
        nodes = data["nodes"]
        if not (isinstance(data["name"], str) and isinstance(nodes, list) and all(isinstance(n, str) for n in nodes)):
            return None
        from ..model.compiled import Compiled  # (a dataclass: a quick answer needs none)

        return Compiled(name=data["name"], source=str(data["manifest"]), prefix=prefix, node_names=tuple(nodes),
                        desired=desired, files=files, reads=dict(data["reads"]))

    def store(self, manifest, prefix: str, compiled: Compiled, reads: dict) -> None:
        """Keep `compiled` for the files `reads` ({path: sha256}) named. Never raises.
        Only into a state directory that exists: a plan or drift given a mistyped
        --state-dir must not make one (an apply makes it with its first record)."""
        if not self.state.root.is_dir():
            return
        try:
            resources = canonical_json([encode(r) for r in sorted(compiled.desired)])
            header = {"format": FORMAT, "code": fingerprint(), "manifest": str(manifest), "prefix": prefix,
                      "reads": reads, "name": compiled.name, "nodes": list(compiled.node_names),
                      "files": [list(f) for f in compiled.files]}
            self.state.write_sealed(self._name(manifest, prefix), [json_line(header), resources], durable=False)
            self.state.keep_newest(DIRECTORY, KEEP)
        except Exception:  # noqa: BLE001 - a cache that cannot be written is only slower next time
            pass
