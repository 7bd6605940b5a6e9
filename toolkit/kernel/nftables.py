"""Kind "nft_table" in the kernel: nftables tables netkeel owns, via libnftables' JSON API.

Each node's changed tables are replaced in ONE libnftables transaction (the
kernel applies it all or nothing), so traffic never meets a half-applied
ruleset. Only tables named with TABLE_PREFIX are netkeel's; other tables in a
namespace are read with owner "foreign" and never touched.

A libnftables context binds its netlink socket when it is created, so each
namespace gets its own context, created with the thread inside it. Interface
names in rules (`iif "eth0"`) are looked up by libnftables with fresh sockets
in whatever namespace the thread is in, so every command also runs with the
thread inside the namespace.

Where a table is known by what netkeel sent for it (a commit of its own, a
drift check against the manifest), it may be read by its text listing instead
(_table_by_text): half the cost, and no canonical form to make.
"""

from __future__ import annotations

import json
import re
import threading
from collections import namedtuple

from ..core.owners import CHAOS_TABLE_PREFIX, FOREIGN, TABLE_PREFIX, TOPOLOGY, overlay
from ..core.resource import Resource, changed_fields
from ..errors import KernelError

# The kinds' nftables forms (kinds/nft_text.py, nft_canon.py) are imported where
# used: a quick answer (cli/quick.py) reads only generations, and importing the
# kinds registry cost it a tenth of its time.

KIND = "nft_table"
_HANDLE = re.compile(r"^(?P<text>.*?)\s+# handle (?P<handle>\d+)$")


# libnftables is used by one thread at a time: libnftables 1.0.6 keeps state
# for the whole process, an interface cache (index <-> name) filled in
# whatever namespace the calling thread is in and emptied at each command's
# end. Two threads in it at once printed one namespace's `iif` rules with
# another's interface names (a wrong read, then remembered) and corrupted its
# heap (found by review, when reading ahead was a thread; it is now a child
# process with a libnftables of its own: kernel/readahead.py).
LIBRARY = threading.RLock()  # (re-entrant: a command makes its context on first use)


def context():
    """A libnftables context for the namespace the calling thread is in."""
    import nftables  # libnftables is loaded only by commands that need it

    with LIBRARY:
        ctx = nftables.Nftables()
    ctx.set_json_output(True)
    ctx.set_handle_output(True)
    return ctx


def run_cmd(kernel, ns, command: str) -> str:
    """Run one nft command (text or JSON) in namespace `ns`; its output. Raises KernelError."""
    shown = command if len(command) < 80 else command[:77] + "..."
    with kernel.in_namespace(ns.name), LIBRARY:
        try:
            rc, out, err = ns.nft.cmd(command)
        except UnicodeDecodeError:
            # A text listing prints strings as the kernel holds them (another
            # tool's comment may hold any bytes), and the binding decodes it as
            # UTF-8 (found by review: a plain drift's traceback).
            raise KernelError(f"nft {shown}", "libnftables printed bytes that are not UTF-8") from None
    if rc != 0:
        raise KernelError(f"nft {shown}", _first_error(err))
    return out


def read(kernel, ns_name: str, devices=None, seen=None, ns=None) -> list:
    """nft_table resources for the owned tables of a namespace, nft_foreign for the rest.

    `seen`: (cookie, generation) read with the link dump that gave `devices`
    (kernel/reader.py), else they are read now; `ns`: the namespace, open
    (else kernel.ns(ns_name)).

    With a memo (kernel.nft_memo), a namespace whose cookie, ruleset generation
    and devices (`devices`: (name, index) pairs, from the link dump of the same
    read) are those of an earlier read is not listed again: no commit happened
    there since, and a rule naming a device by index (`iif`) still means the
    same device, so its tables are what that read found (kernel/nftgen.py). A
    listing is remembered only if the generation did not move while it was made
    and no table of ours can change by itself (element timeouts, sets the
    packet path fills: nft_canon.changes_by_itself), nor any table go by
    itself (one flagged `owner` goes when the process holding it exits, and no
    generation moves: its reading is not remembered, found by review).

    With `kernel.nft_expected` (desired tables by key, set by a plan),
    a namespace's tables are read by their text listings where that can be
    decided (_listed_by_text).

    A table read just after this process's own commit, at the generation it
    made, and found as committed, has its content proven (memo.prove: what
    netkeel sends for that content lists back as it, so a later commit of it
    can be followed without listing; see _follow). A table found otherwise
    proves nothing: another tool made it, perhaps in a form netkeel's own
    sending would not make again."""
    ns = ns or kernel.ns(ns_name)
    memo = kernel.nft_memo
    mark = (*(seen or (ns.cookie(), ns.generation())), device_list(devices))
    if kernel.nft_marks is not None:  # a quick check: the marks, compared with a verdict's
        kernel.nft_marks[ns_name] = mark
        return []
    from ..kinds.nft_canon import changes_by_itself  # (the kinds: not for a quick check)
    ns.read_generation = None
    ns.read_devices = mark[2]
    if memo is not None and mark[1] is not None and mark[2] is not None:
        known = memo.get(ns_name, *mark)
        if known is not None:
            kernel.log(ns_name, f"nft ruleset unchanged since read (generation {mark[1]})")
            ns.read_generation = mark[1]
            kernel.nft_settled[ns_name] = mark
            return known
    out, lasting = _listed(kernel, ns, ns_name)
    if mark[1] is not None and ns.generation() == mark[1] and lasting:
        ns.read_generation = mark[1]  # what was read is what this generation holds
        if memo is not None:
            committed = kernel.nft_committed.get(ns_name)
            if committed is not None and committed[:2] == mark[:2]:
                memo.prove(r for r in out if r.owner == TOPOLOGY and _same_content(r, committed[2].get(r.key)))
            if mark[2] is not None and not any(changes_by_itself(r.fields()) for r in out):
                memo.put(ns_name, *mark, out)
                kernel.nft_settled[ns_name] = mark  # these marks will mean these tables
    return out


def ruleset_items(kernel, ns, ns_name: str) -> list:
    """The items of the namespace's whole ruleset, listed as JSON."""
    return _listing(kernel, ns, ns_name, "list ruleset", "nft list ruleset")


