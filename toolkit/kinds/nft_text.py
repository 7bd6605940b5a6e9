"""nft text for canonical tables: what a table transaction sends when it can.

libnftables takes the same ruleset 1.5 times faster as text than as JSON
(parsing JSON is the extra: 0.31 s against 0.48 s for 10,000 rules here), so
an apply writes its transaction as nft text when every object of it renders
here, and as JSON otherwise. The renderer knows the canonical forms the rule
compiler (manifest/nft_rules.py) writes and nft_canon.py evens out; anything
else (a native rule's own JSON, a stateful object, a name or string nft's
parser could read otherwise) gives None, and the caller uses JSON. Both forms
carry the same content: the kernel's listing of either is the canonical form
(the integration tests compare every rule form through a full listing).

Pure: no kernel, no libnftables.
"""

from __future__ import annotations

import json
import re

from ..core.memo import Remembered

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")

# What else a set listed may say of itself (libnftables' JSON names; each only
# when not the default): none is declared, so another tool's shows as a difference.
# A size caps the elements, a timeout expires those added later, a garbage
# collection interval goes with it; a policy and a comment change no packet's
# fate, but are the set's as much as its type (a rule's comment is compared too).
SET_OPTIONS = ("size", "timeout", "gc-interval", "policy", "comment")
ELEMENT_OPTIONS = ("timeout", "comment")  # an element's own, listed as {"elem": {"val": ..., ...}}

_SAFE_STRING = re.compile(r'[^"\\\n\r\t]*')
_PLAIN = re.compile(r"[A-Za-z0-9_.:/-]+")   # addresses, protocol and state names
_KEYWORD_LEFT = {"iifname", "oifname"}      # meta keys nft writes without `meta`
_QUOTED_TYPES = {"ifname"}
_SET_TYPES = {"ipv4_addr", "ipv6_addr", "inet_service", "inet_proto", "ifname", "mark", "ether_addr"}
_FAMILIES = {"ip", "ip6", "inet", "arp", "bridge"}


class Unrenderable(Exception):
    """Not a form this renderer knows: use JSON."""


# Table flags binding a table to the process that made it (its netlink socket):
# the kernel removes the table (`owner`), or takes the flag away (`persist`),
# when that process exits, and no ruleset generation moves.
PROCESS_BOUND_FLAGS = frozenset({"owner", "persist"})


def flags_to_make(flags: list) -> list:
    """The flags netkeel makes a table with (a snapshot's): never one binding it
    to a process, which would be netkeel's own, gone when the command exits
    and the table with it. (Such a table's restore then fails its verification,
    named, rather than seeming to hold.)"""
    return [flag for flag in flags if flag not in PROCESS_BOUND_FLAGS]


def table_script(op: str, family: str, name: str, spec) -> str | None:
    """The nft commands (text, one per line) that take one table to `spec`
    (resource spec pairs) by `op` (create, modify, delete), or None. A desired
    spec may carry its contents already rendered (`_nft`, see nft_canon)."""
    try:
        where = f"{family} {_name(name)}"
        if family not in _FAMILIES:
            raise Unrenderable(family)
        if op == "delete":
            return f"delete table {where}\n"
        fields = dict(spec)
        # A snapshot's flagged (dormant) table: libnftables 1.0.6's JSON input drops
        # table flags without a word, so they are only ever sent as text.
        flags = flags_to_make(json.loads(fields.get("table flags") or "[]"))
        made = f"add table {where}" + (f" {{ flags {', '.join(_word(f) for f in flags)}; }}" if flags else "")
        # modify: add (a no-op if it exists), delete, add: replaced whole, in one transaction
        lines = [f"add table {where}", f"delete table {where}", made] if op == "modify" else [made]
        body = fields.get("_nft")
        return "\n".join(lines) + "\n" + (body if body is not None else table_body(family, name, spec))
    except (Unrenderable, ValueError, KeyError, TypeError, AttributeError):
        return None


def contents(family: str, name: str, spec) -> str | None:
    """table_body(), or None where it cannot render."""
    try:
        return table_body(family, name, spec)
    except (Unrenderable, ValueError, KeyError, TypeError, AttributeError):
        return None


