"""A rule-by-rule change sent as raw nf_tables requests (kernel/nft_rule_requests.py)
makes in the kernel what its text made: every shape of edit (a rule replaced,
added before the first, after the last, several at one place, deleted; with a
comment, a jump, a set lookup; in two chains at once), each compared with the
same table made whole from the policy; rules that may mean something else in
another namespace go as text; a batch the kernel refuses commits nothing and
the text goes; rules the kernel echoes otherwise than sent fail the step."""

from __future__ import annotations

import subprocess

import pytest

from test_fast_paths import POLICY as GUARD

# The small guard policy of test_fast_paths, with a jump, a second chain and
# a filler chain.
RULE_ICMP = "          - {protocol: icmp, icmp_type: echo-request, counter: true, action: accept}\n"
POLICY = GUARD.replace(
    RULE_ICMP, "          - {protocol: udp, dport: 53, action: {jump: audit}}\n" + RULE_ICMP) + """\
      audit:
        rules:
          - {protocol: udp, dport: 5353, counter: true, action: drop}
          - {counter: true, action: return}
      filler:
        rules:
""" + "".join(f"          - {{protocol: tcp, dport: {10000 + n}, action: drop}}\n" for n in range(2000))
# (the filler: fewer rules than nft_rule_requests.WORTH_FROM go as text)
RULE_22 = "          - {protocol: tcp, dport: 22, counter: true, action: accept}\n"
RULE_BLOCKED = '          - {saddr: "@blocked", action: drop}\n'
RULE_5353 = "          - {protocol: udp, dport: 5353, counter: true, action: drop}\n"
EDITS = {
    "replaced": lambda p: p.replace("dport: 22,", "dport: 2222,"),
    "added_first": lambda p: p.replace(RULE_BLOCKED, "          - {protocol: tcp, dport: 1, action: drop}\n"
                                       + RULE_BLOCKED),
    "added_last": lambda p: p.replace(RULE_ICMP, RULE_ICMP + "          - {protocol: tcp, dport: 9, action: drop}\n"),
    "several_at_one_place": lambda p: p.replace(RULE_22, RULE_22 + "".join(
        f"          - {{protocol: tcp, dport: {n}, action: drop, comment: \"rule {n}\"}}\n" for n in (31, 32, 33))),
    "deleted": lambda p: p.replace(RULE_22, ""),
    "comment_and_lookup": lambda p: p.replace("comment: no telnet", "comment: \"still no telnet\"").replace(
        RULE_22, RULE_22 + '          - {daddr: "@blocked", protocol: tcp, action: reject}\n'),
    "jump_and_two_chains": lambda p: p.replace("dport: 53, action", "dport: 54, action").replace(
        RULE_5353, RULE_5353.replace("5353", "5354")),
    "every_rule_of_a_chain": lambda p: p.replace(RULE_5353, "          - {protocol: udp, dport: 7, action: drop}\n")
    .replace("          - {counter: true, action: return}\n", "          - {action: return}\n"),
}


@pytest.fixture
def guarded(lab, tmp_path):
    (tmp_path / "fw.yaml").write_text(POLICY)
    (tmp_path / "lab.yaml").write_text("name: guarded\nnodes:\n  fw:\n    policies: [fw.yaml]\n"
                                       "  fw2:\n    policies: [fw.yaml]\n")
    lab.manifest = tmp_path / "lab.yaml"
    lab.policy = tmp_path / "fw.yaml"
    result = lab.run("apply", lab.manifest)
    assert result.returncode == 0, result.stderr
    return lab


def nft(lab, *args, check=True, node="fw"):
    return subprocess.run(["ip", "netns", "exec", lab.ns(node), "nft", *args], capture_output=True, text=True,
                          timeout=10, check=check).stdout


def table(lab, node="fw") -> str:
    return nft(lab, "list", "table", "inet", "netkeel_guard", node=node)


