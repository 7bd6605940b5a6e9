"""What the nftables reader last found in each namespace, by (cookie, generation, devices).

A namespace's ruleset generation moves with every commit in it, and its cookie
is new if it was deleted and made again (kernel/nftgen.py): while both are what
they were when a namespace's tables were read, the tables are what was read;
and while its devices keep their indexes, a rule naming one by index (`iif`)
still means the same device.
So a reader that finds the same (cookie, generation) takes the resources from
here instead of listing and parsing the whole ruleset again. Anything else (an
unknown namespace, another cookie or generation, an unreadable or malformed
file) is a miss, and the reader lists as it always did: this file can make a
command faster, never different. The index is sealed by its SHA-256
(statedir.write_sealed) and each large entry named by its own: a flipped bit
is a miss, never a ruleset believed.

One index for every namespace (state/cache/nft-rulesets.json), read once per
command when first needed, written once at its end if something new was read,
merged with what other commands wrote meanwhile; a lost update only costs a
listing. A large entry (a 10,000-rule table) lives in a file of its own named
by the SHA-256 of its content, read (and checked against its name) only by a
command that reads that namespace. Entries of namespaces that no longer exist
are dropped on writing, and files no entry names are removed; the whole index
belongs to one boot (cookies are unique within a boot only).
"""

from __future__ import annotations

import hashlib
import json
import time

from ..core.owners import TOPOLOGY
from .codec import decode, encode
from .compiled import fingerprint
from .statedir import SEALED_LIMIT, canonical_json, parse_sealed_json, plain_json_bytes

FILE = "cache/nft-rulesets.json"
DIRECTORY = "cache/nft-rulesets"  # large entries, one file each, named by their SHA-256
FORMAT = 6  # 6: a table's rule handles by position (_compact)
INLINE = 32 * 1024  # bytes of JSON: larger entries go to a file of their own
KIND = "nft_table"


PROVEN = 256  # content digests kept (see prove())
# Recipes (kernel/nft_recipes.py: the batch that makes a proven table, 5 MB
# for 10,000 rules), each in a file of its own named by its table's name and
# content, its SHA-256 in the sealed index; the newest kept.
RECIPES = "cache/nft-recipes"
RECIPES_KEPT = 64
RECIPE_BYTES = 128 << 20  # and at most this much of them (a 50,000-rule table's is 26 MB)


def content_digest(resource) -> str:
    """The SHA-256 of a table's compared fields (information fields aside)."""
    try:
        return _DIGESTS[resource.spec]
    except (KeyError, TypeError):  # (TypeError: a field's value that does not hash)
        pass
    compared = [[k, v] for k, v in resource.spec if not k.startswith("_")]
    digest = hashlib.sha256(canonical_json(compared)).hexdigest()
    try:
        if len(_DIGESTS) >= 32:
            _DIGESTS.clear()
        _DIGESTS[resource.spec] = digest
    except TypeError:
        pass
    return digest


# A command asks for one table's digest several times (proven? its recipe? its
# commit followed?): 15-20 ms each at 10,000 rules. Remembered by the spec itself.
_DIGESTS: dict = {}