def _ruleset_items_at(kernel, ns, ns_name: str, start) -> list:
    """ruleset_items(), or the listing of it made ahead (kernel/readahead.py) at
    this very cookie, generation (`start`, read before) and devices, the
    generation still the same now."""
    from . import readahead

    if start is not None:
        ahead = readahead.take_ruleset(ns_name, ns.cookie(), start, ns.read_devices)
        if ahead is not readahead.MISSING and ns.generation() == start:
            kernel.log(ns_name, f"nft list ruleset: read ahead at generation {start}")
            return ahead
    return ruleset_items(kernel, ns, ns_name)


def _same_content(read, committed) -> bool:
    return committed is not None and not changed_fields(committed, read, closed=True)


def _flagged_parts(kernel, ns, ns_name: str, family: str, table: str) -> list:
    """The listing items of a flagged table's chains (with their rules), sets
    and maps, each listed alone; [] if it has stateful objects or flowtables."""
    from . import nftgen

    parts = kernel.request(ns_name, f"nft parts of {family} {table}", nftgen.table_parts, ns.nfgen_socket(),
                           family, table)
    if parts["others"]:
        return []
    items = []
    for kind, names in (("set", parts["sets"]), ("map", parts["maps"]), ("chain", parts["chains"])):
        for name in names:
            command = json.dumps({"nftables": [{"list": {kind: {"family": family, "table": table, "name": name}}}]})
            items += [i for i in _listing(kernel, ns, ns_name, command, f"nft list {kind} {family} {table} {name}")
                      if "table" not in i]
    return items


def device_list(devices) -> list | None:
    """(name, index) pairs as the memo keeps them: sorted, as lists."""
    return None if devices is None else sorted([str(name), int(index)] for name, index in devices)


def _listed(kernel, ns, ns_name: str) -> tuple:
    """(The namespace's tables as resources, as a JSON listing gives them,
    whether they last until the next commit: False if a table, anyone's, is
    flagged `owner`, which the kernel removes, without a commit, when the
    process that made it exits; a rollback said "already at that snapshot" of
    a namespace whose table had gone so, from a reading remembered by its
    generation)."""
    from ..kinds.nft_canon import live_table_specs
    from ..kinds.nft_text import PROCESS_BOUND_FLAGS
    from . import nftgen

    # libnftables 1.0.6 prints a flagged (dormant) table's flags in JSON from
    # stray memory, and may abort the process doing it. So where a table has
    # flags (the kernel says which), the others are listed one by one; a
    # flagged one of ours is listed by its parts (each chain, set and map: no
    # listing of those prints the table), so that a snapshot of it holds what it
    # holds; one with stateful objects (whose listings misbehave alike), or
    # another's, is known by its name and flags alone.
    start = ns.generation()
    tables = kernel.request(ns_name, "nft tables", nftgen.tables, ns.nfgen_socket())
    lasting = not any(PROCESS_BOUND_FLAGS.intersection(flags) for _, _, flags in tables)
    expected = getattr(kernel, "nft_expected", None)
    if expected and start is not None:
        found = _listed_by_text(kernel, ns, ns_name, tables, expected)
        # Table by table: all of one generation, as one listing is, or none.
        if found is not None and ns.generation() == start:
            return found, lasting
    if any(flags for _, _, flags in tables):
        items = []
        for family, name, flags in tables:
            if flags:
                items.append({"table": {"family": family, "name": name, "flags": flags}})
                if name.startswith(TABLE_PREFIX) and not name.startswith(CHAOS_TABLE_PREFIX):
                    items += _flagged_parts(kernel, ns, ns_name, family, name)
            else:
                command = json.dumps({"nftables": [{"list": {"table": {"family": family, "name": name}}}]})
                items += _listing(kernel, ns, ns_name, command, f"nft list table {family} {name}")
    else:
        items = _ruleset_items_at(kernel, ns, ns_name, start)
    chaos = {(i["table"]["family"], i["table"]["name"]) for i in items
             if "table" in i and i["table"].get("name", "").startswith(CHAOS_TABLE_PREFIX)}
    # A fault's table is netkeel's but not the topology's: read as an overlay's,
    # whole (never compared), so that an apply of the topology leaves it alone.
    items = [i for i in items if _table_key(i) not in chaos]
    _mark_merging(kernel, ns, ns_name, items)
    owned, foreign = live_table_specs(items, TABLE_PREFIX)
    out = [Resource.make(KIND, (ns_name, family, name), owner=FOREIGN) for family, name in foreign]
    out += [Resource.make(KIND, (ns_name, family, name), owner=overlay("fault")) for family, name in sorted(chaos)]
    for (family, name), fields in owned.items():
        # Rule handles, to fetch the rules' text only if a report needs it (with_display).
        fields["_handles"] = tuple(fields.get("_handles", ()))
        out.append(Resource.make(KIND, (ns_name, family, name), **fields))
    return out, lasting


def _listed_by_text(kernel, ns, ns_name: str, tables: list, expected: dict):
    """_listed's answer with each table of ours read by _table_by_text against
    the desired table of the same key; others' tables and faults' are known by
    their names, as always. None (list it all as JSON) if a table of ours is
    flagged, not desired, not rendered as text, or does not read so."""
    from ..kinds import nft_text
    out = []
    for family, name, flags in tables:
        key = (ns_name, family, name)
        if name.startswith(CHAOS_TABLE_PREFIX):
            out.append(Resource.make(KIND, key, owner=overlay("fault")))
            continue
        if not name.startswith(TABLE_PREFIX):
            out.append(Resource.make(KIND, key, owner=FOREIGN))
            continue
        desired = expected.get(key)
        body = desired.get("_nft") if desired is not None and desired.kind == KIND else None
        if flags or body is None:
            return None
        fields = _table_by_text(kernel, ns, ns_name, family, name, desired.fields(),
                                nft_text.sent_rules(body, family, name), extras=True)
        if fields is None:
            return None
        out.append(Resource.make(KIND, key, **fields))
    return out


# What _table_by_text decides on, all read at one ruleset generation: the
# table's rules from its text listing ({chain: [(text, handle)]}), its set
# names, the JSON items of its table, chain headers and sets (elements
# included), and the kernel's own (chain, handle) list of its rules (`dumped`);
# `raw`: each rule's attributes by handle, dumped beside a listing (for noting
# forms); `unknown`: handle -> (its attributes to replay, its form) of a rule of
# a form not known. (A plain namedtuple: importing typing cost a quick answer 4 ms.)
TextReading = namedtuple("TextReading", "generation chains sets items dumped raw unknown", defaults=(None, None))


