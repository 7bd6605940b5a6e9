"""Firewall policy files: YAML -> schema -> checks -> firewall model (Tables).

A topology node lists the policy files it uses (`policies:`), relative to the
topology file. Each file declares nftables tables; structured rules are
compiled to nftables JSON here, native rules (`nft:`) are checked later by
libnftables itself (kernel/nftables.py) before anything is applied.
"""

from __future__ import annotations

import ipaddress
import json
import re
import string
from dataclasses import replace

from ..core.owners import CHAOS_TABLE_PREFIX, TABLE_PREFIX
from ..errors import Problem
from ..model.firewall import Chain, NamedSet, PolicyLoad, Rule, Table
from .checks import kernel_text
from .item_lines import item_spans
from .loader import Document, format_path, load_document, mapping, sequence
from .nft_rules import (RuleContext, RuleError, check_comment, check_native_strings, compile_rule, describe,
                        element_span, interface_match, port_value)
from .schema import problems_of
from .text import clean_problem, quote, shorten

PRIORITIES = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100}
NAT_HOOKS = ("prerouting", "input", "output", "postrouting")


def load_policy_text(text: str, file: str) -> tuple:
    """(tables, problems) for one policy file; never raises for bad input."""
    load, problems = load_policy(text, file)
    return load.tables, problems


def load_policy(text: str, file: str) -> tuple:
    """(PolicyLoad, problems) for one policy file, read whole: the tables, and
    where its rule and set element items are (item_lines.item_spans) when there is no
    problem, for a later edit of the file to be read rule by rule."""
    doc = load_document(text, file)
    if doc.data is None:
        if not doc.problems:
            doc.problems.append(doc.problem((), "the policy file is empty; it needs `tables`"))
        return PolicyLoad(text, ()), [clean_problem(p) for p in doc.problems]
    problems = problems_of(doc, "policy")
    builder = PolicyBuilder(doc)
    tables = builder.build()
    problems = [clean_problem(p) for p in problems + builder.problems]
    if problems:
        return PolicyLoad(text, tables), problems
    return PolicyLoad(text, tables, item_spans(text, doc), frozenset(builder.repeated)), problems