class RulesetMemo:
    def __init__(self, state, exists=None, trust: bool = True):
        """`exists(ns)` says whether a namespace still exists (entries of gone ones
        are dropped when saving). With `trust` False nothing is taken from the
        file (every read lists: `drift --full`), but what is read is remembered."""
        self.state = state
        self.trust = trust
        self._exists = exists or (lambda name: True)
        self._entries: dict | None = None   # the file's entries, as read
        self._proven: list | None = None    # the file's proven content digests, oldest first
        self._refuted: list | None = None   # and those a proof failed for (see refute())
        self._recipes: list | None = None   # the file's [recipe name, its SHA-256], oldest first
        self._known: dict = {}              # ns -> (cookie, generation, devices, resources): decoded or put
        self._new: dict = {}                # ns -> (cookie, generation, devices, resources), to save
        self._new_proven: list = []
        self._new_refuted: list = []
        self._new_recipes: dict = {}        # recipe name -> its bytes, to save

    def get(self, ns: str, cookie: int, generation: int, devices: list):
        """The resources read in `ns` at this (cookie, generation, devices), or None."""
        known = self._known.get(ns)
        if known is not None and known[:2] == (cookie, generation) and known[2] in (None, devices):
            return list(known[3])
        if not self.trust or ns in self._new:
            return None
        entry = self._loaded().get(ns)
        if not isinstance(entry, dict) or entry.get("cookie") != cookie or entry.get("generation") != generation \
                or entry.get("devices") not in (None, devices):
            return None
        try:
            resources = _decode(ns, self._resources_of(entry))
        except Exception:  # noqa: BLE001 - not what save() writes (a hand-edited file, a FIFO ...): a miss
            return None
        self._known[ns] = (cookie, generation, devices, tuple(resources))
        return resources

    def knows(self, ns: str, cookie: int, generation: int) -> bool:
        """Whether an entry for `ns` at (cookie, generation) is kept (its
        resources not read: a hint, not an answer). Never raises."""
        try:
            entry = self._loaded().get(ns) if self.trust else None
        except Exception:  # noqa: BLE001 - unreadable: not known
            return False
        return isinstance(entry, dict) and entry.get("cookie") == cookie and entry.get("generation") == generation

    def _resources_of(self, entry: dict):
        """An entry's resources, inline or from its own file (whose content must
        hash to the name the entry gives). Raises ValueError, OSError."""
        if "digest" not in entry:
            return entry.get("resources")
        digest = entry["digest"]
        if not _hex(digest):
            raise ValueError("bad digest")
        content = self.state.read_bytes(f"{DIRECTORY}/{digest}.json", limit=SEALED_LIMIT)
        if content is None or hashlib.sha256(content).hexdigest() != digest:
            raise ValueError("entry file missing or changed")
        return parse_sealed_json(content)  # its content hashes to its name: as sealed

    def put(self, ns: str, cookie: int, generation: int, devices: list, resources) -> None:
        """Remember what `ns` holds at (cookie, generation); with its devices only
        if a table of ours is among it (a foreign table is read by its name alone,
        and an empty ruleset means the same whatever devices come and go)."""
        resources = tuple(resources)
        if not any(r.owner == TOPOLOGY for r in resources):
            devices = None
        self._known[ns] = self._new[ns] = (cookie, generation, devices, resources)

    def prove(self, tables) -> None:
        """Note that the kernel listed these tables back exactly so: a commit of
        the same content may later be followed without listing it (nftables._follow),
        the compiler's form of it being what the kernel lists."""
        _note(tables, self._new_proven)

    def proven(self, table) -> bool:
        """Whether this content was listed back exactly so before (by this netkeel, this boot)."""
        return self._noted(table, self._new_proven, lambda: self._proven)

    def keep_recipe(self, table, made: bytes) -> None:
        """Keep the recipe a plan's proof made of this table's content (nft_proof.py)."""
        self._new_recipes[recipe_name(table)] = made

    def recipe(self, table) -> bytes | None:
        """The recipe of this table's content, if it is proven and one was kept
        (its bytes as written: checked against the sealed index's digest)."""
        if not self.proven(table):
            return None
        name = recipe_name(table)
        if name in self._new_recipes:
            return self._new_recipes[name]
        if not self.trust:
            return None
        self._loaded()
        digest = dict(self._recipes or ()).get(name)
        if not isinstance(digest, str):
            return None
        try:
            content = self.state.read_bytes(f"{RECIPES}/{name}", limit=SEALED_LIMIT)
        except Exception:  # noqa: BLE001 - unsafe or unreadable: no recipe, the text goes
            return None
        if content is None or hashlib.sha256(content).hexdigest() != digest:
            return None
        return content

    def refute(self, tables) -> None:
        """Note that a proof of these tables' content failed (a plan's, in a
        throwaway namespace: kernel/nft_proof.py): it read back otherwise than
        sent, or took too long. Plans do not try it again; an apply of it lists
        it back, as for any content never proven."""
        _note(tables, self._new_refuted)

    def refuted(self, table) -> bool:
        """Whether a proof of this content failed before (this netkeel, this boot)."""
        return self._noted(table, self._new_refuted, lambda: self._refuted)

    def _noted(self, table, new: list, kept) -> bool:
        """Whether the table's content is in `new` (noted by this command) or
        in what `kept()` gives of the file (unless not trusted)."""
        digest = content_digest(table)
        if digest in new:
            return True
        if not self.trust:
            return False
        self._loaded()
        return digest in (kept() or ())

    def save(self) -> None:
        """Write what this command learned, merged with the file as it is now.
        Never raises: a cache that cannot be written is only slower next time."""
        if not (self._new or self._new_proven or self._new_refuted or self._new_recipes) \
                or not self.state.root.is_dir():
            return  # nothing new, or no state directory to keep it in (see compiled.store)
        try:
            entries, proven, refuted, recipes = self._read()
            entries = dict(entries)
            proven = [d for d in proven if d not in self._new_proven] + self._new_proven
            refuted = [d for d in refuted if d not in self._new_refuted] + self._new_refuted
            for ns, (cookie, generation, devices, resources) in self._new.items():
                encoded = [encode(_compact(r)) for r in resources]
                # Text, integers and None only (a table's fields are canonical texts, its
                # handles numbers): orjson's line, 3.3 MB of a 10,000-rule table in 7 ms (json: 16).
                content = plain_json_bytes(encoded) + b"\n"
                entry = {"cookie": cookie, "generation": generation, "devices": devices}
                if len(content) <= INLINE:
                    entry["resources"] = encoded
                else:
                    entry["digest"] = digest = hashlib.sha256(content).hexdigest()
                    if f"{digest}.json" not in self.state.regular_files(DIRECTORY):  # named by content
                        self.state.write_bytes(f"{DIRECTORY}/{digest}.json", content, durable=False)
                entries[ns] = entry
            entries = {ns: e for ns, e in entries.items() if self._exists(ns)}
            for name, made in self._new_recipes.items():
                digest = hashlib.sha256(made).hexdigest()
                if [name, digest] not in recipes:
                    self.state.write_bytes(f"{RECIPES}/{name}", made, durable=False)
                recipes = [r for r in recipes if r[0] != name] + [[name, digest]]
            recipes = _newest(recipes[-RECIPES_KEPT:], self.state)
            self.state.write_sealed_json(FILE, {"format": FORMAT, "boot": boot_id(), "code": fingerprint(),
                                                "namespaces": entries, "proven": proven[-PROVEN:],
                                                "refuted": refuted[-PROVEN:], "recipes": recipes}, durable=False)
            self._new, self._new_proven, self._new_refuted, self._new_recipes = {}, [], [], {}
            kept = {name for name, _ in recipes}
            for name in self.state.regular_files(RECIPES):
                if name not in kept and _stale(self.state, name):
                    self.state.unlink(f"{RECIPES}/{name}")
            used = {f"{e.get('digest')}.json" for e in entries.values() if isinstance(e, dict)}
            for name in self.state.regular_files(DIRECTORY):
                if name not in used:  # another command's entry file written since is rewritten when needed
                    self.state.unlink(f"{DIRECTORY}/{name}")
        except Exception:  # noqa: BLE001 - full state dir, unsafe file, ...: the next read lists
            pass

    def _loaded(self) -> dict:
        if self._entries is None:
            self._entries, self._proven, self._refuted, self._recipes = self._read()
        return self._entries

    def _read(self) -> tuple:
        """(entries by namespace, proven digests, refuted digests, recipes) of the
        file; ({}, [], [], []) unless it is this format, this boot's (cookies start again
        at each boot) and this netkeel's (its canonical forms may differ from
        another's)."""
        try:
            data = self.state.read_sealed_json(FILE)  # a damaged file would be believed: sealed
        except Exception:  # noqa: BLE001 - corrupt or unsafe: a miss, rewritten on saving
            return {}, [], [], []
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("namespaces"), dict):
            return {}, [], [], []
        if data.get("boot") != boot_id() or data.get("code") != fingerprint():
            return {}, [], [], []
        return (data["namespaces"], _digests(data.get("proven")), _digests(data.get("refuted")),
                _recipes(data.get("recipes")))