def tables_read_by_text(tables: list) -> list:
    """(family, name) of the tables of ours, of `tables` ((family, name, flags)
    as nftgen.tables gives them), that a text reading may serve: unflagged, not
    a fault's."""
    return [(family, name) for family, name, flags in tables
            if name.startswith(TABLE_PREFIX) and not name.startswith(CHAOS_TABLE_PREFIX) and not flags]


def read_table_text(kernel, ns, ns_name: str, family: str, name: str, by_forms: bool = True,
                    items: bool = True):
    """A TextReading of one table, or None if it cannot be made (a listing
    this reader does not follow, a refusal, a commit while reading). The
    kernel's dump of the rules' handles runs in a thread of its own while
    libnftables lists (both mostly outside Python's lock). Without `items`,
    its chain headers and sets are not listed (its `items` None): a reading
    made ahead leaves them to the reader, who lists them while waiting for it
    (_table_by_text)."""
    from ..kinds import nft_text
    from . import nftgen
    from ..core.background import Background

    generation = ns.generation()
    if generation is None:
        return None
    dump = None  # (the rules' chains and handles, their attributes) if the dump was made already
    forms = kernel.nft_forms.table(ns_name, family, name) if getattr(kernel, "nft_forms", None) else None
    if by_forms and forms is not None and forms.serves():
        reading, dump = _read_by_forms(kernel, ns, ns_name, family, name, forms, items)
        if reading is not None:
            return reading

    raw: dict = dump[1] if dump else {}  # each rule's attributes, by handle: what strings it prints (prints_plain)

    def handles():
        return nftgen.rule_handles(ns.nfgen_socket(), family, name, raw=raw)

    try:
        ns.nfgen_socket()  # made here, not in the thread: the thread only uses it
        devices = [link.ifname for link in ns.links()]  # (printed by `iif`: before and after the listing)
        dumping = Background(handles) if dump is None else None
        try:
            listed = nft_text.listed_table(_text_listing(kernel, ns, ns_name, f"list table {family} {name}",
                                                         bare=True), family, name)
            listed_items = None if listed is None or not items else \
                _table_items(kernel, ns, ns_name, family, name, listed[1])
        finally:
            if dumping is not None:
                dumping.join()  # the thread is done with the socket, whatever happened here
        # One printed line, one rule: the kernel's own list of the rules' handles (the
        # generation checked below: the dump made before the listing is of its ruleset).
        dumped = dump[0] if dump else kernel.request(ns_name, f"nft rule handles of {family} {name}", dumping.result)
    except KernelError:
        return None
    if listed is None or ns.generation() != generation:
        return None  # a commit came while reading: the parts may be of different rulesets
    if not _strings_plain(ns, listed[0], listed[1], raw, devices):
        return None
    return TextReading(generation, listed[0], listed[1], listed_items, dumped, raw)


def _table_items(kernel, ns, ns_name: str, family: str, name: str, sets) -> list:
    """The JSON items of a table, its chain headers and its sets (elements
    included), as the reader reads them. Raises KernelError."""
    items = [{"table": {"family": family, "name": name}}]
    items += [i for i in _listing(kernel, ns, ns_name, _list_command("chains", {}), "nft list chains")
              if "chain" in i and _table_key(i) == (family, name)]
    for set_name in sorted(sets):
        command = _list_command("set", {"family": family, "table": name, "name": set_name})
        items += [i for i in _listing(kernel, ns, ns_name, command, f"nft list set {family} {name} {set_name}")
                  if "set" in i]
    _mark_merging(kernel, ns, ns_name, items)
    return items


def _read_by_forms(kernel, ns, ns_name: str, family: str, name: str, forms, listed: bool = True):
    """(A TextReading of one table made without its text listing, the dump)
    the reading: its rules dumped, each known by its form (kernel/nft_forms.py:
    the text nft printed for that form before, state/rule_forms.py) or to be
    made again in a throwaway namespace for its text (`unknown`:
    _table_by_text does), its chain headers and sets read as ever. The reading
    is None (list the table) if a rule of a form not known cannot be made
    again so, or it looks up a set that is not one of the table's named sets
    (whose elements it would print), or the table holds maps, objects or
    flowtables (which no text reading follows), or the generation moved while
    reading; the dump ((chain, handle) list, attributes by handle), if made,
    serves the listing then."""
    from . import nft_forms, nftgen

    generation = ns.generation()
    raw: dict = {}
    unknown: dict = {}
    dump = None
    try:
        sock = ns.nfgen_socket()
        parts = kernel.request(ns_name, f"nft parts of {family} {name}", nftgen.table_parts, sock, family, name)
        if parts["maps"] or parts["others"]:
            return None, None
        dumped = kernel.request(ns_name, f"nft rules of {family} {name}", nftgen.rule_handles, sock, family, name,
                                raw=raw)
        dump = (dumped, raw)
        named = set(parts["sets"])
        chains: dict = {chain: [] for chain in parts["chains"]}
        code = nftgen.FAMILIES[family]
        for chain, handle in dumped:
            rule = nft_forms.form(code, *raw[handle])
            looked_up = nft_forms.looked_up(rule.body)
            if looked_up is None or not looked_up <= named or chain not in chains:
                return None, dump
            text = forms.text(rule)
            if text is None:
                # Another's rule, or ours printed otherwise: its text from the
                # same rule made in a throwaway namespace (_table_by_text), if it
                # prints there as here (nothing of it depends on this namespace)
                # and each string it prints is plain (nftgen.prints_plain).
                if len(unknown) >= SCRATCH_RULES or not nft_forms.learnable(rule) \
                        or not nftgen.prints_plain(*raw[handle], named):
                    return None, dump
                unknown[handle] = (nft_forms.replayable(*raw[handle]).hex(), rule)
            chains[chain].append((text, handle))
        items = _table_items(kernel, ns, ns_name, family, name, named) if listed else None
    except (KernelError, ValueError):
        return None, dump
    if ns.generation() != generation:
        return None, None
    kernel.log(ns_name, f"nft table {family} {name}: read from its rules' dump, {len(unknown)} of a form not known")
    return TextReading(generation, chains, sorted(named), items, dumped, unknown=unknown), dump