def table_body(family: str, name: str, spec) -> str:
    """The commands that fill an empty table with `spec`'s sets, chains and rules.
    Raises Unrenderable."""
    if family not in _FAMILIES:
        raise Unrenderable(family)
    where = f"{family} {_name(name)}"
    sets, chains, rules = [], [], []
    for field, value in spec:
        kind, _, item = field.partition(" ")
        if field.startswith("_") or field == "table flags":  # flags: table_script's
            continue
        if kind == "set":
            sets.append(f"add set {where} {_name(item)} {set_text(value)}")
        elif kind == "chain":
            chains.append(f"add chain {where} {_name(item)}{_chain_body(json.loads(value))}")
        elif kind == "rules":
            head = f"add rule {where} {_name(item)} "
            rules.extend(head + sent_text(rule) for rule in value)
        else:
            raise Unrenderable(field)  # stateful objects: JSON
    return "".join(line + "\n" for line in sets + chains + rules)


# A canonical rule's text as sent (rule_text of as_sent), and a set's body as
# nft text by its spec field: pure, so remembered for the process, and filled
# from the last read of a policy file as the rule keys are
# (nft_canon.declared_rule_key). Both raise Unrenderable.
sent_text = Remembered(lambda rule: rule_text(as_sent(rule)), 500_000)
set_text = Remembered(lambda spec: _set_body(json.loads(spec)), 1000)
# One element's text by its canonical form (as nft_canon.canonical_element is
# remembered per element: a set with one element edited is written from the rest's).
element_text_of = Remembered(lambda element, quoted: element_text(json.loads(element), quoted), 500_000)


def as_sent(rule: str) -> str:
    """A canonical rule (JSON text) as a JSON transaction sends it: with each
    one-element anonymous set's element written twice. libnftables turns a
    one-element set it is given into a plain match (`{ 22 }` becomes `22`),
    but the kernel can hold one (`tcp dport { 22, 22 }` is added so), and a
    rollback must make again what was listed; nft drops the repeat."""
    if '"set":[' not in rule:
        return rule
    body = json.loads(rule)
    return json.dumps(_doubled(body), sort_keys=True, separators=(",", ":")) if _has_single(body) else rule


def _has_single(node) -> bool:
    if isinstance(node, list):
        return any(_has_single(item) for item in node)
    if isinstance(node, dict):
        return any((key == "set" and isinstance(value, list) and len(value) == 1) or _has_single(value)
                   for key, value in node.items())
    return False


def _doubled(node):
    if isinstance(node, list):
        return [_doubled(item) for item in node]
    if isinstance(node, dict):
        return {key: value * 2 if key == "set" and isinstance(value, list) and len(value) == 1 else _doubled(value)
                for key, value in node.items()}
    return node


def rule_text(rule: str) -> str:
    """One canonical rule ({"expr": [...], "comment": ...} as JSON text) as nft
    text. Raises Unrenderable."""
    body = json.loads(rule)
    if set(body) - {"expr", "comment"}:
        raise Unrenderable("rule fields")
    parts = [_statement(s) for s in body["expr"]]
    if "comment" in body:
        parts.append(f"comment {_string(body['comment'])}")
    if not parts:
        raise Unrenderable("empty rule")
    return " ".join(parts)


def _statement(node: dict) -> str:
    if not isinstance(node, dict) or len(node) != 1:
        raise Unrenderable(node)
    (key, value), = node.items()
    if key == "match":
        return _match(value)
    if key == "counter" and value == {"packets": 0, "bytes": 0}:
        return "counter"
    if key in ("accept", "drop", "return", "masquerade") and value is None:
        return key
    if key in ("jump", "goto") and set(value) == {"target"}:
        return f"{key} {_name(value['target'])}"
    if key == "limit" and set(value) == {"rate", "burst", "per"}:
        return f"limit rate {_int(value['rate'])}/{_word(value['per'])} burst {_int(value['burst'])} packets"
    if key == "log":
        if value is None:
            return "log"
        if not set(value) <= {"prefix", "level"}:
            raise Unrenderable(value)
        out = "log"
        if "prefix" in value:
            out += f" prefix {_string(value['prefix'])}"
        if "level" in value:
            out += f" level {_word(value['level'])}"
        return out
    if key == "reject":
        if value == {"type": "tcp reset"}:
            return "reject with tcp reset"
        if set(value) == {"type", "expr"} and value["type"] in ("icmp", "icmpv6", "icmpx"):
            return f"reject with {value['type']} {_word(value['expr'])}"
        raise Unrenderable(value)
    if key in ("snat", "dnat") and set(value) <= {"family", "addr", "port"} and "addr" in value:
        family = value.get("family")
        if family not in (None, "ip", "ip6"):
            raise Unrenderable(value)
        addr = _word(value["addr"])
        if "port" in value:
            addr = (f"[{addr}]" if ":" in addr else addr) + f":{_int(value['port'])}"
        return f"{key} {family + ' ' if family else ''}to {addr}"
    raise Unrenderable(key)


