"""The text nft printed for each rule form seen (kernel/nft_forms.py), kept across commands.

A rule's form (its dumped attributes, handle and position left out, counters'
values zeroed) says what the rule is; for a learnable form (no device named by
index, no other set's elements, no stateful or unknown expression) it also
says what nft prints for it. So the reader, after another tool committed in a
namespace, dumps a table's rules and takes each rule of a form noted here for
the text noted with it, listing the table only if a rule's form is new
(kernel/nftables.read_table_text).

Forms are noted only for rules a listing printed exactly as netkeel sent a
desired rule (another tool's rule teaches nothing: it is listed whenever it is
met), and only by this netkeel with this libnftables (the code fingerprint,
which covers the library): another nft may print otherwise. A form holds its
table's name, so they are kept by table (family and name), one sealed file
each (state/cache/nft-rule-forms/): a small lab's reading never reads a large
one's forms. Each is read when first needed, written at the end of a command
that noted something new for it, merged with what other commands wrote
meanwhile; a lost update only costs a listing. At most LIMIT forms per table,
the oldest dropped first, and SHARDS tables, the least lately written
dropped. A file that is not this exactly is a miss: it can make a read
faster, never different.

Beside them, per namespace and table, the text of a rule of a form never
learnable that the table's last listing held (BLOCKERS, small): reading that
table by forms would give up at that rule each time, so it is listed at once
while that rule stands.
"""

from __future__ import annotations

import hashlib
import re

from .compiled import fingerprint
from .statedir import plain_json_line

DIRECTORY = "cache/nft-rule-forms"
BLOCKERS = "cache/nft-rule-forms-blockers.json"
FORMAT = 1
LIMIT = 50_000   # forms kept per table (some 6 MB at 120 bytes each)
SHARDS = 64      # tables whose forms are kept
TABLES = 10_000  # namespaces' tables whose blocker is kept
_DIGEST = re.compile(r"[0-9a-f]{32}")


class RuleForms:
    """The forms kept in a state directory; table() gives one table's."""

    def __init__(self, state, trust: bool = True):
        """With `trust` False nothing is taken from the files (`drift --full`),
        but what is noted is kept."""
        self.state = state
        self.trust = trust
        self._tables: dict = {}             # (family, table) -> _Shard
        self._blockers: dict | None = None  # "ns family table" -> a rule's text, as read
        self._new_blockers: dict = {}

    def table(self, ns: str, family: str, name: str) -> "TableForms":
        """The forms of one table, as read in namespace `ns`."""
        shard = self._tables.get((family, name))
        if shard is None:
            shard = self._tables[(family, name)] = _Shard(self, family, name)
        return TableForms(self, shard, f"{ns} {family} {name}")

    def save(self) -> None:
        """Write what was noted, merged with the files as they are now. Never
        raises: a file that cannot be written only costs a listing."""
        if not self.state.root.is_dir():
            return
        try:
            written = False
            for shard in self._tables.values():
                written = shard.save() or written
            if written:
                self._prune()
            if self._new_blockers:
                blockers = {k: v for k, v in self._read(BLOCKERS).items() if isinstance(v, str)}
                blockers.update(self._new_blockers)
                self._write(BLOCKERS, dict([(k, v) for k, v in blockers.items() if v is not None][-TABLES:]))
                self._new_blockers = {}
        except Exception:  # noqa: BLE001 - full state dir, unsafe file, ...: the next read lists
            pass

    def _blocker(self, key: str) -> str | None:
        if key in self._new_blockers:
            return self._new_blockers[key]
        if not self.trust:
            return None
        if self._blockers is None:
            self._blockers = self._read(BLOCKERS)
        found = self._blockers.get(key)
        return found if isinstance(found, str) else None

    def _prune(self) -> None:
        """Drop the files of the tables least lately written beyond SHARDS."""
        names = self.state.regular_files(DIRECTORY)
        if len(names) > SHARDS:
            paths = sorted((self.state.root / DIRECTORY / name for name in names), key=lambda p: p.stat().st_mtime)
            for path in paths[:len(names) - SHARDS]:
                self.state.unlink(f"{DIRECTORY}/{path.name}")

    def _write(self, relative: str, entries: dict) -> None:
        self.state.write_sealed(relative, [plain_json_line({"format": FORMAT, "code": fingerprint(),
                                                            "entries": entries})], durable=False)

    def _read(self, relative: str) -> dict:
        """A file's entries, or {} unless it is this format and this netkeel's
        (with this libnftables: the code fingerprint covers it)."""
        try:
            data = self.state.read_sealed_json(relative)  # sealed: a damaged file would be believed
        except Exception:  # noqa: BLE001 - corrupt or unsafe: a miss, rewritten on saving
            return {}
        if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("code") != fingerprint() \
                or not isinstance(data.get("entries"), dict):
            return {}
        return data["entries"]


