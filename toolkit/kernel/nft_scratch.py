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

from ..core.children import bound_child

CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
TIMEOUT_S = 30


class ScratchUnavailable(Exception):
    """No throwaway namespace could be made (no root, no user namespaces)."""


def resolve(jobs: list) -> dict:
    """Run native-rule jobs; returns {rule id: {"expr": [...], "comment": ..., "printed": text}
    or {"error": text}}, "printed" being the rule as `nft list` prints it back.

    A job is {"family", "table", "sets": [set bodies], "chains": {name: header or {}},
    "rules": [[rule id, chain, nft text], ...], "devices": [interface names]},
    and "attributes": true for each rule's attributes as the kernel dumps them
    there, hex, in its answer ("attributes"); the
    text may be {"raw": hex} instead: a rule's attributes as another
    namespace's dump gave them, but its table and chain (all of a job's such
    rules are added first, in one transaction: kernel/nftables.py reads rules
    it knows no text for so); the
    devices are made (as stand-ins) so that rules naming them (`iif "eth0"`)
    check out as they will on the node. Jobs with different devices get
    namespaces of their own. Raises ScratchUnavailable.

    libnftables may abort the whole process on input it does not refuse properly
    (a long log prefix: "stack smashing detected"). The child says which rule it
    is on before each one, so when it dies that rule gets the error and a new
    child goes on with the rules after it.
    """
    results, jobs = {}, [dict(job) for job in jobs if job["rules"]]
    while jobs:
        answered, started, death = _run_child(jobs)
        results.update(answered)
        if death is None:
            return results
        if started is None or started in answered:
            raise ScratchUnavailable(f"the checker {death} before checking any rule")
        results[started] = {"error": f"libnftables {death} checking this rule"}
        done = set(answered) | {started}
        jobs = [{**job, "rules": [r for r in job["rules"] if r[0] not in done]} for job in jobs]
        jobs = [job for job in jobs if job["rules"]]
    return results


def _run_child(jobs: list) -> tuple:
    """Check `jobs` in a forked child: (answers, id of the last rule started,
    how the child died or None when it finished)."""
    read_end, write_end = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_end)
        _child_main(jobs, write_end, parent)
    os.close(write_end)
    answers, started, finished, unavailable = {}, None, False, None
    read_all = False
    try:
        for message in messages(read_end, pid):
            if "start" in message:
                started = message["start"]
            elif "answer" in message:
                answers[message["answer"]] = message["outcome"]
            elif "unavailable" in message:
                unavailable = message["unavailable"]
            elif "done" in message:
                finished = True
        read_all = True
    finally:
        os.close(read_end)
        if not read_all:    # interrupted (Ctrl-C) or a bad line: the child may be stuck, and is not waited for
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _, status = os.waitpid(pid, 0)
    if unavailable is not None:
        raise ScratchUnavailable(unavailable)
    return answers, started, None if finished else _how_it_died(status)


def _child_main(jobs: list, fd: int, parent: int) -> None:
    status = 0
    try:
        # Killed with its parent: a parent killed outright (SIGKILL) cannot kill
        # it when it stays silent, and it holds what it inherited (the state
        # directory's lock, namespaces' fds) while it lives (found by review).
        if bound_child(parent) is None:
            raise OSError("the command that asked has gone")
        _child(jobs, lambda message: send(fd, message))
        send(fd, {"done": True})
    except BaseException as exc:  # report anything to the parent, then leave
        try:
            send(fd, {"unavailable": str(exc) or type(exc).__name__})
        finally:
            status = 1
    finally:
        os._exit(status)


def send(fd: int, message: dict) -> None:
    data = (json.dumps(message) + "\n").encode()
    while data:
        data = data[os.write(fd, data):]