def _match(value: dict) -> str:
    if set(value) != {"op", "left", "right"}:
        raise Unrenderable(value)
    left, quoted = _left(value["left"])
    op, right = value["op"], value["right"]
    if op == "in" and left == "ct state" or op == "in" and left == "ct status":
        flags = right if isinstance(right, list) else [right]
        return f"{left} {','.join(_word(f) for f in flags)}"
    if op not in ("==", "!="):
        raise Unrenderable(op)
    return f"{left} {'!= ' if op == '!=' else ''}{_value(right, quoted)}"


def _left(node) -> tuple:
    """(nft text, whether string values are quoted) of a match's left side."""
    if not isinstance(node, dict) or len(node) != 1:
        raise Unrenderable(node)
    (key, value), = node.items()
    if key == "meta" and set(value) == {"key"}:
        name = _word(value["key"])
        return (name if name in _KEYWORD_LEFT else f"meta {name}"), name in _KEYWORD_LEFT
    if key == "payload" and set(value) == {"protocol", "field"}:
        return f"{_word(value['protocol'])} {_word(value['field'])}", False
    if key == "ct" and set(value) == {"key"}:
        return f"ct {_word(value['key'])}", False
    raise Unrenderable(node)


def _value(node, quoted: bool) -> str:
    if isinstance(node, bool):
        raise Unrenderable(node)
    if isinstance(node, int):
        return str(node)
    if isinstance(node, str):
        if node.startswith("@"):
            return "@" + _name(node[1:])
        return _string(node) if quoted else _word(node)
    if isinstance(node, dict) and len(node) == 1:
        (key, value), = node.items()
        if key == "set" and isinstance(value, list) and value:
            return "{ " + ", ".join(_value(v, quoted) for v in value) + " }"
        if key == "prefix" and set(value) == {"addr", "len"}:
            return f"{_word(value['addr'])}/{_int(value['len'])}"
        if key == "range" and isinstance(value, list) and len(value) == 2:
            return f"{_value(value[0], quoted)}-{_value(value[1], quoted)}"
    raise Unrenderable(node)


def quoted_type(set_type) -> bool:
    """Whether a set type's elements are written quoted (interface names)."""
    return set_type in _QUOTED_TYPES


def _set_body(spec: dict) -> str:
    set_type = spec["type"]
    if not isinstance(set_type, str) or set_type not in _SET_TYPES:
        raise Unrenderable(set_type)
    if set(spec) - {"type", "flags", "elements", "auto-merge", *SET_OPTIONS}:
        raise Unrenderable(spec)
    parts = [f"type {set_type};"]
    if spec["flags"]:
        parts.append(f"flags {', '.join(_word(f) for f in spec['flags'])};")
    if spec.get("auto-merge"):
        parts.append("auto-merge;")
    parts += _set_options(spec)
    if spec["elements"]:
        quoted = quoted_type(set_type)
        parts.append("elements = { " + ", ".join([element_text_of(e, quoted) for e in spec["elements"]]) + " };")
    return "{ " + " ".join(parts) + " }"


def _set_options(spec: dict) -> list:
    """A set's size, timeouts, policy and comment as nft writes them (another
    tool's, in a snapshot being restored: see nft_canon.SET_OPTIONS)."""
    parts = []
    if "policy" in spec:
        if spec["policy"] not in ("performance", "memory"):
            raise Unrenderable(spec["policy"])
        parts.append(f"policy {spec['policy']};")
    for option, unit in (("size", ""), ("timeout", "s"), ("gc-interval", "s")):
        if option in spec:
            parts.append(f"{option} {_int(spec[option])}{unit};")
    if "comment" in spec:
        parts.append(f"comment {_set_comment(spec['comment'])};")
    return parts


def _set_comment(text) -> str:
    """A set's (or an element's) comment as nft text: nft takes anything between
    quotes as itself (a backslash, a tab, U+200B), and a set's comment comes back
    in its JSON listing, never parsed from text; a quote or a line break would end
    the string or the command line, a NUL the C string (and any character Python
    splits lines at: scripts are read back line by line, sent_rules)."""
    if not isinstance(text, str) or '"' in text or "\x00" in text or len(f"x{text}x".splitlines()) != 1:
        raise Unrenderable(text)
    return f'"{text}"'


