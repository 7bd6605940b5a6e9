"""A rule-by-rule change sent as raw nf_tables requests, without libnftables.

libnftables 1.0.6 lists every rule of a table into its cache before it
places a rule by position (`add rule ... position H`, `insert rule ...
position H`) or echoes one (evaluate_cache_add asks NFT_CACHE_RULE): 0.16 s
of a 10,000-rule chain, to change one rule. The kernel needs none of it: a
NEWRULE request names its table, its chain and the handle it goes next to
(NFTA_RULE_POSITION; with NLM_F_APPEND right after that rule, else right
before it), a DELRULE request the table, chain and handle it deletes, and
all of one batch commit as one transaction, as libnftables' would.

What a rule's expressions are is libnftables' to say. Each rule to add is
added as text to a skeleton of its table (its chains and sets) in a
throwaway namespace (nft_scratch.py), and its attributes are dumped there
with its JSON listing. Only a rule that means the same in any namespace is
sent so: every expression one whose dump is what it does, no device index
(nft_forms.learnable, as a recipe's rules), and lookups only of the table's
named sets (an anonymous set's name there is another set's here). For any
other rule, or a scratch that cannot answer, or a batch the kernel refuses
without committing, the caller sends the text, as before.

The kernel echoes each rule it added (NLM_F_ECHO) with the handle it gave:
each echo must hold the attributes sent (their form: counters' values
aside), and the caller compares the rule's JSON listing from the scratch
with the desired rule, as it compares libnftables' echo.

Pure: bytes in, bytes out. The scratch is nft_scratch's, the sending nftgen's.
Layout from <linux/netfilter/nf_tables.h> and <linux/netfilter/nfnetlink.h>.
"""

from __future__ import annotations

import json
import struct

from .nft_forms import form, learnable, looked_up, replayable
from .nftgen import (_NLA, NFT_MSG_NEWRULE, NFTA_RULE_CHAIN, NFTA_RULE_HANDLE, NFTA_RULE_TABLE, NLM_F_APPEND,
                     NLM_F_CREATE, _chain_and_handle, _name_attr, _text_attr, last_acknowledged, request,
                     transaction)

NFT_MSG_DELRULE = 8
NFTA_RULE_POSITION = 6
NLM_F_ECHO = 0x8
# More rules added than this in one change: the text goes. Each echo waits in
# the socket's receive queue until the batch is sent, and libnftables' cost of
# listing the chain first is then a small part of the change.
AT_MOST = 100
# Fewer rules than this in the tables changed: the text goes. libnftables lists
# them before it places a rule (about 10 us each here), a throwaway namespace
# costs 20-28 ms (found by review: a forty-node lab's edit of a shared policy of
# a few rules went from 0.9-1.4 s to 2 s, each node paying for its own).
WORTH_FROM = 2000
# The scratch's answers, by the table skeleton, chain and text they compiled:
# nodes sharing a policy share them (one throwaway namespace for the command).
_ANSWERS: dict = {}
_ANSWERS_AT_MOST = 10_000


class NotSendable(Exception):
    """This change is not sent as raw requests (the reason); the text goes."""


def scratch_jobs(changes: list) -> list:
    """nft_scratch jobs compiling the rules a change adds: `changes` is
    [(family, table, skeleton, commands)], the skeleton a scratch job's table
    (its sets and chain headers: nftables._skeleton), the commands
    nft_delta.Delta.rule_commands. Rule ids are "table index:command index"."""
    jobs = []
    for i, (family, table, skeleton, commands) in enumerate(changes):
        rules = [[f"{i}:{k}", command[1], command[4]] for k, command in enumerate(commands) if command[0] == "add"]
        if rules:
            jobs.append(dict(skeleton, family=family, table=table, rules=rules, attributes=True))
    if sum(len(job["rules"]) for job in jobs) > AT_MOST:
        raise NotSendable(f"more than {AT_MOST} rules added")
    return jobs


def worth_it(rules: int) -> bool:
    """Whether a change of tables holding `rules` rules goes as raw requests."""
    return rules >= WORTH_FROM


def answered(jobs: list, resolve) -> dict:
    """The scratch's answers to `jobs` (scratch_jobs'), by rule id: those this
    process has had for the same skeleton, chain and text taken again, the
    rest from one `resolve` (nft_scratch.resolve) of them all."""
    answers, missing = {}, []
    for job in jobs:
        base = json.dumps([job["family"], job["table"], job["sets"], job["chains"], job.get("devices", [])],
                          sort_keys=True)
        todo = []
        for rule_id, chain, text in job["rules"]:
            known = _ANSWERS.get((base, chain, text))
            if known is not None:
                answers[rule_id] = known
            else:
                todo.append([rule_id, chain, text])
        if todo:
            missing.append((base, dict(job, rules=todo)))
    if missing:
        got = resolve([job for _, job in missing])
        for base, job in missing:
            for rule_id, chain, text in job["rules"]:
                answer = got.get(rule_id)
                answers[rule_id] = answer
                if isinstance(answer, dict) and "error" not in answer and len(_ANSWERS) < _ANSWERS_AT_MOST:
                    _ANSWERS[(base, chain, text)] = answer
    return answers