def _note(tables, into: list) -> None:
    for table in tables:
        digest = content_digest(table)
        if digest not in into:
            into.append(digest)


def _stale(state, name: str) -> bool:
    """A recipe file no index names, written a minute ago or more: not one a
    command running beside this one wrote before its index (found by review:
    a plan's fresh recipes swept by an apply's save)."""
    try:
        return time.time() - state.path(f"{RECIPES}/{name}").lstat().st_mtime >= 60
    except OSError:
        return False


def _newest(recipes: list, state) -> list:
    """The newest recipes whose files hold RECIPE_BYTES at most together."""
    kept, total = [], 0
    for name, digest in reversed(recipes):
        try:
            total += state.path(f"{RECIPES}/{name}").lstat().st_size
        except OSError:
            continue  # gone: not kept
        if total > RECIPE_BYTES:
            break
        kept.append([name, digest])
    return kept[::-1]


def _recipes(value) -> list:
    """[[name, digest]] as save() writes them (hex names: file names of our own)."""
    if not isinstance(value, list):
        return []
    return [[n, d] for n, d in (r for r in value if isinstance(r, list) and len(r) == 2)
            if _hex(n) and _hex(d)]


def _hex(value) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def recipe_name(table) -> str:
    """A recipe's file name: its table's family, name and content (a recipe names its table)."""
    _, family, name = table.key
    return hashlib.sha256(json.dumps([family, name, content_digest(table)]).encode()).hexdigest()