def _strings_plain(ns, chains: dict, sets: list, raw: dict, devices: list) -> bool:
    """Whether every listed rule that prints a string prints it plain, its
    kernel's form says (nftgen.prints_plain: no quote in it, so each quoted part
    of its line is one string; `sets`, the table's named sets), and the devices'
    names (`devices`, read before the listing, and now) hold no quote either."""
    from . import nftgen

    quoted = [handle for rows in chains.values() for text, handle in rows if '"' in text]
    if not quoted:
        return True
    named = frozenset(sets)
    if not all(handle in raw and nftgen.prints_plain(*raw[handle], named) for handle in quoted):
        return False
    return all(nftgen.plain_name(name) for name in devices + [link.ifname for link in ns.links()])


def _table_by_text(kernel, ns, ns_name: str, family: str, name: str, desired: dict, sent: dict, extras: bool):
    """The fields of one table as the reader gives them, read without its
    JSON listing: its chain headers and sets (elements included) from their
    own JSON listings, as the reader reads them; its rules from its text
    listing (half the cost, and no canonical form to make), each rule printed
    exactly as the text sent for a desired rule (`sent`: {chain: [text]}, with
    `desired` the desired table's fields) being that rule. The listings may
    have been made ahead, at this very generation (kernel/readahead.py).

    With `extras`, a chain may also hold rules that print as no desired rule,
    or lack desired rules, not both: a desired rule missing where an unknown one
    stands may be the same rule printed otherwise. An unknown rule gets its
    canonical form from libnftables in a throwaway namespace
    (_compiled_in_scratch), so the read is what a JSON listing gives. None
    where it cannot be decided so (a listing this reader does not follow, a
    chain holding rules printed otherwise, an unknown rule the throwaway
    namespace does not make exactly, the generation moving while reading): the
    caller lists as JSON."""
    from ..kinds import nft_text
    from ..kinds.nft_canon import live_table_specs
    from . import readahead

    generation = ns.generation()
    if generation is None:
        return None
    # Its rules read ahead (in a child: kernel/readahead.py), its chains and sets are
    # listed here meanwhile, and made fields (the set's elements canonical).
    cookie = ns.cookie()
    beside = _items_beside(kernel, ns, ns_name, family, name, generation) \
        if readahead.ahead(ns_name, cookie, generation, family, name) else None
    reading = readahead.take(ns_name, cookie, generation, family, name, ns.read_devices)
    if reading is not readahead.MISSING and reading is not None and reading.items is None:
        if beside is None or beside[0] != sorted(reading.sets):
            reading = readahead.MISSING  # (the generation moved: what is read below says so)
        else:
            reading = reading._replace(items=beside[1])
    if reading is readahead.MISSING:
        reading, beside = read_table_text(kernel, ns, ns_name, family, name), None
    else:
        kernel.log(ns_name, f"nft table {family} {name}: read ahead at generation {generation}")
    replayed: dict = {}
    fields = dict(beside[2]) if beside is not None and reading is not None and reading.items is beside[1] else None
    if reading is not None and reading.unknown:
        if fields is None:
            fields = live_table_specs(reading.items, TABLE_PREFIX)[0].get((family, name), {})
        replayed = _replayed_in_scratch(family, name, reading, fields)
        if replayed is None:  # not made so there: listed after all
            reading = read_table_text(kernel, ns, ns_name, family, name, by_forms=False)
            replayed, fields = {}, None
        else:
            reading = reading._replace(chains={chain: [(replayed[handle][0] if text is None else text, handle)
                                                       for text, handle in rows]
                                               for chain, rows in reading.chains.items()})
    if reading is None or reading.generation != generation:
        return None
    chains, sets, items, dumped = reading.chains, reading.sets, reading.items, reading.dumped
    if ns.generation() != generation:
        return None  # a commit came while reading: the parts may be of different rulesets
    per_chain: dict = {chain: [] for chain in chains}
    for chain, handle in dumped:
        per_chain.setdefault(chain, []).append(handle)
    if per_chain != {chain: [handle for _, handle in rows] for chain, rows in chains.items()}:
        return None
    if fields is None:
        fields = live_table_specs(items, TABLE_PREFIX)[0].get((family, name), {})
    if {f[6:] for f in fields if f.startswith("rules ")} != set(chains) or \
            sorted(f[4:] for f in fields if f.startswith("set ")) != sorted(sets):
        return None
    per_rule = {}
    for chain, rows in chains.items():
        keys = desired.get(f"rules {chain}", ())
        texts = sent.get(chain, [])
        if len(texts) != len(keys):
            return None
        found = [text for text, _ in rows]
        if found == texts:
            per_rule[chain] = list(keys)
        elif not extras:
            return None
        else:
            per_rule[chain] = nft_text.keys_of_listed(texts, keys, found)
            if per_rule[chain] is None:
                return None
    known = {(chain, text): replayed[handle][1] for chain, rows in chains.items() for text, handle in rows
             if handle in replayed}
    unknown = sorted({(chain, text) for chain, keys in per_rule.items() for key in keys
                      if (text := nft_text.listed_text(key)) is not None} - set(known))
    if unknown:
        compiled = _compiled_in_scratch(family, name, fields, chains, unknown, [link.ifname for link in ns.links()])
        if len(compiled) != len(unknown):
            return None  # a rule known by its text alone would be shown otherwise than a listing shows it
        known.update(compiled)
    handles = []
    for chain, keys in per_rule.items():
        keys = [known.get((chain, nft_text.listed_text(key)), key) for key in keys]
        fields[f"rules {chain}"] = tuple(keys)
        handles += [(chain, key, handle) for key, (_, handle) in zip(keys, chains[chain])]
    fields["_handles"] = tuple(handles)
    forms = kernel.nft_forms.table(ns_name, family, name) if getattr(kernel, "nft_forms", None) else None
    if forms is not None and reading.raw:
        _note_forms(forms, family, chains, sets, sent, reading.raw)
        # (A plan's proof makes the table's recipe of them: kernel/nft_proof.py.)
        forms.rules_dumped(reading.generation, reading.dumped, reading.raw)
    if forms is not None and replayed:
        # A learnable rule prints alike in any namespace: made again, it printed as the node would.
        for chain, rows in chains.items():
            ours = set(sent.get(chain, ()))
            for text, handle in rows:
                if handle in replayed and text in ours:
                    forms.note(reading.unknown[handle][1], text)
    return fields


