"""A table's recipe: the raw nf_tables batch that makes it, read from the kernel.

libnftables spends as long parsing and encoding a 10,000-rule table as the
kernel spends committing it (about 0.13 s each here), every time it is sent.
A plan proves a table's content in a throwaway namespace (nft_proof.py): made
there by libnftables from the text the apply would send, then read back
exactly as sent. There, the kernel's own dump of that table (its table,
chains, sets, their elements and its rules, as netlink attributes) says
byte for byte what libnftables made; less what is not content (handles, use
counts, a base chain's counters), those dumped messages are requests that
make the same table again. That is the recipe. It is believed only once
made again by itself, in another fresh namespace with the same stand-in
devices, and dumped back identical (`comparable`). An apply of proven
content then sends the recipe as one batch instead of the text (the kernel's
work alone), and falls back to the text if the kernel refuses it.

Only content that means the same in any namespace has a recipe: no rule
naming a device by index (nft_forms.learnable: the stand-ins' indexes are not
the node's), no set whose keys or values are interface indexes, no set with
timeouts or filled by the packet path, no stateful object or flowtable.
Anything else: no recipe, and the apply sends the text. (A rule's inline
`{ ... }` is an anonymous set, dumped with its kernel-given name, `__set0`:
made again under that name, before the rules that look it up by it.)

Pure: bytes in, bytes out. The dumping and the sending are nftgen.py's.
Layout from <linux/netfilter/nf_tables.h> and <linux/netfilter/nfnetlink.h>.
"""

from __future__ import annotations

import json
import struct

from .nft_forms import form, learnable
from .nftgen import (_HDR, _NFGEN, _NLA, NFT_MSG_NEWCHAIN, NFT_MSG_NEWRULE, NFT_MSG_NEWSET, NFT_MSG_NEWSETELEM,
                     NFT_MSG_NEWTABLE, NFTA_SET_ELEM_LIST_SET, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NFNL_SUBSYS_NFTABLES,
                     attributes, last_acknowledged, request, transaction)

NFT_MSG_DELTABLE = 2
NLM_F_EXCL = 0x200

# What is not content, by object: left out of the requests and the comparison.
TABLE_KEPT = {1, 2, 6}                  # NFTA_TABLE_NAME, _FLAGS, _USERDATA (not _USE 3, _HANDLE 4, _OWNER 7)
CHAIN_DROPPED = {2, 6, 8, 9, 11}        # NFTA_CHAIN_HANDLE, _USE, _COUNTERS, _PAD, _ID
SET_SAID = {10, 14, 16}                 # NFTA_SET_ID, _PAD, _HANDLE
SET_DROPPED = SET_SAID | {19, 20}       # and what newer kernels tell of it (_TYPE: its backend, _COUNT)
RULE_DROPPED = {3, 6, 8, 9, 10}         # NFTA_RULE_HANDLE, _POSITION, _PAD, _ID, _POSITION_ID
NFTA_SET_FLAGS, NFTA_SET_KEY_TYPE, NFTA_SET_DATA_TYPE, NFTA_SET_ID = 3, 4, 6, 10
NFTA_SET_ELEM_LIST_ELEMENTS = 3
NFT_SET_TIMEOUT, NFT_SET_EVAL = 0x10, 0x20
TYPE_IFINDEX, TYPE_BITS = 20, 6   # nftables' datatype of interface indexes; concatenations pack 6 bits a type
NFT_DATA_VERDICT = 0xFFFFFF00


class NoRecipe(Exception):
    """This table's content has no recipe (see the module's docstring); the reason."""


def stripped(data: bytes, dropped=None, kept=None) -> bytes:
    """A message's attributes (data: the attributes region) less those `dropped`,
    or only those `kept`. Raises ValueError on attributes that do not fit."""
    out = []
    for kind, start, stop in attributes(data, 0, len(data)):
        if (kept is not None and kind not in kept) or (dropped is not None and kind in dropped):
            continue
        out.append(data[start - _NLA.size:stop] + b"\0" * (-(stop - start) % 4))
    return b"".join(out)


def _u32(data: bytes, wanted: int) -> int | None:
    for kind, start, stop in attributes(data, 0, len(data)):
        if kind == wanted and stop - start == 4:
            return struct.unpack_from(">I", data, start)[0]
    return None


def _holds_ifindex(datatype: int | None) -> bool:
    if datatype is None or datatype == NFT_DATA_VERDICT:
        return False
    while datatype:
        if datatype & ((1 << TYPE_BITS) - 1) == TYPE_IFINDEX:
            return True
        datatype >>= TYPE_BITS
    return False


