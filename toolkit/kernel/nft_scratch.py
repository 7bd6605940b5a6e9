"""Native nft rules, checked and translated by libnftables in a throwaway namespace.

A policy may write a rule as nft text (`nft: "tcp flags syn ... accept"`).
libnftables alone knows whether it is valid and what JSON it becomes, so before
anything is applied each such rule is added, inside a child process in a fresh
network namespace of its own, to a skeleton of its table; the kernel's listing
gives the rule's JSON, or libnftables' error says what is wrong. Nothing of the
machine is touched: the namespace dies with the child. Without root the child
makes a user namespace too (where the system allows unprivileged ones).
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal

CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
TIMEOUT_S = 30


class ScratchUnavailable(Exception):
    """No throwaway namespace could be made (no root, no user namespaces)."""


def resolve(jobs: list) -> dict:
    """Run native-rule jobs; returns {rule id: {"expr": [...], "comment": ...} or {"error": text}}.

    A job is {"family", "table", "sets": [set bodies], "chains": {name: header or {}},
    "rules": [[rule id, chain, nft text], ...], "devices": [interface names]}; the
    devices are made (as stand-ins) so that rules naming them (`iif "eth0"`)
    check out as they will on the node. Raises ScratchUnavailable.
    """
    if not jobs:
        return {}
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_end)
        status = 0
        try:
            result = _child(jobs)
        except BaseException as exc:  # report anything to the parent, then leave
            result, status = {"__unavailable__": str(exc)}, 1
        try:
            os.write(write_end, json.dumps(result).encode())
        finally:
            os._exit(status)
    os.close(write_end)
    try:
        data = _read_all(read_end, pid)
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    result = json.loads(data or b'{"__unavailable__": "the checker died"}')
    if "__unavailable__" in result:
        raise ScratchUnavailable(result["__unavailable__"])
    return result


def _read_all(fd: int, pid: int) -> bytes:
    chunks = []
    while True:
        ready, _, _ = select.select([fd], [], [], TIMEOUT_S)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            return b""
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _child(jobs: list) -> dict:
    libc = ctypes.CDLL(None, use_errno=True)
    flags = CLONE_NEWNET if os.geteuid() == 0 else CLONE_NEWUSER | CLONE_NEWNET
    if libc.unshare(flags) != 0:
        raise OSError(ctypes.get_errno(), "unshare: " + os.strerror(ctypes.get_errno()))
    import nftables

    _make_devices(sorted({d for job in jobs for d in job.get("devices", ())}))
    nft = nftables.Nftables()
    nft.set_json_output(True)
    nft.set_handle_output(True)
    nft.set_echo_output(True)
    results = {}
    for job in jobs:
        family, table = job["family"], job["table"]
        where = {"family": family, "table": table}
        skeleton = [{"add": {"table": {"family": family, "name": table}}}]
        skeleton += [{"add": {"set": {**where, **body}}} for body in job["sets"]]
        skeleton += [{"add": {"chain": {**where, "name": name, **header}}}
                     for name, header in job["chains"].items()]
        # Rules go into stand-ins with the same headers and names nft's text
        # syntax cannot trip over (a chain may be called `fwd`, a keyword there).
        alias = {name: f"netkeel_c{i}" for i, name in enumerate(job["chains"])}
        skeleton += [{"add": {"chain": {**where, "name": alias[name], **header}}}
                     for name, header in job["chains"].items()]
        rc, _, err = nft.json_cmd({"nftables": skeleton})
        if rc != 0:
            for rule_id, _, _ in job["rules"]:
                results[rule_id] = {"error": f"the table around this rule was refused: {err.strip()}"}
            continue
        handles = {}
        for rule_id, chain, text in job["rules"]:
            rc, out, err = nft.cmd(f"add rule {family} {table} {alias[chain]} {text}")
            if rc != 0:
                results[rule_id] = {"error": _clean(err)}
                continue
            added = [item["add"]["rule"] for item in json.loads(out)["nftables"] if "add" in item]
            handles[added[0]["handle"]] = rule_id
        nft.set_echo_output(False)
        rc, out, _ = nft.cmd(f"list table {family} {table}")
        nft.set_echo_output(True)
        for item in json.loads(out)["nftables"]:
            rule = item.get("rule")
            if rule and rule.get("handle") in handles:
                results[handles[rule["handle"]]] = {"expr": rule["expr"], "comment": rule.get("comment")}
        nft.cmd(f"delete table {family} {table}")
    return results


def _make_devices(names: list) -> None:
    """Stand-in devices with the node's interface names, in the scratch namespace:
    dummies, or bridges where the kernel has no dummy driver (as here)."""
    if not names:
        return
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        for name in names:
            for kind in ("dummy", "bridge"):
                try:
                    ipr.link("add", ifname=name, kind=kind)
                    break
                except Exception:  # a name the kernel refuses: rules naming it will say so
                    continue


def _clean(err: str) -> str:
    """libnftables' error without the caret lines: `Error: syntax error, unexpected ...`."""
    lines = [line.strip() for line in err.splitlines() if line.strip()]
    lines = [line for line in lines if not set(line) <= {"^", "~"} and not line.startswith("add rule ")]
    return " / ".join(lines[:2]).removeprefix("Error: ") or "libnftables refused the rule"