def _items_beside(kernel, ns, ns_name: str, family: str, name: str, generation: int):
    """(sorted set names, the table's JSON items as _table_items lists them, its
    fields from them) at `generation`, or None (a refusal, a commit while
    listing): what a reading made ahead leaves out."""
    from ..kinds.nft_canon import live_table_specs
    from . import nftgen

    try:
        parts = kernel.request(ns_name, f"nft parts of {family} {name}", nftgen.table_parts, ns.nfgen_socket(),
                               family, name)
        items = _table_items(kernel, ns, ns_name, family, name, parts["sets"])
    except KernelError:
        return None
    if ns.generation() != generation:
        return None
    return sorted(parts["sets"]), items, live_table_specs(items, TABLE_PREFIX)[0].get((family, name), {})


def _note_forms(forms, family: str, chains: dict, sets, sent: dict, raw: dict) -> None:
    """Note the form of each listed rule printed exactly as a desired rule was
    sent (`chains`, `sent` as in _table_by_text; `raw`: the rules' attributes
    by handle, dumped at the listing's generation) where it is learnable
    (kernel/nft_forms.py) and looks up none but the table's named sets
    (`sets`), so that a later reading knows it from a dump; and the text of a
    rule that is not so, if any (reading this table by forms would be given up
    at that rule: TableForms.serves). While the rule noted so is still listed,
    nothing is done (the forms of 10,000 rules cost 70 ms, for nothing then)."""
    from . import nft_forms, nftgen

    blocker = forms.blocker()
    if blocker is not None and any(text == blocker for rows in chains.values() for text, _ in rows):
        return
    code = nftgen.FAMILIES[family]
    named = set(sets)
    blocker = None
    for chain, rows in chains.items():
        ours = set(sent.get(chain, ()))
        for text, handle in rows:
            try:
                rule = nft_forms.form(code, *raw[handle])
            except (KeyError, ValueError):
                blocker = blocker or text
                continue
            if forms.text(rule) == text:
                continue  # known (learnable when noted)
            looked_up = nft_forms.looked_up(rule.body)
            if looked_up is not None and looked_up <= named and nft_forms.learnable(rule):
                if text in ours:
                    forms.note(rule, text)
            else:
                blocker = blocker or text
    forms.note_blocker(blocker)


SCRATCH_RULES = 200  # more rules than this unknown: listing the table costs less


def _compiled_in_scratch(family: str, name: str, fields: dict, chains: dict, rules: list, devices=()) -> dict:
    """{(chain, text): canonical rule} for rules a table holds that print as no
    desired rule: each added, as printed, to its chain in a skeleton of the table
    (its sets and chains) in a throwaway namespace, and listed back as JSON there
    (nft_scratch, as native rules are compiled), so that a read holding them is
    what a JSON listing gives and can be remembered. The namespace's devices
    (`devices`) that a rule names (`iif "p0"`, as listed there) get stand-ins
    there. {} (the table is listed as JSON) when too many, or any does not go
    back in as printed, or is not printed back there exactly as listed."""
    from ..kinds import nft_text
    from ..kinds.nft_canon import canonical_rule
    from . import nft_scratch

    if len(rules) > SCRATCH_RULES:
        return {}
    named = sorted({device for device in devices if isinstance(device, str) and '"' not in device
                    and any(f'"{device}"' in text for _, text in rules)})
    job = dict(_skeleton(family, name, fields, chains), devices=named,
               rules=[[str(i), chain, text] for i, (chain, text) in enumerate(rules)])
    try:
        results = nft_scratch.resolve([job])
    except (nft_scratch.ScratchUnavailable, OSError, ValueError):
        return {}
    out = {}
    for i, rule in enumerate(rules):
        outcome = results.get(str(i))
        if outcome is None or "error" in outcome:
            return {}
        # nft prints some rules in a form that goes back in as another rule:
        # `tcp dport { 22, 22 }` prints `{ 22 }`, which is added as `tcp dport
        # 22`; `meta l4proto tcp` twice prints once. Only a rule the scratch
        # table prints back exactly as listed is taken to be what it compiled.
        printed = outcome.get("printed")
        if printed is None or nft_text.without_counter_values(printed) != rule[1]:
            return {}
        out[rule] = canonical_rule(outcome["expr"], outcome.get("comment"), family)
    return out


def _skeleton(family: str, name: str, fields: dict, chains) -> dict:
    """A scratch job's table (nft_scratch.resolve): the sets and chain headers
    of a table's fields (as the reader gives them), its chains `chains`."""
    sets = []
    for field, value in fields.items():
        if field.startswith("set "):
            spec = json.loads(value)
            sets.append({"name": field[4:], "type": spec["type"], **({"flags": spec["flags"]} if spec["flags"] else {})})
    headers = {chain: {k: v for k, v in json.loads(fields.get(f"chain {chain}", "{}")).items() if v is not None}
               for chain in chains}
    return {"family": family, "table": name, "sets": sets, "chains": headers, "devices": []}


def _replayed_in_scratch(family: str, name: str, reading, fields: dict) -> dict | None:
    """{handle: (printed text, canonical rule)} of the rules of a reading by
    forms that no known form gave a text for (reading.unknown: their
    attributes as dumped), each made again as dumped, by raw netlink, in a
    skeleton of the table (its sets and chains) in a throwaway namespace, and
    listed there (as text and JSON); `fields`: the table's, as the reader
    gives them. None if any is refused there or does not print there as one
    plain line: the table is listed then."""
    from ..kinds import nft_text
    from ..kinds.nft_canon import canonical_rule
    from . import nft_scratch

    chain_of = {handle: chain for chain, rows in reading.chains.items() for _, handle in rows}
    job = dict(_skeleton(family, name, fields, reading.chains),
               rules=[[str(handle), chain_of[handle], {"raw": attributes}]
                      for handle, (attributes, _) in reading.unknown.items()])
    try:
        results = nft_scratch.resolve([job])
    except (nft_scratch.ScratchUnavailable, OSError, ValueError, KeyError):
        return None
    out = {}
    for handle in reading.unknown:
        outcome = results.get(str(handle)) or {"error": "no answer"}
        printed = outcome.get("printed")
        if "error" in outcome or not isinstance(printed, str) or printed.count('"') % 2:
            return None
        out[handle] = (nft_text.without_counter_values(printed), canonical_rule(outcome["expr"], outcome.get("comment"),
                                                                              family))
    return out