def _chain_body(header: dict) -> str:
    if set(header) != {"type", "hook", "prio", "policy"}:
        raise Unrenderable(header)
    if header["type"] is None:
        if any(header[k] is not None for k in ("hook", "prio", "policy")):
            raise Unrenderable(header)
        return ""
    body = f"type {_word(header['type'])} hook {_word(header['hook'])} priority {_int(header['prio'])};"
    if header["policy"] is not None:
        body += f" policy {_word(header['policy'])};"
    return " { " + body + " }"


def _name(text) -> str:
    if not isinstance(text, str) or not _NAME.fullmatch(text):
        raise Unrenderable(text)
    return text


def _word(text) -> str:
    if not isinstance(text, str) or not _PLAIN.fullmatch(text):
        raise Unrenderable(text)
    return text


def _int(value) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Unrenderable(value)
    return str(value)


def _string(text) -> str:
    if not isinstance(text, str) or not _SAFE_STRING.fullmatch(text) or not text.isprintable():
        raise Unrenderable(text)
    return f'"{text}"'


def name_text(text) -> str:
    """A table, chain or set name as nft text. Raises Unrenderable."""
    return _name(text)


def element_text(value, quoted: bool, key_only: bool = False) -> str:
    """A set element (decoded JSON) as nft text, with its own timeout and comment
    unless `key_only` (what a `delete element` names). Raises Unrenderable."""
    if not (isinstance(value, dict) and set(value) == {"elem"} and isinstance(value["elem"], dict)):
        return _value(value, quoted)
    body = value["elem"]
    if set(body) - {"val", *ELEMENT_OPTIONS}:
        raise Unrenderable(body)
    text = _value(body.get("val"), quoted)
    if key_only:
        return text
    if "timeout" in body:
        text += f" timeout {_int(body['timeout'])}s"
    if "comment" in body:
        text += f" comment {_set_comment(body['comment'])}"
    return text


# -- reading a table back as text: the apply's check of new content -----------------
#
# A table this command rendered whole is checked after its commit by the kernel's
# text listing of it: every rule must print exactly as it was sent (counter values
# aside), chain by chain, in order. That listing costs half the JSON one and needs
# no canonical form: a rule libnftables prints as the text sent is the rule sent.
# Anything that does not read back so (another printing of the same rule, a
# listing this reader does not follow) is no answer, and the caller lists the
# table as JSON and compares it whole, as it always did.
#
# nft prints the strings a rule holds (comments, log prefixes, interface names)
# raw, quotes and newlines included: a comment can print as more of the rule,
# or as more rules. So a line printing a string is followed only where the
# kernel's own form of that rule shows each string it prints holding no quote
# (the caller: nftables.read_table_text, kernel/nftgen.prints_plain), and the
# devices' names none either: then each quoted part of a line is one string,
# and one holding a line break leaves a line with an odd number of quotes,
# refused here. The caller also checks each chain's rule handles against the
# kernel's own dump (one line, one rule).

_LISTED_RULE = re.compile(r"^(?P<text>.*\S) # handle (?P<handle>\d+)$")
_COUNTER_VALUES = re.compile(r"\bcounter packets \d+ bytes \d+")
_BLOCK = re.compile(r"^(?P<kind>set|chain) (?P<name>[A-Za-z][A-Za-z0-9_]{0,63}) \{ # handle \d+$")
_QUOTED = re.compile(r'"[^"]*"')


def sent_rules(script: str, family: str, table: str) -> dict:
    """{chain: [rule text]} of the `add rule` lines a script sent for one table."""
    head = f"add rule {family} {table} "
    out: dict = {}
    for line in script.splitlines():
        if line.startswith(head):
            chain, _, text = line[len(head):].partition(" ")
            out.setdefault(chain, []).append(text)
    return out