class TableForms:
    """One table's forms, as read in one namespace: the text noted for each
    form (kept per table), and the table's blocker there."""

    def __init__(self, kept: RuleForms, shard: "_Shard", key: str):
        self._kept, self._shard, self._key = kept, shard, key

    def text(self, form) -> str | None:
        """The text nft printed for a rule of this form, if noted (and the
        counter pattern matched where it did then: nft_forms.Form)."""
        found = self._shard.new.get(form.digest)
        if found is None and self._kept.trust:
            found = _entry(self._shard.loaded().get(form.digest))
        return found[0] if found is not None and found[1] == form.matches else None

    def serves(self) -> bool:
        """Whether to read this table by its rules' forms: its last listing in
        this namespace did not hold a rule of a form never learnable (an
        anonymous set, a device by index, ...), and some form is known."""
        return self.blocker() is None and (bool(self._shard.new) or (self._kept.trust and bool(self._shard.loaded())))

    def blocker(self) -> str | None:
        """The text of a rule of a form never learnable that the table's last
        listing in this namespace held (note_blocker), if any."""
        return self._kept._blocker(self._key)

    def note(self, form, text: str) -> None:
        """Note that nft printed a rule of this (learnable) form as `text`."""
        self._shard.new[form.digest] = (text, form.matches)

    def note_blocker(self, text: str | None) -> None:
        """Note the text of a rule of a form never learnable that the table's
        listing in this namespace holds (None: every rule's form is learnable)."""
        self._kept._new_blockers[self._key] = text

    def rules_dumped(self, generation: int, dumped: list, raw: dict) -> None:
        """The table's rules as a reading dumped them at `generation` ([(chain,
        handle)] in order, and each one's attributes by handle as (buffer, start,
        end)): not kept here (a plan's proof makes its recipe of them,
        kernel/nft_proof.py)."""

    def merge(self, noted) -> None:
        """Take forms another process noted ({digest: [text, matches]}: a plan's
        proof, kernel/nft_proof.py)."""
        self._shard.new.update(_valid(noted))


class _Shard:
    """One table's forms as kept: a file of their own."""

    def __init__(self, kept: RuleForms, family: str, name: str):
        self._kept = kept
        self.file = f"{DIRECTORY}/{hashlib.sha256(f'{family} {name}'.encode()).hexdigest()[:32]}.json"
        self._forms: dict | None = None  # digest -> entry, as read (each checked when used: _entry)
        self.new: dict = {}

    def loaded(self) -> dict:
        if self._forms is None:
            self._forms = self._kept._read(self.file)
        return self._forms

    def save(self) -> bool:
        if not self.new:
            return False
        forms = _valid(self._kept._read(self.file))
        forms.update(self.new)
        self._kept._write(self.file, {digest: [text, list(matches)] for digest, (text, matches)
                                      in list(forms.items())[-LIMIT:]})
        self.new = {}
        return True


def _entry(value):
    """(text, counter offsets) of an entry as kept, or None if it is not that."""
    if isinstance(value, (tuple, list)) and len(value) == 2 and isinstance(value[0], str) \
            and isinstance(value[1], (tuple, list)) and all(type(m) is int for m in value[1]):
        return value[0], tuple(value[1])
    return None


def _valid(forms) -> dict:
    """The well-made entries of {digest: (text, matches)}: a 32-digit digest,
    a text, counter offsets as integers."""
    if not isinstance(forms, dict):
        return {}
    return {digest: entry for digest, value in forms.items()
            if isinstance(digest, str) and _DIGEST.fullmatch(digest) and (entry := _entry(value)) is not None}
