"""What the nftables reader last found in each namespace, by (cookie, generation).

A namespace's ruleset generation moves with every commit in it, and its cookie
is new if it was deleted and made again (kernel/nftgen.py): while both are what
they were when a namespace's tables were read, the tables are what was read.
So a reader that finds the same (cookie, generation) takes the resources from
here instead of listing and parsing the whole ruleset again. Anything else (an
unknown namespace, another cookie or generation, an unreadable or malformed
file) is a miss, and the reader lists as it always did: this file can make a
command faster, never different.

One file for every namespace (state/cache/nft-rulesets.json), read once per
command when first needed, written once at its end if something new was read,
merged with what other commands wrote meanwhile; a lost update only costs a
listing. Entries of namespaces that no longer exist are dropped on writing.
"""

from __future__ import annotations

from .codec import decode, encode

FILE = "cache/nft-rulesets.json"
FORMAT = 1
KIND = "nft_table"


class RulesetMemo:
    def __init__(self, state, exists=None, trust: bool = True):
        """`exists(ns)` says whether a namespace still exists (entries of gone ones
        are dropped when saving). With `trust` False nothing is taken from the
        file (every read lists: `drift --full`), but what is read is remembered."""
        self.state = state
        self.trust = trust
        self._exists = exists or (lambda name: True)
        self._entries: dict | None = None
        self._new: dict = {}

    def get(self, ns: str, cookie: int, generation: int):
        """The resources read in `ns` at this (cookie, generation), or None."""
        if not self.trust:
            return None
        entry = self._new.get(ns) if ns in self._new else self._loaded().get(ns)
        if not isinstance(entry, dict) or entry.get("cookie") != cookie or entry.get("generation") != generation:
            return None
        try:
            return _decode(ns, entry.get("resources"))
        except (TypeError, ValueError):  # not what put() writes: a hand-edited file, say
            return None

    def put(self, ns: str, cookie: int, generation: int, resources) -> None:
        self._new[ns] = {"cookie": cookie, "generation": generation,
                         "resources": [encode(r) for r in resources]}

    def forget(self, ns: str) -> None:
        """Drop what is known of `ns` (its ruleset changed in a way not followed)."""
        self._new[ns] = None

    def save(self) -> None:
        """Write what this command learned, merged with the file as it is now.
        Never raises: a cache that cannot be written is only slower next time."""
        if not self._new:
            return
        try:
            entries = dict(self._read())
            for ns, entry in self._new.items():
                if entry is None:
                    entries.pop(ns, None)
                else:
                    entries[ns] = entry
            entries = {ns: e for ns, e in entries.items() if self._exists(ns)}
            self.state.write_json(FILE, {"format": FORMAT, "namespaces": entries}, durable=False, compact=True)
            self._new = {}
        except Exception:  # noqa: BLE001 - full state dir, unsafe file, ...: the next read lists
            pass

    def _loaded(self) -> dict:
        if self._entries is None:
            self._entries = self._read()
        return self._entries

    def _read(self) -> dict:
        try:
            data = self.state.read_json(FILE, {})
        except Exception:  # noqa: BLE001 - corrupt or unsafe: a miss, rewritten on saving
            return {}
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("namespaces"), dict):
            return {}
        return data["namespaces"]


def _decode(ns: str, items) -> list:
    """Resources of namespace `ns` from an entry. Raises ValueError unless it is
    exactly what put() writes."""
    if not isinstance(items, list):
        raise ValueError("not a list")
    out = [decode(item) for item in items]
    if any(r.kind != KIND or len(r.key) != 3 or r.key[0] != ns for r in out):
        raise ValueError("not this namespace's tables")
    return out