def made_whole(lab) -> str:
    """The table as an apply makes it whole from the policy (deleted by hand first)."""
    nft(lab, "delete", "table", "inet", "netkeel_guard")
    result = lab.run("apply", lab.manifest)
    assert result.returncode == 0, result.stderr
    return table(lab)


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_each_shape_of_edit_goes_as_rule_requests_and_makes_what_the_whole_table_makes(guarded, edit):
    handles = nft(guarded, "-a", "list", "chain", "inet", "netkeel_guard", "input")
    kept = [line for line in handles.splitlines() if "echo-request" in line]
    guarded.policy.write_text(EDITS[edit](POLICY))
    result = guarded.run("apply", guarded.manifest, "--verbose")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("nft transaction (rule requests)") == 2, result.stderr  # both nodes
    assert "not sent" not in result.stderr and "nft list" not in result.stderr
    assert guarded.run("drift", guarded.manifest, "--full").returncode == 0
    assert table(guarded, "fw2") == table(guarded)
    if edit != "every_rule_of_a_chain":  # a rule that stays keeps its handle
        assert kept[0] in nft(guarded, "-a", "list", "chain", "inet", "netkeel_guard", "input")
    by_requests = table(guarded)
    assert by_requests == made_whole(guarded)
    # And the handles the echo gave are the kernel's: the next edit goes rule by rule too.
    guarded.policy.write_text(EDITS[edit](POLICY).replace("dport: 23,", "dport: 24,"))
    again = guarded.run("apply", guarded.manifest, "--verbose")
    assert again.returncode == 0 and "nft transaction (rule requests)" in again.stderr, again.stderr
    assert guarded.run("drift", guarded.manifest, "--full").returncode == 0


@pytest.mark.parametrize("rule", [
    '{nft: "tcp dport { 80, 443 } drop"}',           # an anonymous set: another set's name here
    '{nft: "iif \\"lo\\" tcp dport 81 drop"}',        # a device by its index
    '{nft: "ct state established accept"}',          # a ct key printed from its bytes: sent so
])
def test_a_rule_that_may_mean_otherwise_elsewhere_goes_as_text(guarded, rule):
    guarded.policy.write_text(POLICY.replace(RULE_22, RULE_22 + f"          - {rule}\n"))
    result = guarded.run("apply", guarded.manifest, "--verbose")
    assert result.returncode == 0, result.stderr
    if "ct state" in rule:  # a ct key printed from its bytes: it goes so
        assert "nft transaction (rule requests)" in result.stderr, result.stderr
    else:
        assert "nft rule requests not sent" in result.stderr and "nft transaction (text)" in result.stderr, \
            result.stderr
    assert guarded.run("drift", guarded.manifest, "--full").returncode == 0
    assert table(guarded) == made_whole(guarded)


def test_a_change_among_few_rules_goes_as_text(guarded):
    """libnftables lists a few rules faster than a throwaway namespace is made."""
    small = POLICY[:POLICY.index("      filler:")]
    guarded.policy.write_text(small)
    assert guarded.run("apply", guarded.manifest).returncode == 0
    guarded.policy.write_text(small.replace("dport: 22,", "dport: 2222,"))
    result = guarded.run("apply", guarded.manifest, "--verbose")
    assert result.returncode == 0, result.stderr
    assert "rule requests" not in result.stderr and result.stderr.count("nft transaction (text)") == 2, result.stderr
    assert guarded.run("drift", guarded.manifest, "--full").returncode == 0


def test_a_batch_the_kernel_refuses_commits_nothing_and_the_text_goes(prefix, monkeypatch):
    """In process, on a namespace of its own: a DELRULE of a handle that does
    not exist ahead of the change: the kernel refuses the whole batch."""
    from toolkit.kernel import Kernel, nft_rule_requests, nftables

    monkeypatch.setattr(nft_rule_requests, "WORTH_FROM", 0)

    said = []
    with Kernel(log=lambda ns, text: said.append(text)) as kernel:
        name = f"{prefix}fw"
        kernel.create_namespace(name)
        ns, fields, commands = _one_table(kernel, name)
        real = nft_rule_requests.batch

        def refused(tables):
            family, table_name, table_commands, made = tables[0]
            return real([(family, table_name, (("delete", "input", 999999),) + table_commands,
                          {k + 1: v for k, v in made.items()})])

        monkeypatch.setattr(nft_rule_requests, "batch", refused)
        before = ns.generation()
        nftables.transaction(kernel, name, None, "test", script=_script(commands), echo=True,
                             tables=lambda echoed: {}, rule_changes=[("inet", "t", fields, commands)])
        assert ns.generation() == before + 1  # one commit: the text's
        assert any("nft rule requests refused" in line for line in said), said
        assert any("nft transaction (text)" in line for line in said), said
        listed = _listed(name)
        assert "tcp dport 2222 accept" in listed and "dport 22 " not in listed