def messages(fd: int, pid: int):
    """The child's JSON lines, until it closes the pipe or stays silent TIMEOUT_S."""
    buffer = bytearray()  # (a line may be megabytes: a table's recipe, nft_recipes.py)
    while True:
        ready, _, _ = select.select([fd], [], [], TIMEOUT_S)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            return
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return
        if b"\n" not in chunk:
            buffer += chunk
            continue
        *lines, rest = (bytes(buffer) + chunk).split(b"\n")
        buffer = bytearray(rest)
        for line in lines:
            yield json.loads(line)


def _how_it_died(status: int) -> str:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        if number == signal.SIGKILL:
            return f"did not answer within {TIMEOUT_S} s"
        return f"crashed ({signal.Signals(number).name})"
    return f"exited with status {os.WEXITSTATUS(status)}"


def _child(jobs: list, send) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    flags = CLONE_NEWNET if os.geteuid() == 0 else CLONE_NEWUSER | CLONE_NEWNET
    by_devices = {}
    for job in jobs:
        by_devices.setdefault(tuple(job.get("devices", ())), []).append(job)
    for devices, group in by_devices.items():
        # A namespace per set of devices: each node's rules see that node's interfaces only.
        if libc.unshare(flags) != 0:
            raise OSError(ctypes.get_errno(), "unshare: " + os.strerror(ctypes.get_errno()))
        flags = CLONE_NEWNET  # the user namespace, when one was needed, is made once
        make_devices(list(devices))
        _check_jobs(group, send)


def _check_jobs(jobs: list, send) -> None:
    import nftables

    nft = nftables.Nftables()
    nft.set_json_output(True)
    nft.set_handle_output(True)
    nft.set_echo_output(True)
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
                send({"answer": rule_id,
                      "outcome": {"error": f"the table around this rule was refused: {err.strip()}"}})
            continue
        handles = {}
        replayed = [rule for rule in job["rules"] if isinstance(rule[2], dict)]
        if replayed:
            send({"start": replayed[0][0]})
            error = _replay(family, table, [(rule_id, alias[chain], bytes.fromhex(rule["raw"]))
                                            for rule_id, chain, rule in replayed], handles)
            if error is not None:
                for rule_id, _, _ in replayed:
                    send({"answer": rule_id, "outcome": {"error": error}})
        for rule_id, chain, text in job["rules"]:
            if isinstance(text, dict):
                continue
            send({"start": rule_id})
            rc, out, err = nft.cmd(f"add rule {family} {table} {alias[chain]} {text}")
            if rc != 0:
                send({"answer": rule_id, "outcome": {"error": _clean(err)}})
                continue
            added = [item["add"]["rule"] for item in json.loads(out)["nftables"] if "add" in item]
            handles[added[0]["handle"]] = rule_id
        nft.set_echo_output(False)
        dumped = _dumped_rules(family, table) if job.get("attributes") else {}
        rc, out, _ = nft.cmd(f"list table {family} {table}")
        nft.set_json_output(False)
        _, text, _ = nft.cmd(f"list table {family} {table}")
        nft.set_json_output(True)
        nft.set_echo_output(True)
        printed = _printed_rules(text)
        listed = [item["rule"] for item in json.loads(out)["nftables"]
                  if item.get("rule") and item["rule"].get("handle") in handles]
        again = _listed_again(nft, family, table, job["chains"], listed)
        for rule in listed:
            outcome = {"expr": rule["expr"], "comment": rule.get("comment"), "printed": printed.get(rule["handle"])}
            if rule["handle"] in dumped:
                outcome["attributes"] = dumped[rule["handle"]]
            expr, text_again = again.get(rule["handle"], (rule["expr"], None))
            if expr != rule["expr"]:
                outcome = {"error": f"nft lists this rule as `{outcome['printed']}`, and that rule, made again, as "
                                    f"`{text_again}`: an apply (which makes what nft listed) could never verify "
                                    f"it; write `{text_again}`"}
            send({"answer": handles[rule["handle"]], "outcome": outcome})
        nft.cmd(f"delete table {family} {table}")