class PolicyBuilder:
    def __init__(self, doc: Document):
        self.doc = doc
        self.problems = []
        self.repeated = set()  # (table, set) holding an element written twice

    def fail(self, path, message: str) -> None:
        self.problems.append(self.doc.problem(path, message))

    def build(self) -> tuple:
        data = self.doc.data if isinstance(self.doc.data, dict) else {}
        tables = []
        for name, spec in mapping(data.get("tables")).items():
            spec = mapping(spec)
            family = spec.get("family") if spec.get("family") in ("inet", "ip", "ip6") else "inet"
            path = ("tables", name)
            if (TABLE_PREFIX + name).startswith(CHAOS_TABLE_PREFIX):
                self.fail(path, f"table names starting with {CHAOS_TABLE_PREFIX[len(TABLE_PREFIX):]!r} are "
                                f"netkeel's faults' (in the kernel {TABLE_PREFIX + name}): choose another name")
            sets = tuple(self.build_set(path + ("sets", s), s, mapping(v))
                         for s, v in mapping(spec.get("sets")).items())
            set_types = {s.name: s.type for s in sets}
            chain_specs = {c: mapping(v) for c, v in mapping(spec.get("chains")).items()}
            base = {c for c, cspec in chain_specs.items() if "hook" in cspec}
            chains = tuple(self.build_chain(path + ("chains", c), c, cspec, family, set_types,
                                            set(chain_specs) - base, base)
                           for c, cspec in chain_specs.items())
            self.check_jump_loops(path, chain_specs)
            where = f"{self.doc.file}:{self.doc.line_of(path)}"
            tables.append(Table(name=name, family=family, chains=chains, sets=sets, source=where))
        return tuple(tables)

    def check_jump_loops(self, path, chain_specs: dict) -> None:
        """The kernel refuses a ruleset where jumps and gotos lead back to a chain
        they came from (ELOOP at commit): name the rule that closes each loop."""
        edges = {c: [] for c in chain_specs}
        for chain, spec in chain_specs.items():
            for k, rule in enumerate(sequence(spec.get("rules"))):
                action = mapping(rule).get("action")
                for verb in ("jump", "goto"):
                    target = mapping(action).get(verb)
                    if target in edges and target != chain:  # a jump to itself is reported by the rule check
                        edges[chain].append((target, path + ("chains", chain, "rules", k, "action"), verb))
                native = mapping(rule).get("nft")
                if isinstance(native, str):  # a native rule jumps as well: `... jump c2`
                    for verb, target in _NATIVE_JUMP.findall(native):
                        if target in edges and target != chain:
                            edges[chain].append((target, path + ("chains", chain, "rules", k, "nft"), verb))
        reported = set()
        for start in edges:
            for loop, where, verb in _loops_from(start, edges):
                if frozenset(loop) not in reported:
                    reported.add(frozenset(loop))
                    self.fail(where, f"{verb} to '{loop[-1]}' closes a loop: {' -> '.join(loop)}")
        if reported:
            return
        longest: dict = {}
        for start in sorted(c for c, spec in chain_specs.items() if "hook" in spec):
            steps = _deepest(start, edges, longest)
            if len(steps) > MAX_JUMP_DEPTH:
                target, where, verb = steps[MAX_JUMP_DEPTH]
                trail = " -> ".join([start] + [t for t, _, _ in steps[:MAX_JUMP_DEPTH + 1]])
                self.fail(where, f"{verb} to '{target}' goes {MAX_JUMP_DEPTH + 1} chains deep from base chain "
                                 f"'{start}' ({trail}): the kernel follows {MAX_JUMP_DEPTH} at most")

    def build_set(self, path, name: str, spec: dict) -> NamedSet:
        set_type = spec.get("type", "ipv4_addr")
        flags = tuple(sorted(set(f for f in sequence(spec.get("flags")) if isinstance(f, str))))
        elements, spans = [], []
        for k, value in enumerate(sequence(spec.get("elements"))):
            try:
                element = set_element(set_type, value, "interval" in flags)
            except ValueError as exc:
                self.fail(path + ("elements", k), str(exc))
                continue
            elements.append(json.dumps(element, sort_keys=True))
            if "interval" in flags and (span := element_span(element)):
                spans.append((span, k, value))
        spans.sort()
        for (a, k_a, v_a), (b, k_b, v_b) in zip(spans, spans[1:]):
            if b[0] <= a[1] and a != b:  # the kernel refuses overlaps ("conflicting intervals"); equal ones merge
                first, later = sorted(((k_a, v_a), (k_b, v_b)))
                self.fail(path + ("elements", later[0]), f"{later[1]} overlaps {first[1]} (elements[{first[0]}])")
        if len(set(elements)) < len(elements):
            self.repeated.add((path[1], name))
        return NamedSet(name=name, type=set_type, flags=flags, elements=tuple(sorted(set(elements))))

    def build_chain(self, path, name, spec, family, set_types, regular, base) -> Chain:
        hook = spec.get("hook")
        ctype = spec.get("type")
        if hook is None:
            for key in ("type", "priority", "policy"):
                if key in spec:
                    self.fail(path + (key,), f"`{key}` needs a `hook`: only base chains have one")
            header = dict(type=None, hook=None, priority=None, policy=None)
        else:
            ctype = ctype or "filter"
            if ctype == "nat" and hook not in NAT_HOOKS:
                self.fail(path + ("hook",), f"a nat chain cannot hook {hook} (hooks: {', '.join(NAT_HOOKS)})")
            if ctype == "route" and hook != "output":
                self.fail(path + ("hook",), "a route chain hooks output only")
            priority = spec.get("priority", _default_priority(ctype, hook))
            if isinstance(priority, str):
                priority = PRIORITIES.get(priority, priority)
            header = dict(type=ctype, hook=hook, priority=priority, policy=spec.get("policy", "accept"))
        ctx = RuleContext(family, header["type"], hook, set_types, regular - {name}, name, base)
        rules = []
        for k, rule in enumerate(sequence(spec.get("rules"))):
            if isinstance(rule, dict):
                built = self.build_rule(path + ("rules", k), rule, ctx)
                if built is not None:
                    rules.append(built)
        return Chain(name=name, rules=tuple(rules), **header)

    def build_rule(self, path, rule: dict, ctx: RuleContext) -> Rule | None:
        source = f"{self.doc.file}:{self.doc.line_of(path)}"
        comment = rule.get("comment") if isinstance(rule.get("comment"), str) else None
        if "nft" in rule:
            extra = sorted(set(rule) - {"nft", "comment"})
            if extra:
                self.fail(path + (extra[0],), "a native rule (`nft`) stands alone; only `comment` may go with it")
                return None
            if not isinstance(rule["nft"], str):
                return None  # the schema already said it must be text
            text = rule["nft"]
            if not text.strip() or any(c in text for c in ";\n\r"):
                self.fail(path + ("nft",), "a native rule is one rule's statements: not empty, no ';' or newlines")
                return None
            try:
                check_native_strings(text)  # control characters, and lengths past which libnftables crashes
                if comment is not None:
                    check_comment("comment", comment)
            except RuleError as exc:
                self.fail(path + (exc.field,), str(exc))
                return None
            return Rule(expr=None, native=text.strip(), comment=comment, source=source, text=text.strip(),
                        path=format_path(path))
        try:
            expr = compile_rule(rule, ctx)
        except RuleError as exc:
            self.fail(path + ((exc.field,) if exc.field else ()), str(exc))
            return None
        return Rule(expr=json.dumps(expr), native=None, comment=comment, source=source, text=describe(rule),
                    path=format_path(path))


