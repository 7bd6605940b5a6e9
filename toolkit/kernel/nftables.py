"""Adapter for kind "nft_table": nftables tables netkeel owns, via libnftables' JSON API.

Each node's changed tables are replaced in ONE libnftables transaction (the
kernel applies it all or nothing), so traffic never meets a half-applied
ruleset. Only tables named with TABLE_PREFIX are netkeel's; other tables in a
namespace are reported as kind "nft_foreign" and never touched.

A libnftables context binds its netlink socket when it is created, so each
namespace gets its own context, created with the thread inside it. Interface
names in rules (`iif "eth0"`) are looked up by libnftables with fresh sockets
in whatever namespace the thread is in, so every command also runs with the
thread inside the namespace.
"""

from __future__ import annotations

import json
import re

from ..errors import KernelError
from ..model.firewall import TABLE_PREFIX
from ..reconcile.nft_canon import live_table_specs, object_field
from ..reconcile.resources import Resource

_HANDLE = re.compile(r"^(?P<text>.*?)\s+# handle (?P<handle>\d+)$")


def context():
    """A libnftables context for the namespace the calling thread is in."""
    import nftables  # libnftables is loaded only by commands that need it

    ctx = nftables.Nftables()
    ctx.set_json_output(True)
    ctx.set_handle_output(True)
    return ctx


def run_cmd(kernel, ns, command: str) -> str:
    """Run one nft command (text or JSON) in namespace `ns`; its output. Raises KernelError."""
    with kernel.in_namespace(ns.name):
        rc, out, err = ns.nft.cmd(command)
    if rc != 0:
        shown = command if len(command) < 80 else command[:77] + "..."
        raise KernelError(f"nft {shown}", _first_error(err))
    return out


def read(kernel, ns_name: str) -> list:
    """nft_table resources for the owned tables of a namespace, nft_foreign for the rest."""
    ns = kernel.ns(ns_name)
    listing = json.loads(kernel.request(ns_name, "nft list ruleset", run_cmd, kernel, ns, "list ruleset") or "{}")
    owned, foreign = live_table_specs(listing.get("nftables", []), TABLE_PREFIX)
    out = [Resource.make("nft_foreign", (ns_name, family, name)) for family, name in foreign]
    for (family, name), fields in owned.items():
        # Rule handles, to fetch the rules' text only if a report needs it (with_display).
        fields["_handles"] = tuple(fields.get("_handles", ()))
        out.append(Resource.make("nft_table", (ns_name, family, name), **fields))
    return out


def with_display(kernel, live: Resource) -> Resource:
    """`live` with a `_display` field: its rules as `nft list` prints them."""
    _, family, name = live.key
    texts = _rule_texts(kernel, kernel.ns(live.ns), family, name)
    shown = tuple(sorted({((chain, key), texts.get(handle, key))
                          for chain, key, handle in live.get("_handles", ())}))
    return live.with_fields(_display=shown)


def _rule_texts(kernel, ns, family: str, table: str) -> dict:
    """handle -> the rule as `nft list` prints it, for reports."""
    ns.nft.set_json_output(False)
    try:
        text = kernel.request(ns.name, f"nft list table {family} {table}", run_cmd, kernel, ns,
                              f"list table {family} {table}")
    finally:
        ns.nft.set_json_output(True)
    texts = {}
    for line in text.splitlines():
        found = _HANDLE.match(line.strip())
        if found and not found["text"].split(" ", 1)[0] in ("table", "chain", "set", "map"):
            texts[int(found["handle"])] = found["text"]
    return texts


def run_batch(kernel, phase: str, actions) -> None:
    """Apply every nft_table action of one namespace in one transaction."""
    ns_name = actions[0].ns
    commands = [command for action in actions for command in table_commands(action)]
    names = ", ".join(f"{a.op} table {a.key[1]} {a.key[2]}" for a in actions)
    kernel.log(ns_name, f"nft transaction: {names} ({len(commands)} commands)")
    # JSON input, written as text: the rules are JSON text already, and parsing
    # them only to serialise them again cost more than libnftables' own work.
    try:
        run_cmd(kernel, kernel.ns(ns_name), '{"nftables":[' + ",".join(commands) + "]}")
    except KernelError as exc:
        raise KernelError(f"nft transaction in {ns_name} ({names})", exc.detail) from None


def table_commands(action) -> list:
    """The libnftables JSON commands (as JSON text) that take one table from live
    to desired."""
    _, family, name = action.key
    ident = json.dumps({"family": family, "name": name})
    if action.op == "delete":
        return [f'{{"delete":{{"table":{ident}}}}}']
    commands = [f'{{"add":{{"table":{ident}}}}}']
    if action.op == "modify":
        # add (a no-op if it exists), delete, add: the table is replaced whole,
        # inside the same transaction.
        commands += [f'{{"delete":{{"table":{ident}}}}}', f'{{"add":{{"table":{ident}}}}}']
    where = {"family": family, "table": name}
    sets, chains, rules = [], [], []
    for field, value in action.desired.spec:
        kind, _, item = field.partition(" ")
        if stateful := object_field(field):  # maps, named counters, ...: before the rules using them
            sets.append(json.dumps({"add": {stateful[0]: {**where, "name": stateful[1], **json.loads(value)}}}))
        elif kind == "set":
            spec = json.loads(value)
            body = {**where, "name": item, "type": spec["type"]}
            if spec["flags"]:
                body["flags"] = spec["flags"]
            if spec["elements"]:
                body["elem"] = [json.loads(e) for e in spec["elements"]]
            sets.append(json.dumps({"add": {"set": body}}))
        elif kind == "chain":
            header = {k: v for k, v in json.loads(value).items() if v is not None}
            chains.append(json.dumps({"add": {"chain": {**where, "name": item, **header}}}))
        elif kind == "rules":
            # Each rule is canonical JSON text {"comment":..,"expr":[..]}: splice it in.
            head = json.dumps({**where, "chain": item})[:-1] + ","
            rules.extend(f'{{"add":{{"rule":{head}{rule[1:]}}}}}' for rule in value)
    return commands + sets + chains + rules


def _first_error(err: str) -> str:
    lines = [line for line in (err or "").splitlines() if line.strip() and not set(line.strip()) <= {"^", "~"}]
    return " / ".join(lines[:3]) or "libnftables refused the command"