def compiled(changes: list, answers: dict, families: dict) -> list:
    """[(family number, table, commands, {command index: (attributes to send,
    their form digest, the rule's JSON)})] from the scratch's answers. Raises
    NotSendable where a rule did not compile there, or may mean something
    else here (above)."""
    out = []
    for i, (family, table, skeleton, commands) in enumerate(changes):
        number = families.get(family)
        if number is None:
            raise NotSendable(f"family {family}")
        named = {body["name"] for body in skeleton["sets"]}
        made = {}
        for k, command in enumerate(commands):
            if command[0] != "add":
                continue
            answer = answers.get(f"{i}:{k}") or {"error": "no answer"}
            if "error" in answer or not isinstance(answer.get("attributes"), str):
                raise NotSendable(f"the scratch did not compile {command[4]!r}: {answer.get('error', 'no attributes')}")
            try:
                dumped = bytes.fromhex(answer["attributes"])
                rule = form(number, dumped, 0, len(dumped))
                sending = replayable(dumped, 0, len(dumped))
            except ValueError:
                raise NotSendable("a rule's attributes do not parse") from None
            sets = looked_up(rule.body)
            if sets is None or not sets <= named or not learnable(rule):
                raise NotSendable(f"{command[4]!r} may mean something else in another namespace")
            made[k] = (sending, digest(number, sending), {"expr": answer["expr"], "comment": answer.get("comment")})
        out.append((number, table, commands, made))
    return out


def digest(family: int, attributes: bytes) -> str:
    """The form digest of a rule's attributes but its table, chain, handle and position."""
    return form(family, attributes, 0, len(attributes)).digest


def _u64_attr(kind: int, value: int) -> bytes:
    return _NLA.pack(_NLA.size + 8, kind) + struct.pack(">Q", value)


def batch(tables: list) -> bytes:
    """One transaction of the commands of `tables` (compiled()'s), in order:
    each delete a DELRULE by handle, each add a NEWRULE with its compiled
    attributes, placed by NFTA_RULE_POSITION (NLM_F_APPEND: after that rule,
    else before; no anchor: appended), echoed (NLM_F_ECHO); the last request
    asks for an acknowledgement."""
    messages = []
    for family, table, commands, made in tables:
        head = _name_attr(NFTA_RULE_TABLE, table)
        for k, command in enumerate(commands):
            chain = _name_attr(NFTA_RULE_CHAIN, command[1])
            if command[0] == "delete":
                messages.append(request(NFT_MSG_DELRULE, 0, family, head + chain + _u64_attr(NFTA_RULE_HANDLE,
                                                                                            command[2])))
                continue
            _, _, anchor, after, _ = command
            flags = NLM_F_CREATE | NLM_F_ECHO | (NLM_F_APPEND if after else 0)
            where = b"" if anchor is None else _u64_attr(NFTA_RULE_POSITION, anchor)
            messages.append(request(NFT_MSG_NEWRULE, flags, family, head + chain + where + made[k][0]))
    if not messages:
        raise NotSendable("nothing to send")
    return transaction(last_acknowledged(messages))


def verified(tables: list, echoes: list) -> list:
    """[(chain, handle, rule JSON)] of each rule added, in order, from the
    kernel's echoes (each NEWRULE's attributes: `echoes`, in commit order),
    each checked to be the rule sent: its chain, its form. Raises ValueError
    (the commit is then undone by the caller) if not."""
    out, echoes = [], list(echoes)
    for family, table, commands, made in tables:
        for k, command in enumerate(commands):
            if command[0] != "add":
                continue
            if not echoes:
                raise ValueError("the kernel echoed fewer rules than were added")
            echo = echoes.pop(0)
            chain, handle = _chain_and_handle(echo, 0, len(echo))
            if _text_attr(echo, 0, len(echo), NFTA_RULE_TABLE) != table or chain != command[1] or digest(family, replayable(echo, 0, len(echo))) != made[k][1]:
                raise ValueError(f"the kernel took a rule of chain {command[1]} otherwise than sent")
            out.append((chain, handle, dict(made[k][2], chain=chain, handle=handle)))
    if echoes:
        raise ValueError("the kernel echoed more rules than were added")
    return out