def _listed_again(nft, family: str, table: str, chains: dict, listed: list) -> dict:
    """{handle: (expression list, text) nft lists back for a rule made again from
    its own listing} for the rules of `listed`, added as nft listed them into
    chains of the same headers. A rule whose listing lists back otherwise is one
    an apply (which makes the listing) could never verify: `meta l4proto tcp
    meta l4proto tcp tcp dport 99` lists as `meta l4proto tcp tcp dport 99`,
    which lists as `tcp dport 99` (nft takes one l4proto for the dependency it
    elides). Empty when they cannot be made (nothing is judged then), or when
    the failpoint checker.unlisted asks (runtime/failpoints.py)."""
    if not listed or os.environ.get("NETKEEL_FAILPOINT", "").partition(":")[0] == "checker.unlisted":
        return {}
    where = {"family": family, "table": table}
    alias = {f"netkeel_c{i}": f"netkeel_again{i}" for i in range(len(chains))}
    made = [{"add": {"chain": {**where, "name": f"netkeel_again{i}", **header}}}
            for i, header in enumerate(chains.values())]
    made += [{"add": {"rule": {**where, "chain": alias[rule["chain"]], "expr": rule["expr"],
                               **({"comment": rule["comment"]} if rule.get("comment") else {})}}}
             for rule in listed]
    rc, out, _ = nft.json_cmd({"nftables": made})
    added = [item["add"]["rule"] for item in (out or {}).get("nftables", []) if "rule" in item.get("add", {})] \
        if rc == 0 else []
    if len(added) != len(listed):
        return {}
    handles = {new["handle"]: rule["handle"] for new, rule in zip(added, listed)}
    nft.set_echo_output(False)
    rc, out, _ = nft.cmd(f"list table {family} {table}")
    nft.set_json_output(False)
    _, text, _ = nft.cmd(f"list table {family} {table}")
    nft.set_json_output(True)
    nft.set_echo_output(True)
    if rc != 0:
        return {}
    printed = _printed_rules(text)
    return {handles[item["rule"]["handle"]]: (item["rule"]["expr"], printed.get(item["rule"]["handle"]))
            for item in json.loads(out)["nftables"] if item.get("rule") and item["rule"].get("handle") in handles}


def _replay(family: str, table: str, rules: list, handles: dict):
    """Add rules as another process's dump gave them ((rule id, chain, its
    attributes but table and chain)) in one transaction, by raw netlink; note
    each one's handle in `handles` (handle -> rule id). None, or the kernel's
    refusal."""
    from . import nftgen

    try:
        with nftgen.open_socket() as sock:
            nftgen.add_rules(sock, family, table, [(chain, attributes) for _, chain, attributes in rules])
            dumped = nftgen.rule_handles(sock, family, table)
    except OSError as exc:
        return f"the kernel refused the rules as dumped ({exc.strerror or exc})"
    by_chain: dict = {}
    for chain, handle in dumped:
        by_chain.setdefault(chain, []).append(handle)
    for rule_id, chain, _ in rules:  # each chain's rules in the order sent, before any added as text
        if not by_chain.get(chain):
            return "the rules added are not in the table"
        handles[by_chain[chain].pop(0)] = rule_id
    return None


def _dumped_rules(family: str, table: str) -> dict:
    """{handle: the rule's attributes as the kernel dumps them, hex} of a table
    here (a job that asks for "attributes": nft_rule_requests.py sends them)."""
    from . import nftgen

    raw: dict = {}
    with nftgen.open_socket() as sock:
        nftgen.rule_handles(sock, family, table, raw=raw)
    return {handle: data[offset:end].hex() for handle, (data, offset, end) in raw.items()}


def _printed_rules(listing: str) -> dict:
    """{handle: the rule as `nft -a list` printed it} (a table's, set's or
    chain's opening line is no rule: it ends in `{`)."""
    out = {}
    for line in listing.splitlines():
        text, sep, handle = line.strip().rpartition(" # handle ")
        if sep and handle.isdigit() and not text.endswith("{"):
            out[int(handle)] = text
    return out


def make_devices(names: list) -> None:
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