def check(family: int, dump: dict, learned=None) -> None:
    """Raise NoRecipe unless the dumped table (nftgen.table_dump) means the same
    in any namespace. `learned`: {form digest: counter matches} of forms known
    learnable (a proof's reading back noted them): not read again."""
    if dump["others"]:
        raise NoRecipe("it holds stateful objects or flowtables")
    for attrs in dump["sets"]:
        flags = _u32(attrs, NFTA_SET_FLAGS) or 0
        if flags & (NFT_SET_TIMEOUT | NFT_SET_EVAL):
            raise NoRecipe("a set has timeouts or is filled by the packet path")
        if _holds_ifindex(_u32(attrs, NFTA_SET_KEY_TYPE)) or _holds_ifindex(_u32(attrs, NFTA_SET_DATA_TYPE)):
            raise NoRecipe("a set holds interface indexes")
    learned = learned or {}
    for attrs in dump["rules"]:
        rule = form(family, attrs, 0, len(attrs))
        if learned.get(rule.digest) != rule.matches and not learnable(rule):
            raise NoRecipe("a rule is not known to mean the same in any namespace")


def recipe(family: int, dump: dict) -> bytes:
    """The requests that make the dumped table again (check() first): its table,
    chains, sets, their elements, then its rules in order; the last one asks
    for an acknowledgement. Raises ValueError on attributes that do not fit."""
    create = NLM_F_CREATE | NLM_F_EXCL
    messages = [request(NFT_MSG_NEWTABLE, create, family, stripped(dump["table"], kept=TABLE_KEPT))]
    messages += [request(NFT_MSG_NEWCHAIN, create, family, stripped(a, CHAIN_DROPPED)) for a in dump["chains"]]
    # The kernel asks a new set for an id of its own in the batch (NFTA_SET_ID).
    messages += [request(NFT_MSG_NEWSET, create, family, stripped(a, SET_DROPPED) + _NLA.pack(8, NFTA_SET_ID)
                          + struct.pack(">I", i)) for i, a in enumerate(dump["sets"], 1)]
    messages += [request(NFT_MSG_NEWSETELEM, NLM_F_CREATE, family, a) for a in dump["elements"]]
    messages += [request(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, family, stripped(a, RULE_DROPPED))
                 for a in dump["rules"]]
    return b"".join(last_acknowledged(messages))


_MADE = {NFT_MSG_NEWTABLE, NFT_MSG_NEWCHAIN, NFT_MSG_NEWSET, NFT_MSG_NEWSETELEM, NFT_MSG_NEWRULE}
NFTA_CHAIN_NAME, NFTA_CHAIN_HOOK, NFTA_CHAIN_POLICY, NFTA_CHAIN_TYPE = 3, 4, 5, 7
NFTA_HOOK_HOOKNUM, NFTA_HOOK_PRIORITY = 1, 2
NFTA_RULE_CHAIN, NFTA_SET_NAME = 2, 2
# Hook numbers of the ip, ip6, inet and bridge families (<linux/netfilter.h>), verdicts of a policy.
HOOKS = {"prerouting": 0, "input": 1, "forward": 2, "output": 3, "postrouting": 4, "ingress": 5}
POLICIES = {"drop": 0, "accept": 1}
INET_FAMILIES = {1, 2, 7, 10}


def fits(made: bytes, family: int, name: str, fields: dict) -> bool:
    """Whether a recipe has the outline of the desired table (`fields`): requests
    that only make things, each of this family and table, the table first, the
    last alone acknowledged; its chains with their type, hook, priority and
    policy, its named sets (with elements, where they have some) and each
    chain's number of rules. Checked at every apply before a recipe is sent: one cut
    short, spliced, emptied or of another outline that the state directory
    still vouches for (its digest) is never a batch. (What a rule or an
    element holds is not read here: a recipe forged whole, digest and all, is
    as trusted as the state directory it is in.) Never raises."""
    try:
        return _fits(made, family, name, fields)
    except (ValueError, TypeError, KeyError, struct.error, UnicodeDecodeError):
        return False


def _chain_outline(header: str, family: int):
    """(type, hook number, priority, policy number) a desired chain header says,
    None where it says none; ValueError where it cannot be read so."""
    spec = json.loads(header)
    hook = spec.get("hook")
    if hook is not None and (family not in INET_FAMILIES or hook not in HOOKS):
        raise ValueError("a hook this check does not know")
    policy = spec.get("policy")
    return (spec.get("type"), None if hook is None else HOOKS[hook], spec.get("prio"),
            None if hook is None else POLICIES.get(policy or "accept", -1))


def _made_outline(values: dict):
    """The same of a NEWCHAIN request's attributes."""
    kind = values.get(NFTA_CHAIN_TYPE)
    hook = values.get(NFTA_CHAIN_HOOK)
    if hook is None:
        return (None if kind is None else kind.rstrip(b"\0").decode(), None, None, None)
    parts = {k: hook[a:b] for k, a, b in attributes(hook, 0, len(hook))}
    policy = values.get(NFTA_CHAIN_POLICY)
    return (None if kind is None else kind.rstrip(b"\0").decode(),
            struct.unpack(">I", parts[NFTA_HOOK_HOOKNUM])[0] if NFTA_HOOK_HOOKNUM in parts else None,
            struct.unpack(">i", parts[NFTA_HOOK_PRIORITY])[0] if NFTA_HOOK_PRIORITY in parts else None,
            1 if policy is None else struct.unpack(">I", policy)[0])