def listed_table(listing: str, family: str, table: str):
    """From `nft -a list table FAMILY TABLE` (text): ({chain: [(rule text, handle)]},
    [set names]); rule texts with counter values dropped (`counter`, as sent).
    None if the listing holds anything else than that table's sets, chains
    (a base chain's one header line) and one-line rules (strings whole on the
    line: the caller checks that each is one, see above)."""
    chains: dict = {}
    sets: list = []
    lines = [line.strip() for line in listing.splitlines() if line.strip()]
    if not lines or not re.fullmatch(rf"table {re.escape(family)} {re.escape(table)} \{{ # handle \d+", lines[0]) \
            or lines[-1] != "}":
        return None
    inside = None        # (kind, name) of the block being read
    depth = 0            # a set's braces, its elements' included
    header_allowed = False
    for line in lines[1:-1]:
        if inside is None:
            block = _BLOCK.fullmatch(line)
            if block is None:
                return None
            inside = (block["kind"], block["name"])
            if inside[0] == "chain":
                if inside[1] in chains:
                    return None
                chains[inside[1]] = []
                header_allowed = True
            else:
                sets.append(inside[1])
                depth = 1
            continue
        if inside[0] == "set":
            if line.count('"') % 2:
                return None  # a string element across lines: a newline in it
            depth += _braces(line)
            if depth == 0:
                inside = None
            elif depth < 0:
                return None
            continue
        if line == "}":
            inside = None
            continue
        if line.count('"') % 2:
            return None  # a string across lines: a line break in it (see above)
        if header_allowed and line.startswith("type ") and line.endswith(";") and "#" not in line:
            header_allowed = False
            continue
        header_allowed = False
        rule = _LISTED_RULE.fullmatch(line)
        if rule is None:
            return None
        chains[inside[1]].append((without_counter_values(rule["text"]), int(rule["handle"])))
    return (chains, sets) if inside is None else None


def without_counter_values(text: str) -> str:
    """A listed rule with `counter packets N bytes M` written `counter`, as sent
    (quoted strings left as they are)."""
    if "counter packets " not in text:
        return text  # (a stateless listing's, or a rule without a counter)
    parts = text.split('"')
    parts[::2] = [_COUNTER_VALUES.sub("counter", part) for part in parts[::2]]
    return '"'.join(parts)


def _braces(line: str) -> int:
    """Opened minus closed braces on a line, quoted strings aside."""
    bare = _QUOTED.sub("", line)
    return bare.count("{") - bare.count("}")


def listed_key(text: str) -> str:
    """A placeholder key for a listed rule that prints as no desired rule, until
    its canonical form is known: never a canonical rule's (those have "expr")."""
    return json.dumps({"listed": text})


def _one_run_apart(a: list, b: list) -> bool:
    """Whether b is a with one run of items inserted, or removed, in one place
    (the usual hand change: difflib takes 10-30 ms to say so of 10,000 rules)."""
    prefix = 0
    for x, y in zip(a, b):
        if x != y:
            break
        prefix += 1
    suffix = 0
    for x, y in zip(reversed(a[prefix:]), reversed(b[prefix:])):
        if x != y:
            break
        suffix += 1
    return prefix + suffix in (len(a), len(b))


def opcodes(a, b) -> list:
    """difflib's opcodes taking sequence `a` to `b`, the common head and tail
    set aside first: an edit of a few rules among 10,000 compares those few
    (SequenceMatcher indexes every item of `b` first, 10 ms at 10,000 rules,
    and a plan or an apply asks twice). Where equal items repeat, the
    alignment may be another than difflib's alone; any is a correct one (a
    common head or tail is always part of a longest common subsequence), and
    equal rules are the same rule."""
    import difflib

    shortest = min(len(a), len(b))
    head = 0
    while head < shortest and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < shortest - head and a[len(a) - 1 - tail] == b[len(b) - 1 - tail]:
        tail += 1
    ops = [("equal", 0, head, 0, head)] if head else []
    middle = difflib.SequenceMatcher(a=a[head:len(a) - tail], b=b[head:len(b) - tail], autojunk=False)
    ops += [(op, i1 + head, i2 + head, j1 + head, j2 + head) for op, i1, i2, j1, j2 in middle.get_opcodes()]
    if tail:
        ops.append(("equal", len(a) - tail, len(a), len(b) - tail, len(b)))
    return ops


def listed_text(key: str) -> str | None:
    """The text a listed_key() holds, or None for any other rule key."""
    if not key.startswith('{"listed": '):
        return None
    try:
        body = json.loads(key)
    except ValueError:
        return None
    if isinstance(body, dict) and set(body) == {"listed"} and isinstance(body["listed"], str):
        return body["listed"]
    return None


def keys_of_listed(texts: list, keys, found: list):
    """The rule keys of a chain listed as `found` (texts), where the desired
    rules print as `texts` (keys `keys`): a rule printed as a desired one is
    that rule; any other gets a placeholder (listed_key). None when desired
    rules are missing and unknown ones stand too (one may be the other,
    printed otherwise)."""
    if not _one_run_apart(texts, found):
        import difflib

        ops = {op for op, *_ in difflib.SequenceMatcher(a=texts, b=found, autojunk=False).get_opcodes()}
        if "replace" in ops or {"insert", "delete"} <= ops:
            return None
    known = dict(zip(texts, keys))
    return [known[text] if text in known else listed_key(text) for text in found]