def rule_handles(kernel, ns_name: str, family: str, table: str):
    """[(chain, handle)] of a table's rules in order, if the namespace still holds
    the ruleset this command last read there (same generation before and after
    the dump); else None."""
    from . import nftgen

    ns = kernel.ns(ns_name)
    read = ns.read_generation
    if read is None or ns.generation() != read:
        return None
    try:
        found = kernel.request(ns_name, f"nft rule handles of {family} {table}", nftgen.rule_handles,
                               ns.nfgen_socket(), family, table)
    except KernelError:
        return None
    return found if ns.generation() == read else None


def _listing(kernel, ns, ns_name: str, command: str, what: str) -> list:
    """The items of one libnftables listing (JSON), its context freed after."""
    try:
        text = kernel.request(ns_name, what, run_cmd, kernel, ns, command) or "{}"
    finally:
        ns.release_nft()  # its cache holds the whole ruleset: a thousand of them would not be small
    try:
        return [i for i in json.loads(text).get("nftables", []) if "metainfo" not in i]
    except (ValueError, AttributeError) as exc:
        raise KernelError(f"{what} in {ns_name}", f"libnftables printed JSON that does not parse ({exc})") from None


def _table_key(item: dict):
    (kind, body), = item.items() if len(item) == 1 else ((None, {}),)
    if not isinstance(body, dict):
        return None
    return (body.get("family"), body.get("name") if kind == "table" else body.get("table"))


def rule_texts(kernel, ns_name: str, family: str, table: str) -> dict:
    """handle -> the rule as `nft list` prints it, for reports."""
    ns = kernel.ns(ns_name)
    ns.nft.set_json_output(False)
    try:
        text = kernel.request(ns.name, f"nft list table {family} {table}", run_cmd, kernel, ns,
                              f"list table {family} {table}")
    finally:
        ns.release_nft()
    texts = {}
    for line in text.splitlines():
        found = _HANDLE.match(line.strip())
        if found and not found["text"].split(" ", 1)[0] in ("table", "chain", "set", "map"):
            texts[int(found["handle"])] = found["text"]
    return texts


def transaction(kernel, ns_name: str, commands, what: str, script: str | None = None,
                tables=None, echo: bool = False, json_tables=None, rule_changes=None):
    """Run one transaction (all or nothing) in namespace `ns_name`: `script` (nft
    text) if given, else `commands` (JSON text, or a function making it).

    nft's parser may read a rendered name otherwise than meant (a chain called
    like a keyword): a text transaction libnftables refuses, when nothing was
    committed, is sent again as JSON, which names everything explicitly.
    The JSON may make the change otherwise than the text (whole tables for a
    rule-by-rule change): `json_tables` then stands for `tables`.

    With `echo`, returns [(chain, handle, rule JSON)] of each rule the
    transaction added, as the kernel took it (libnftables' echo), in order.

    `rule_changes` ([(family, table, table fields, Delta.rule_commands)]) says
    the script changes those tables rule by rule alone: sent as raw requests
    where they can be (nft_rule_requests.py; the same echo returned), else the
    script goes.

    Then, with a memo, what the namespace holds is followed without listing it:
    if the generation moved by exactly one, the commit was this transaction
    alone (the kernel numbers every commit in the namespace), so the tables are
    those read before it with `tables` in place (see _follow). `tables` is a
    dict, or a function of the echoed rules giving one (it may raise: the
    caller's verification)."""
    ns = kernel.ns(ns_name)
    before = ns.generation()
    checked_by_caller = callable(tables)  # it verifies what the kernel echoed (or that nothing needed it)
    recipes = _recipes(kernel, tables) if script is not None and not echo and before is not None else None
    sending = "recipe" if recipes is not None else "text" if script is not None else "JSON"
    raw_echo = None
    if rule_changes and script is not None and before is not None:
        raw_echo = _commit_rule_requests(kernel, ns, ns_name, rule_changes, before, what)
        if raw_echo is not None:
            sending = "rule requests"
    kernel.log(ns_name, f"nft transaction ({sending}): {what}")
    echo = echo and raw_echo is None
    if echo:
        ns.nft.set_echo_output(True)
    sent = None  # the text the kernel took, if it took text
    try:
        output = None
        if raw_echo is not None:
            output, sent = "", script  # what the text makes, made (nft_rule_requests.py)
        if output is None and recipes is not None and _commit_recipes(kernel, ns, ns_name, recipes, before):
            output, sent = "", script  # what the text makes, made (nft_recipes.py)
        if output is None and script is not None:
            try:
                output = run_cmd(kernel, ns, script)
                sent = script
            except KernelError as exc:
                if before is None or ns.generation() != before:
                    raise
                kernel.log(ns_name, f"nft text refused ({exc.detail}); the same transaction as JSON")
                tables = json_tables
        if output is None:
            output = run_cmd(kernel, ns, commands() if callable(commands) else commands)
    except KernelError as exc:
        raise KernelError(f"nft transaction in {ns_name} ({what})", exc.detail) from None
    finally:
        if echo:
            ns.nft.set_echo_output(False)
        # Freed, not kept for the namespace's next use: its socket holds one of the
        # fds below FD_SETSIZE libnftables needs (kernel/netns.kept_high), and an
        # apply of a thousand firewalls would hold a thousand.
        ns.release_nft()
    echoed = raw_echo if raw_echo is not None else _echoed(output) if echo else None
    if callable(tables):
        tables = tables(echoed)
    if tables is not None and before is not None:
        after = ns.generation()
        if after == before + 1:  # our commit alone: a listing at `after` shows what it made
            kernel.nft_committed[ns_name] = (ns.cookie(), after, {k: r for k, r in tables.items() if r is not None})
    if kernel.nft_memo is not None and before is not None and tables is not None:
        now = device_list((link.ifname, link.index) for link in ns.links())
        after = ns.generation()
        check = None
        if sent is not None and not checked_by_caller:
            def check(placed):
                return _read_back_as_text(kernel, ns, ns_name, sent, placed, after)
        # The echo verifies what the text sent (the caller's `tables` compares it
        # rule by rule, and a change adding none needs none); after a fallback
        # to JSON nothing compared the echo.
        _follow(kernel.nft_memo, ns_name, ns.cookie(), before, after, ns.read_devices, now, tables,
                verified=checked_by_caller and sent is not None, check=check)
    return echoed


