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
which covers the library): another nft may print otherwise. One sealed file
(state/cache/nft-rule-forms.json), read when first needed, written at the
end of a command that noted something new, merged with what other commands
wrote meanwhile; a lost update only costs a listing. At most LIMIT forms, the
oldest dropped first. A file that is not this exactly is a miss: it can make
a read faster, never different.
"""

from __future__ import annotations

import re

from .compiled import fingerprint
from .statedir import plain_json_line

FILE = "cache/nft-rule-forms.json"
BLOCKERS = "cache/nft-rule-forms-blockers.json"  # small: read first, and alone where a table is blocked
FORMAT = 1
LIMIT = 100_000  # forms kept (some 12 MB of file at 120 bytes each: 10 policies of 10,000 rules)
TABLES = 10_000  # tables whose blocker is kept
_DIGEST = re.compile(r"[0-9a-f]{32}")


class RuleForms:
    def __init__(self, state, trust: bool = True):
        """With `trust` False nothing is taken from the files (`drift --full`),
        but what is noted is kept."""
        self.state = state
        self.trust = trust
        self._forms: dict | None = None     # digest -> entry, as read (each checked when used: _entry)
        self._blockers: dict | None = None  # "family table" -> a rule's text, as read
        self._new: dict = {}
        self._new_blockers: dict = {}

    def text(self, form) -> str | None:
        """The text nft printed for a rule of this form, if noted (and the
        counter pattern matched where it did then: nft_forms.Form)."""
        found = self._new.get(form.digest)
        if found is None and self.trust:
            found = _entry(self._kept_forms().get(form.digest))
        return found[0] if found is not None and found[1] == form.matches else None

    def serves(self, family: str, table: str) -> bool:
        """Whether to read this table by its rules' forms: its last listing did
        not hold a rule of a form never learnable (an anonymous set, a device
        by index, ...: each read by forms would then be given up at that rule,
        its dump and hashing for nothing), and some form is known."""
        return self.blocker(family, table) is None and (bool(self._new) or (self.trust and bool(self._kept_forms())))

    def blocker(self, family: str, table: str) -> str | None:
        """The text of a rule of a form never learnable that the table's last
        listing held (note_table), if any."""
        key = f"{family} {table}"
        if key in self._new_blockers:
            return self._new_blockers[key]
        found = self._kept_blockers().get(key) if self.trust else None
        return found if isinstance(found, str) else None

    def note(self, form, text: str) -> None:
        """Note that nft printed a rule of this (learnable) form as `text`."""
        self._new[form.digest] = (text, form.matches)

    def note_table(self, family: str, table: str, blocker: str | None) -> None:
        """Note the text of a rule of a form never learnable that a table's
        listing holds (None: every rule's form is learnable)."""
        self._new_blockers[f"{family} {table}"] = blocker

    def merge(self, noted) -> None:
        """Take forms another process noted ({digest: [text, matches]}: a plan's
        proof, kernel/nft_proof.py)."""
        self._new.update(_valid(noted))

    def save(self) -> None:
        """Write what was noted, merged with the files as they are now. Never
        raises: a file that cannot be written only costs a listing."""
        if not (self._new or self._new_blockers) or not self.state.root.is_dir():
            return
        try:
            if self._new:
                forms = _valid(self._read(FILE))
                forms.update(self._new)
                self._write(FILE, {digest: [text, list(matches)] for digest, (text, matches)
                                   in list(forms.items())[-LIMIT:]})
                self._new = {}
            if self._new_blockers:
                blockers = {k: v for k, v in self._read(BLOCKERS).items() if isinstance(v, str)}
                blockers.update(self._new_blockers)
                self._write(BLOCKERS, dict(list((k, v) for k, v in blockers.items() if v is not None)[-TABLES:]))
                self._new_blockers = {}
        except Exception:  # noqa: BLE001 - full state dir, unsafe file, ...: the next read lists
            pass

    def _kept_forms(self) -> dict:
        if self._forms is None:
            self._forms = self._read(FILE)
        return self._forms

    def _kept_blockers(self) -> dict:
        if self._blockers is None:
            self._blockers = self._read(BLOCKERS)
        return self._blockers

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