# A verdict statement in a native rule's text (a chain name nft reads bare or quoted).
_NATIVE_JUMP = re.compile(r'\b(jump|goto)\s+"?([A-Za-z0-9_.-]+)"?')

# The kernel's jump stack (NFT_JUMP_STACK_SIZE, 16): a chain reached through 16
# jumps or gotos from a base chain is refused at commit ("Too many links").
MAX_JUMP_DEPTH = 15


def _deepest(chain: str, edges: dict, longest: dict) -> list:
    """The longest run of (target, path of the rule, verb) from `chain` over jump
    edges that hold no loop; memoised in `longest`."""
    if chain not in longest:
        longest[chain] = []  # while being computed (no loops: never read so)
        best = []
        for target, where, verb in edges[chain]:
            run = [(target, where, verb)] + _deepest(target, edges, longest)
            if len(run) > len(best):
                best = run
        longest[chain] = best
    return longest[chain]


def _loops_from(start: str, edges: dict):
    """(chain names of the loop, path of the closing rule, verb) for each loop
    through `start`, by depth-first search over the jump edges."""
    stack = [(start, [start])]
    seen = set()
    while stack:
        chain, trail = stack.pop()
        for target, where, verb in edges[chain]:
            if target == start:
                yield trail + [start], where, verb
            elif target not in trail and target not in seen:
                seen.add(target)
                stack.append((target, trail + [target]))


def _default_priority(ctype: str, hook: str) -> int:
    if ctype == "nat":
        return PRIORITIES["dstnat"] if hook in ("prerouting", "output") else PRIORITIES["srcnat"]
    if ctype == "route":
        return PRIORITIES["mangle"]
    return PRIORITIES["filter"]


def set_element(set_type: str, value, interval: bool):
    """A set element as nftables JSON. Raises ValueError."""
    if set_type in ("ipv4_addr", "ipv6_addr"):
        version = 4 if set_type == "ipv4_addr" else 6
        if "%" in str(value):  # nftables has no scope: the element would match every link's address
            raise ValueError(f"element {quote(value)} has a scope id, which nftables cannot match: "
                             "write the address alone")
        try:
            net = ipaddress.ip_network(str(value), strict=True)
        except ValueError:
            try:
                fixed = ipaddress.ip_network(str(value), strict=False)
            except ValueError:
                raise ValueError(f"invalid element {quote(value)} for a set of {set_type}") from None
            raise ValueError(f"prefix {value} has host bits set (did you mean {fixed}?)") from None
        if net.version != version:
            raise ValueError(f"{value} is IPv{net.version}, the set holds {set_type}")
        if net.prefixlen == net.max_prefixlen:
            return kernel_text(net.network_address)
        if not interval:
            raise ValueError(f"prefix {value} needs the set to have flags: [interval]")
        return {"prefix": {"addr": kernel_text(net.network_address), "len": net.prefixlen}}
    if set_type == "inet_service":
        try:
            port = port_value("elements", value)
        except RuleError as exc:
            raise ValueError(str(exc)) from None
        if isinstance(port, dict) and not interval:
            raise ValueError(f"range {value} needs the set to have flags: [interval]")
        return port
    if set_type == "mark":
        if not isinstance(value, int) or not 0 <= value <= 0xFFFFFFFF:
            raise ValueError(f"invalid mark {quote(value)}: a number from 0 to 4294967295")
        return value
    if set_type == "ifname":
        name = interface_match("elements", str(value))
        if name.endswith("*") and not interval:  # a wildcard is a range of names to the kernel
            raise ValueError(f"wildcard {quote(name)} needs the set to have flags: [interval]")
        return name
    if set_type == "ether_addr":
        parts = str(value).split(":")
        if len(parts) != 6 or not all(1 <= len(p) <= 2 and all(c in string.hexdigits for c in p) for p in parts):
            raise ValueError(f"invalid MAC address {quote(value)}: six hex pairs like 02:00:00:00:00:01")
        return ":".join(p.lower().zfill(2) for p in parts)  # as nft lists it
    return str(value)