def _digests(value) -> list:
    return [d for d in value if isinstance(d, str)] if isinstance(value, list) else []


def boot_id() -> str:
    """This boot's id: namespace cookies are unique within a boot only."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def _decode(ns: str, items) -> list:
    """Resources of namespace `ns` from an entry. Raises ValueError unless it is
    exactly what put() writes."""
    if not isinstance(items, list):
        raise ValueError("not a list")
    out = [_expanded(decode(item)) for item in items]
    if any(r.kind != KIND or len(r.key) != 3 or r.key[0] != ns for r in out):
        raise ValueError("not this namespace's tables")
    return out


# A live table's `_handles` is (chain, rule, handle) for each rule, the rule being
# its canonical form: at 10,000 rules, half the entry again. Kept as
# HANDLE_NUMBERS, per chain its rules' handles in order, wherever that gives
# `_handles` back exactly from the table's `rules CHAIN` fields.
HANDLE_NUMBERS = "_handle_numbers"


def _compact(table):
    handles = table.get("_handles")
    if not handles:
        return table
    numbers: dict = {}
    for chain, _, handle in handles:
        numbers.setdefault(chain, []).append(handle)
    by_chain = tuple((chain, tuple(found)) for chain, found in numbers.items())
    try:
        if _handles_of(by_chain, table) != tuple(tuple(h) for h in handles):
            return table  # not in the rules' order: kept as it is
    except ValueError:
        return table  # not a handle per rule
    return table.with_fields(_handles=None, **{HANDLE_NUMBERS: by_chain})


def _expanded(table):
    by_chain = table.get(HANDLE_NUMBERS)
    if by_chain is None:
        return table
    return table.with_fields(_handles=_handles_of(by_chain, table), **{HANDLE_NUMBERS: None})


def _handles_of(by_chain, table) -> tuple:
    """`_handles` from HANDLE_NUMBERS and the table's rules. Raises ValueError where they do not align."""
    out = []
    for chain, numbers in by_chain:
        rules = table.get(f"rules {chain}", ())
        if not isinstance(chain, str) or len(numbers) != len(rules):
            raise ValueError("handles and rules do not align")
        out += [(chain, rule, handle) for rule, handle in zip(rules, numbers)]
    return tuple(out)