def _recipes(kernel, tables) -> list | None:
    """[(family, table, recipe)] replacing every table of a transaction that
    makes them whole (`tables`: none deleted), if each has a recipe its plan's
    proof made and checked (kernel/nft_recipes.py); else None: the text goes."""
    memo = kernel.nft_memo
    if memo is None or not isinstance(tables, dict) or not tables or any(t is None for t in tables.values()):
        return None
    from . import nft_recipes, nftgen

    parts = []
    for (_, family, name), table in tables.items():
        made = memo.recipe(table)
        if made is None or family not in nftgen.FAMILIES \
                or not nft_recipes.fits(made, nftgen.FAMILIES[family], name, table.fields()):
            return None
        parts.append((nftgen.FAMILIES[family], name, made))
    return parts


def _commit_recipes(kernel, ns, ns_name: str, recipes: list, before: int) -> bool:
    """Send the tables' recipes as one transaction: True if committed; False if
    the kernel refused it and nothing was committed (the text then goes, as
    ever). Raises KernelError if refused while the generation moved."""
    from . import nft_recipes, nftgen

    try:
        # A socket of its own: a refusal may queue more answers than a socket
        # holds, and the namespace's own one must answer the generation after.
        with kernel.in_namespace(ns_name):
            sock = nftgen.open_socket()
        ns.close_later(sock)  # (closed now, it waited for the kernel's cleanup of what the commit removed)
        nftgen.commit(sock, nft_recipes.batch(recipes))
    except OSError as exc:
        if ns.generation() == before:
            kernel.log(ns_name, f"nft recipe refused ({exc.strerror or exc}): the text instead")
            return False
        raise KernelError(f"nft recipe in {ns_name}", exc.strerror or str(exc)) from None
    return True


def _commit_rule_requests(kernel, ns, ns_name: str, changes: list, before: int, what: str):
    """Send a rule-by-rule change as raw requests (nft_rule_requests.py): the
    echo of each rule added ([(chain, handle, rule JSON)], as _echoed gives
    libnftables'), or None if it was not sent or the kernel refused it with
    nothing committed (the text goes then). Raises KernelError if the kernel
    refused it while the generation moved, or committed rules that are not
    those sent (the caller undoes the change)."""
    import socket

    from . import nft_rule_requests as requests
    from . import nft_scratch, nftgen

    rules = sum(len(value) for _, _, fields, _ in changes for field, value in fields.items()
                if field.startswith("rules "))
    if not requests.worth_it(rules):
        return None  # the text: libnftables lists a few rules faster than a throwaway namespace is made
    try:
        # The sets and chains of each table, for the scratch's skeleton of it.
        changes = [(family, table, _skeleton(family, table, fields, [f[6:] for f in fields if f.startswith("chain ")]),
                    commands) for family, table, fields, commands in changes]
        answers = requests.answered(requests.scratch_jobs(changes), nft_scratch.resolve)
        tables = requests.compiled(changes, answers, nftgen.FAMILIES)
        sending = requests.batch(tables)
    except (requests.NotSendable, nft_scratch.ScratchUnavailable, OSError, ValueError, KeyError, TypeError) as exc:
        kernel.log(ns_name, f"nft rule requests not sent ({exc}): the text instead")
        return None
    echoes: list = []
    try:
        with kernel.in_namespace(ns_name):  # a socket of its own, as for a recipe
            sock = nftgen.open_socket()
        ns.close_later(sock)  # (as a recipe's)
        # Every echo waits in the receive queue until the send returns (root: past rmem_max).
        sock.setsockopt(socket.SOL_SOCKET, nftgen.SO_RCVBUFFORCE, 1 << 22)
        nftgen.commit(sock, sending, echoes)
    except OSError as exc:
        if ns.generation() == before:
            kernel.log(ns_name, f"nft rule requests refused ({exc.strerror or exc}): the text instead")
            return None
        raise KernelError(f"nft transaction in {ns_name} ({what})", exc.strerror or str(exc)) from None
    try:
        return requests.verified(tables, echoes)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise KernelError(f"verify nft transaction in {ns_name} ({what})", str(exc)) from None


def _echoed(output: str) -> list:
    """[(chain, handle, rule)] of the rules an echoed transaction added."""
    out = []
    for item in json.loads(output or "{}").get("nftables", []):
        (verb, body), = item.items() if len(item) == 1 else (("", {}),)
        rule = body.get("rule") if verb in ("add", "insert") and isinstance(body, dict) else None
        if isinstance(rule, dict):
            out.append((rule.get("chain"), rule.get("handle"), rule))
    return out


def _follow(memo, ns_name: str, cookie: int, before: int, after, devices, now, tables: dict,
            verified: bool = False, check=None) -> None:
    """Remember the namespace's tables after our own commit, when that is certain:

    * the generation moved from `before` by exactly one: no other commit came
      between the two readings, and ours made exactly one, whole;
    * what the namespace held at `before` (with these devices) is known;
    * each table it now holds is what the kernel lists back for what was sent:
      its content was listed back exactly so before (memo.proven: the compiler's
      form of it is the kernel's), or the transaction was `verified` rule by
      rule (libnftables' echo of each added rule, compared by the caller), or
      `check(tables)` read the new content back and gives the tables with the
      handles their rules got (None: it did not read back as sent);
    * no table can change by itself (timeouts, sets the packet path fills);
    * the devices are those it was read with (`devices`), or every table of
      ours was made by this transaction (with the devices there are `now`): a
      rule naming a device by index means what it meant when it was made.

    Otherwise nothing is remembered: the next read, the apply's verification
    first, lists the ruleset and compares it whole."""
    from ..kinds.nft_canon import changes_by_itself
    if after != before + 1 or devices is None:
        return
    held = memo.get(ns_name, cookie, before, devices)
    if held is None:
        return
    placed = [r for r in tables.values() if r is not None]
    if any(r.get("table flags") for r in placed):
        return  # a flagged table: what libnftables sends for it is checked by listing it
    kept = [r for r in held if r.key not in tables]
    if now != devices and any(r.owner == TOPOLOGY for r in kept):
        return
    if any(changes_by_itself(r.fields()) for r in kept + placed):
        return
    if verified:
        # What was added the kernel echoed as sent; what stayed is proven only if
        # the table it stayed in was (read after a commit of ours, see read):
        # another tool's rule, listed, says nothing of netkeel's sending.
        before_held = {r.key: r for r in held}
        memo.prove(r for r in placed if r.key in before_held and memo.proven(before_held[r.key]))
    elif not all(memo.proven(r) for r in placed):
        placed = check(placed) if check is not None and placed else None
        if placed is None:
            return
        memo.prove(placed)  # it read back exactly as sent
    memo.put(ns_name, cookie, after, now, kept + placed)


