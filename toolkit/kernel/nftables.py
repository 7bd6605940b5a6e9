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
"""

from __future__ import annotations

import json
import re

from ..core.owners import CHAOS_TABLE_PREFIX, FOREIGN, TABLE_PREFIX, overlay
from ..core.resource import Resource
from ..errors import KernelError
from ..kinds.nft_canon import live_table_specs

KIND = "nft_table"
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
    items = listing.get("nftables", [])
    chaos = {(i["table"]["family"], i["table"]["name"]) for i in items
             if "table" in i and i["table"].get("name", "").startswith(CHAOS_TABLE_PREFIX)}
    # A fault's table is netkeel's but not the topology's: read as an overlay's,
    # whole (never compared), so that an apply of the topology leaves it alone.
    items = [i for i in items if _table_key(i) not in chaos]
    owned, foreign = live_table_specs(items, TABLE_PREFIX)
    out = [Resource.make(KIND, (ns_name, family, name), owner=FOREIGN) for family, name in foreign]
    out += [Resource.make(KIND, (ns_name, family, name), owner=overlay("fault")) for family, name in sorted(chaos)]
    for (family, name), fields in owned.items():
        # Rule handles, to fetch the rules' text only if a report needs it (with_display).
        fields["_handles"] = tuple(fields.get("_handles", ()))
        out.append(Resource.make(KIND, (ns_name, family, name), **fields))
    return out


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
        ns.nft.set_json_output(True)
    texts = {}
    for line in text.splitlines():
        found = _HANDLE.match(line.strip())
        if found and not found["text"].split(" ", 1)[0] in ("table", "chain", "set", "map"):
            texts[int(found["handle"])] = found["text"]
    return texts


def transaction(kernel, ns_name: str, commands: str, what: str) -> None:
    """Run one JSON transaction (all or nothing) in namespace `ns_name`."""
    kernel.log(ns_name, f"nft transaction: {what}")
    try:
        run_cmd(kernel, kernel.ns(ns_name), commands)
    except KernelError as exc:
        raise KernelError(f"nft transaction in {ns_name} ({what})", exc.detail) from None


def _first_error(err: str) -> str:
    lines = [line for line in (err or "").splitlines() if line.strip() and not set(line.strip()) <= {"^", "~"}]
    return " / ".join(lines[:3]) or "libnftables refused the command"