def _fits(made: bytes, family: int, name: str, fields: dict) -> bool:
    chains = {field[6:]: _chain_outline(value, family) for field, value in fields.items() if field.startswith("chain ")}
    sets = {field.split(" ", 1)[1] for field in fields if field.startswith(("set ", "map "))}
    # The named sets that hold elements: each must have its elements sent (their
    # number is not counted: ten thousand cost 12 ms of an apply).
    filled = {field[4:] for field, value in fields.items()
              if field.startswith("set ") and json.loads(value).get("elements")}
    rules = {chain: len(fields.get(f"rules {chain}") or ()) for chain in chains}
    seen_chains, seen_sets, counted = {}, set(), dict.fromkeys(chains, 0)
    sent = set()
    table = name.encode() + b"\0"
    at, first = 0, True
    while at < len(made):
        length, kind, flags, _, _ = _HDR.unpack_from(made, at)
        if length < _HDR.size + _NFGEN.size or at + length > len(made) or kind >> 8 != NFNL_SUBSYS_NFTABLES:
            return False
        message = kind & 0xFF
        last = at + ((length + 3) & ~3) >= len(made)
        if message not in _MADE or (message == NFT_MSG_NEWTABLE) != first or bool(flags & NLM_F_ACK) != last \
                or made[at + _HDR.size] != family:
            return False
        start = at + _HDR.size + _NFGEN.size
        if message == NFT_MSG_NEWRULE:
            # Ten thousand of these: only its table and chain are read, the first
            # two attributes as recipe() writes them (what the rest holds is the
            # kernel's to refuse).
            first_length, first_kind = _NLA.unpack_from(made, start)
            second = start + ((first_length + 3) & ~3)
            second_length, second_kind = _NLA.unpack_from(made, second)
            if first_length < _NLA.size or second_length < _NLA.size or second + second_length > at + length:
                return False
            values = {first_kind: made[start + _NLA.size:start + first_length],
                      second_kind: made[second + _NLA.size:second + second_length]}
        else:
            values = {k: made[a:b] for k, a, b in attributes(made, start, at + length)}
        if values.get(1) != table:
            return False
        if message == NFT_MSG_NEWCHAIN:
            seen_chains[values.get(NFTA_CHAIN_NAME, b"").rstrip(b"\0").decode()] = _made_outline(values)
        elif message == NFT_MSG_NEWSETELEM:
            if values.get(NFTA_SET_ELEM_LIST_ELEMENTS):
                sent.add(values.get(NFTA_SET_ELEM_LIST_SET, b"").rstrip(b"\0").decode())
        elif message == NFT_MSG_NEWSET:
            named = values.get(NFTA_SET_NAME, b"").rstrip(b"\0").decode()
            if not named.startswith("__set"):
                seen_sets.add(named)
        elif message == NFT_MSG_NEWRULE:
            chain = values.get(NFTA_RULE_CHAIN, b"").rstrip(b"\0").decode()
            if chain not in counted:
                return False
            counted[chain] += 1
        first = False
        at += (length + 3) & ~3
    return not first and seen_chains == chains and seen_sets == sets and counted == rules and filled <= sent


def table_name_attr(name: str) -> bytes:
    value = name.encode() + b"\0"
    return _NLA.pack(_NLA.size + len(value), 1) + value + b"\0" * (-len(value) % 4)


def batch(parts: list) -> bytes:
    """One nf_tables transaction replacing tables by their recipes: `parts`
    [(family, table name, recipe)]. Each table is first made if missing and
    deleted (both requests inside the transaction: whatever it held goes), then
    made by its recipe; all or nothing."""
    out = []
    for family, name, made in parts:
        named = table_name_attr(name)
        out += [request(NFT_MSG_NEWTABLE, NLM_F_CREATE, family, named),
                request(NFT_MSG_DELTABLE, 0, family, named), made]
    return transaction(out)


def comparable(dump: dict) -> tuple:
    """What two dumps of a table must share to hold the same content: every
    attribute but handles, use counts and a base chain's counters, the sets'
    elements as a sorted list (a hash set dumps in its own order)."""
    elements = []
    for attrs in dump["elements"]:
        head = stripped(attrs, dropped={NFTA_SET_ELEM_LIST_ELEMENTS})
        for kind, start, stop in attributes(attrs, 0, len(attrs)):
            if kind == NFTA_SET_ELEM_LIST_ELEMENTS:
                elements += [head + attrs[a - _NLA.size:b] for _, a, b in attributes(attrs, start, stop)]
    return (stripped(dump["table"], kept=TABLE_KEPT), [stripped(a, CHAIN_DROPPED) for a in dump["chains"]],
            sorted(stripped(a, SET_SAID) for a in dump["sets"]), sorted(elements),
            [stripped(a, RULE_DROPPED) for a in dump["rules"]], dump["others"])