def resolve_native_rules(topology, resolve):
    """(topology with every native rule's JSON filled in by `resolve`, problems):
    `resolve` is kernel/nft_scratch.resolve or alike; each rule libnftables
    refused is a problem at its file and line.

    A native rule may name interfaces (`iifname "eth0"`), which exist on one node
    and not another: a table is checked once per set of interface names among the
    nodes using it, each node's own, and a refusal on only some of them says which."""
    groups = _native_groups(topology)  # (table, devices) -> names of the nodes
    jobs, rules_of = [], {}
    for k, ((table, devices), nodes) in enumerate(groups.items()):
        rules = [(f"{k}|{table.source}|{c.name}|{i}", c.name, r.native)
                 for c in table.chains for i, r in enumerate(c.rules) if r.native is not None]
        if not rules:
            continue
        rules_of[k] = rules
        jobs.append(_native_job(table, devices, rules))
    if not jobs:
        return topology, []
    results = resolve(jobs)
    resolved, refusals = {}, {}  # (node, rule key) -> (expr, comment); rule -> {error: [nodes]}
    for k, ((table, _), nodes) in enumerate(groups.items()):
        for rid, _, _ in rules_of.get(k, ()):
            outcome, key = results.get(rid), rid.split("|", 1)[1]
            if outcome is None:
                continue  # not checked (no scratch namespace here): stays unresolved
            if "error" in outcome:
                refusals.setdefault((table, key), {}).setdefault(outcome["error"], []).extend(nodes)
            else:
                resolved.update({(node, key): (json.dumps(outcome["expr"]), outcome.get("comment"))
                                 for node in nodes})
    problems = [_refusal(table, key, error, nodes, _users(groups, table))
                for (table, key), errors in refusals.items() for error, nodes in errors.items()]
    nodes = tuple(replace(n, tables=tuple(_filled(t, resolved, n.name) for t in n.tables)) for n in topology.nodes)
    return replace(topology, nodes=nodes), problems


def _native_groups(topology) -> dict:
    groups = {}
    for node in topology.nodes:
        devices = tuple(sorted(i.name for i in node.interfaces if i.kind != "loopback"))
        for table in node.tables:
            groups.setdefault((table, devices), []).append(node.name)
    return groups


def _users(groups: dict, table: Table) -> list:
    return [node for (t, _), nodes in groups.items() if t == table for node in nodes]


def _native_job(table: Table, devices: tuple, rules: list) -> dict:
    return {
        "family": table.family, "table": table.kernel_name,
        "sets": [{"name": s.name, "type": s.type, **({"flags": list(s.flags)} if s.flags else {})}
                 for s in table.sets],
        "chains": {c.name: ({"type": c.type, "hook": c.hook, "prio": c.priority, "policy": c.policy}
                            if c.hook else {}) for c in table.chains},
        "rules": rules,
        "devices": list(devices),
    }


def _refusal(table: Table, key: str, error: str, nodes: list, users: list) -> Problem:
    _, chain, index = key.rsplit("|", 2)
    rule = next(c for c in table.chains if c.name == chain).rules[int(index)]
    file, _, line = rule.source.rpartition(":")
    where = "" if sorted(nodes) == sorted(users) else f" on node {', '.join(sorted(set(nodes)))}"
    # Taken, but listed back as a rule that lists back otherwise (kernel/nft_scratch.py):
    # the checker says so itself.
    verb = "" if error.startswith("nft lists this rule as") else "libnftables refused "
    return Problem(file, int(line), f"{rule.path}.nft",
                   f"{verb}`{shorten(rule.native, 80)}`{where}: {shorten(error, 400)}")


def _filled(table: Table, resolved: dict, node: str) -> Table:
    chains = []
    for chain in table.chains:
        rules = []
        for i, rule in enumerate(chain.rules):
            found = resolved.get((node, f"{table.source}|{chain.name}|{i}"))
            if rule.native is not None and found:
                # A comment may be written in the native text itself.
                rule = replace(rule, expr=found[0], comment=rule.comment or found[1])
            rules.append(rule)
        chains.append(replace(chain, rules=tuple(rules)))
    return replace(table, chains=tuple(chains))