# Rules and set elements a plan proves at most (each content once), with their
# recipes: some 6 s of a plan here. A lab of many large policies, each
# different, proves this much; the rest is listed back by its apply, as
# before. (A 50,000-rule policy with a 50,000-element set fits: its apply then
# commits in the kernel's time, 1-2 s, where listing it back took 5 s more.)
PROOF_BUDGET = 120_000


def prove_in_scratch(kernel, jobs: list) -> list:
    """Prove, in a throwaway namespace, the content of the tables `jobs` would
    make (kinds/nft_table.proof_jobs; kernel/nft_proof.py) that the memo knows
    neither proven nor refuted: what lists back there exactly as sent is noted
    proven, and the apply that sends it later follows its commit without
    listing it; what does not (or was not answered for) is noted refuted, and
    not tried again. [(namespace, libnftables' error)] of what was refused
    there (tried again by the next plan: the user is told each time). Nothing
    is proven without a memo."""
    import base64

    from . import nft_proof

    memo = kernel.nft_memo
    if memo is None or not memo.trust:
        return []
    todo, budget = [], PROOF_BUDGET
    for ns, devices, actions in jobs:
        actions = [a for a in actions if not memo.proven(a.desired) and not memo.refuted(a.desired)]
        chosen = []
        for action in actions:
            size = _items(action.desired)
            if size <= budget:
                chosen.append(action)
                budget -= size
        if chosen:
            todo.append((ns, devices, chosen))
    try:
        answers = nft_proof.prove(todo)
    except (OSError, ValueError, KeyError, TypeError) as exc:  # no child, a garbled line: nothing proven
        kernel.log("-", f"no proof in a throwaway namespace: {exc}")
        return []
    refused = []
    for ns, _, actions in todo:
        outcomes = [(a.desired, answers.get(a.key) or {}) for a in actions]
        proven = [table for table, outcome in outcomes if outcome.get("proven") is True]
        memo.prove(proven)
        for action in actions:
            answer = answers.get(action.key) or {}
            if answer.get("proven") is not True:
                continue
            if kernel.nft_forms is not None:
                kernel.nft_forms.table(*action.key).merge(answer.get("forms"))
            try:
                if isinstance(answer.get("recipe"), str):
                    memo.keep_recipe(action.desired, base64.b64decode(answer["recipe"], validate=True))
            except ValueError:  # not base64: no recipe
                pass
        memo.refute(table for table, outcome in outcomes if outcome.get("proven") is not True
                    and "refused" not in outcome)
        refused += [(ns, str(outcome["refused"])) for _, outcome in outcomes if "refused" in outcome]
        kernel.log(ns, f"nft content proven in a throwaway namespace: {len(proven)} of {len(actions)} tables")
    return refused


def _items(table) -> int:
    """A table's rules and set elements (what its making and reading cost)."""
    count = 0
    for field, value in table.spec:
        if field.startswith("rules "):
            count += len(value)
        elif field.startswith("set "):
            try:
                count += len(json.loads(value).get("elements") or ())
            except (ValueError, AttributeError, TypeError):
                count += 1
    return count


def _read_back_as_text(kernel, ns, ns_name: str, script: str, placed: list, generation: int):
    """The tables `placed` (made whole by `script`, now at `generation`) with
    their rules' handles, if each reads back as sent (_table_by_text: every
    rule printed exactly as the script sent it, in order, and its chain headers
    and sets as desired). None if anything differs or cannot be read, or the
    generation moved meanwhile: the caller then lists and compares the whole
    ruleset, as it always did."""
    from ..kinds import nft_text
    out = []
    for table in placed:
        _, family, name = table.key
        fields = table.fields()
        live = _table_by_text(kernel, ns, ns_name, family, name, fields, nft_text.sent_rules(script, family, name),
                              extras=False)
        if live is None:
            return None
        if {k: v for k, v in live.items() if not k.startswith("_")} != \
                {k: v for k, v in fields.items() if not k.startswith("_")}:
            return None
        out.append(Resource(table.kind, table.key, tuple(sorted(dict(fields, _handles=live["_handles"]).items())),
                            table.owner))
    if ns.generation() != generation:
        return None  # another commit came while reading: what was read may not be this generation's
    kernel.log(ns_name, "nft commit read back as text: every rule as sent")
    return out


_AUTO_MERGE = re.compile(r"^\s*auto-merge\s*$", re.MULTILINE)


def _mark_merging(kernel, ns, ns_name: str, items: list) -> None:
    """Mark our interval sets that merge their elements (item["set"]["auto-merge"]):
    libnftables 1.0.6 prints that in text only, and such a set (another tool
    made it so) holds merged elements where the policy's were sent: it must be
    a difference, made again, never a commit followed as sent (found by review)."""
    from ..kinds.nft_text import Unrenderable, name_text

    for item in items:
        body = item.get("set") if len(item) == 1 else None
        flags = body.get("flags") if isinstance(body, dict) else None
        if not (isinstance(body, dict) and str(body.get("table", "")).startswith(TABLE_PREFIX)
                and "interval" in ([flags] if isinstance(flags, str) else flags or ())):
            continue
        try:
            command = f"list set {body['family']} {name_text(body['table'])} {name_text(body['name'])}"
            if _AUTO_MERGE.search(_text_listing(kernel, ns, ns_name, command)):
                body["auto-merge"] = True
        except (KernelError, Unrenderable, KeyError, TypeError):
            continue  # a name nft text cannot say: known by its JSON alone


def _list_command(kind: str, body: dict) -> str:
    return json.dumps({"nftables": [{"list": {kind: body}}]})


def _text_listing(kernel, ns, ns_name: str, command: str, bare: bool = False) -> str:
    """What an nft list command prints as text (handles shown), its context
    freed after. `bare`: without sets' elements and counters' values (`nft -t
    -s`: a large set's elements, read as JSON anyway, are most of the lines to
    parse)."""
    ns.nft.set_json_output(False)
    if bare:
        ns.nft.set_terse_output(True)
        ns.nft.set_stateless_output(True)
    try:
        return kernel.request(ns_name, f"nft {command}", run_cmd, kernel, ns, command) or ""
    finally:
        ns.release_nft()


def _first_error(err: str) -> str:
    lines = [line for line in (err or "").splitlines() if line.strip() and not set(line.strip()) <= {"^", "~"}]
    return " / ".join(lines[:3]) or "libnftables refused the command"