def test_a_rule_the_kernel_echoes_otherwise_than_sent_fails_the_step(prefix, monkeypatch):
    from toolkit.errors import KernelError
    from toolkit.kernel import Kernel, nft_rule_requests, nftables

    monkeypatch.setattr(nft_rule_requests, "WORTH_FROM", 0)

    with Kernel() as kernel:
        name = f"{prefix}fw"
        kernel.create_namespace(name)
        ns, fields, commands = _one_table(kernel, name)
        real = nft_rule_requests.compiled

        def claimed_otherwise(*args):
            tables = real(*args)
            family, table_name, table_commands, made = tables[0]
            sending, _, rule = made[1]
            return [(family, table_name, table_commands, {1: (sending, "0" * 32, rule)})]

        monkeypatch.setattr(nft_rule_requests, "compiled", claimed_otherwise)
        with pytest.raises(KernelError) as failed:
            nftables.transaction(kernel, name, None, "test", script=_script(commands), echo=True,
                                 tables=lambda echoed: {}, rule_changes=[("inet", "t", fields, commands)])
        assert "otherwise than sent" in str(failed.value)


def _one_table(kernel, name: str):
    """A table made by hand in namespace `name`; (the namespace, the table's
    fields as the reader gives them, commands replacing its second rule)."""
    from toolkit.kernel import nftgen
    from toolkit.kinds.nft_canon import chain_header

    subprocess.run(["ip", "netns", "exec", name, "nft", "-f", "-"], check=True, timeout=10, text=True,
                   input="table inet t {\n set s { type ipv4_addr; }\n"
                         " chain input { type filter hook input priority 0; policy accept;\n"
                         "  tcp dport 21 accept\n  tcp dport 22 accept\n  tcp dport 23 accept\n }\n}\n")
    ns = kernel.ns(name)
    with kernel.in_namespace(name):
        sock = nftgen.open_socket()
    with sock:
        handles = [handle for _, handle in nftgen.rule_handles(sock, "inet", "t")]
    fields = {"chain input": chain_header("filter", "input", 0, "accept"),
              "set s": '{"elements": [], "flags": [], "type": "ipv4_addr"}'}
    commands = (("delete", "input", handles[1]), ("add", "input", handles[0], True, "tcp dport 2222 accept"))
    return ns, fields, commands


def _script(commands) -> str:
    delete, add = commands
    return (f"delete rule inet t input handle {delete[2]}\n"
            f"add rule inet t input position {add[2]} {add[4]}\n")


def _listed(name: str) -> str:
    return subprocess.run(["ip", "netns", "exec", name, "nft", "list", "table", "inet", "t"], capture_output=True,
                          text=True, timeout=10, check=True).stdout


SLOW_SCRATCH = """\
import os, sys
from toolkit.kernel import nft_scratch
elements = ", ".join(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(300000))
job = {"family": "inet", "table": "t", "sets": [], "chains": {"c": {}}, "devices": [],
       "rules": [["0", "c", f"ip saddr {{ {elements} }} drop"]]}
print(os.getpid(), flush=True)
nft_scratch.resolve([job])
"""


def test_a_scratch_child_dies_with_a_command_killed_outright(tmp_path):
    """Found by review: a scratch child whose command was killed (SIGKILL) while
    it worked lived on, holding what it inherited (the state directory's lock)
    until it was done or killed by hand. Its work here: one rule with a
    300,000-element set, seconds of libnftables without a word to the parent."""
    import os
    import signal
    import sys
    import time

    script = tmp_path / "slow.py"
    script.write_text(SLOW_SCRATCH)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                              cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
                              env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.dirname(
                                  os.path.abspath(__file__))))})
    try:
        pid = int(parent.stdout.readline())
        children = []
        for _ in range(100):  # bounded: the fork comes at once
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                children = [int(c) for c in f.read().split()]
            if children:
                break
            time.sleep(0.02)
        assert children, "no scratch child was started"
        time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
        parent.wait(timeout=5)
        for _ in range(25):  # bounded: within half a second (at once), where its work takes seconds
            if not os.path.exists(f"/proc/{children[0]}") or _zombie(children[0]):
                break
            time.sleep(0.02)
        else:
            os.kill(children[0], signal.SIGKILL)
            raise AssertionError("the scratch child outlived its command")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(timeout=5)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
