"""Every rule form netkeel compiles, and native rules, round-trip through the
kernel without drift; refused native rules stop everything before any change."""

from __future__ import annotations

import shutil
from pathlib import Path

from labkit import namespaces_with

DATA = Path(__file__).with_name("data")


def test_every_rule_form_applies_without_drift(lab):
    result = lab.run("apply", DATA / "everything.yaml")
    assert result.returncode == 0, result.stderr
    code, doc = lab.json("plan", DATA / "everything.yaml")
    assert code == 0 and doc["counts"]["total"] == 0, doc
    assert lab.run("drift", DATA / "everything.yaml").returncode == 0
    # Compared with the kernel's own listing, not with what the apply remembered it sent.
    assert lab.run("drift", DATA / "everything.yaml", "--full").returncode == 0


def test_a_native_rule_may_name_the_nodes_interfaces(lab, tmp_path):
    shutil.copy("topologies/two-clients-plain.yaml", tmp_path / "lab.yaml")
    text = (tmp_path / "lab.yaml").read_text().replace(
        "      net.ipv4.ip_forward: 1", "      net.ipv4.ip_forward: 1\n    policies: [fw.yaml]")
    (tmp_path / "lab.yaml").write_text(text)
    (tmp_path / "fw.yaml").write_text(
        "tables:\n  f:\n    chains:\n      fwd:\n        hook: forward\n        rules:\n"
        '          - {nft: "iif \\"veth_srv_c2\\" oif \\"veth_srv_c1\\" ct state new drop"}\n')
    result = lab.run("apply", tmp_path / "lab.yaml")
    assert result.returncode == 0, result.stderr
    assert lab.run("drift", tmp_path / "lab.yaml").returncode == 0
    assert lab.ping("ns_client1", "10.0.2.2")
    assert not lab.ping("ns_client2", "10.0.1.2", count=2)


def test_a_refused_native_rule_changes_nothing(lab, prefix, tmp_path):
    (tmp_path / "fw.yaml").write_text(
        "tables:\n  f:\n    chains:\n      in:\n        hook: input\n        rules:\n"
        '          - {protocol: tcp, dport: 22, action: accept}\n'
        '          - {nft: "tcp dport 22 acept"}\n')
    (tmp_path / "lab.yaml").write_text("name: refused\nnodes:\n  a:\n    policies: [fw.yaml]\n")
    for command in ("plan", "apply"):
        result = lab.run(command, tmp_path / "lab.yaml")
        assert result.returncode == 1
        assert f"{tmp_path}/fw.yaml:8: tables.f.chains.in.rules[1].nft: libnftables refused " \
               "`tcp dport 22 acept`" in result.stderr
    assert not namespaces_with(prefix)


# Rule forms as a policy writes them; (chain, hook, type) where they need one.
FORMS = """\
iif: lo, action: accept
oif: [lo, eth9], action: drop
saddr: 10.0.1.2, action: accept
saddr: 10.0.1.0/24, daddr: [10.0.2.0/24, 10.0.3.1], action: accept
daddr: 2001:db8::/64, action: drop
protocol: tcp, dport: 22, counter: true, action: accept
protocol: udp, sport: '1000-2000', action: accept
protocol: [tcp, udp], dport: [53, 80], action: accept
protocol: icmp, icmp_type: echo-request, action: accept
protocol: icmpv6, icmpv6_type: [nd-neighbor-solicit, echo-request], action: accept
protocol: icmpv6, action: accept
protocol: [icmp, icmpv6, gre], action: accept
protocol: gre, action: accept
ct_state: [related, established], action: accept
ct_status: dnat, action: accept
mark: 7, action: accept
limit: 10/second, action: accept
log: {prefix: 'dropped: ', level: info}, action: drop
action: {jump: other}
action: reject
protocol: tcp, action: {reject: tcp-reset}
action: drop, comment: time server
saddr: "@clients", action: accept
"""
PRINTED_OTHERWISE = {"action: reject", "limit: 10/second, action: accept", "mark: 7, action: accept",
                     "protocol: [icmp, icmpv6, gre], action: accept",  # an anonymous set, in nft's order
                     "oif: [lo, eth9], action: drop",
                     "saddr: 10.0.1.0/24, daddr: [10.0.2.0/24, 10.0.3.1], action: accept",
                     # strings, which nft prints raw (a quote in one could print as more rule)
                     "iif: lo, action: accept", "log: {prefix: 'dropped: ', level: info}, action: drop",
                     "action: drop, comment: time server"}


def test_a_new_table_read_back_as_text_is_what_a_full_listing_finds(lab, tmp_path):
    """An apply checks a table it made whole by the kernel's text listing (every
    rule printed as sent) instead of listing it as JSON; what it then remembers
    must be what the full listing finds, for every rule form: `drift` (answered
    from what the apply remembered) and `drift --full` (listing everything) agree."""
    (tmp_path / "lab.yaml").write_text("name: forms\nnodes:\n  fw:\n    policies: [fw.yaml]\n")
    read_back = []
    for i, form in enumerate(FORMS.splitlines()):
        # A new table each time: made whole (a changed one goes rule by rule, checked by echo).
        (tmp_path / "fw.yaml").write_text(
            f"tables:\n  t{i}:\n    sets:\n      clients: {{type: ipv4_addr, flags: [interval], "
            f"elements: [10.0.1.0/24, 10.9.0.1]}}\n    chains:\n      other: {{}}\n"
            f"      input:\n        hook: input\n        policy: drop\n        rules:\n          - {{{form}}}\n")
        result = lab.run("apply", tmp_path / "lab.yaml", "--verbose")
        assert result.returncode == 0, (form, result.stdout, result.stderr)
        if "read back as text" in result.stdout + result.stderr:
            read_back.append(form)
        assert lab.run("drift", tmp_path / "lab.yaml").returncode == 0, form
        full = lab.run("drift", tmp_path / "lab.yaml", "--full")
        assert full.returncode == 0, (form, full.stdout)
    # The rest were listed whole: nft prints them otherwise than they were sent
    # (`reject`, no default burst, the mark in hex, an anonymous set's own order),
    # or they hold a string.
    assert set(FORMS.splitlines()) - set(read_back) <= PRINTED_OTHERWISE, set(FORMS.splitlines()) - set(read_back)


def test_a_table_removed_beside_one_changed_rule_by_rule_is_removed(lab, tmp_path):
    """One apply that removes a table and changes another rule by rule in the
    same namespace: the removal was left out of the transaction while the
    verification believed it made, and every plain drift after said "in sync"
    (found by review)."""
    (tmp_path / "lab.yaml").write_text("name: two\nnodes:\n  fw:\n    policies: [fw.yaml]\n")
    chain = "    chains:\n      input:\n        hook: input\n        rules:\n"
    (tmp_path / "fw.yaml").write_text(
        "tables:\n  keep:\n" + chain + "          - {protocol: tcp, dport: 22, action: accept}\n"
        "  gone:\n" + chain + "          - {protocol: tcp, dport: 23, action: drop}\n")
    assert lab.run("apply", tmp_path / "lab.yaml").returncode == 0
    (tmp_path / "fw.yaml").write_text(
        "tables:\n  keep:\n" + chain + "          - {protocol: tcp, dport: 22, action: accept}\n"
        "          - {protocol: tcp, dport: 80, action: accept}\n")
    result = lab.run("apply", tmp_path / "lab.yaml", "--verbose")
    assert result.returncode == 0, result.stderr
    said = " ".join((result.stdout + result.stderr).split())  # (rich wraps the long log lines)
    assert "delete table inet netkeel_gone, modify table inet netkeel_keep (changed rules and elements only)" in said
    tables = lab.exec("fw", ["nft", "list", "tables"], check=True).stdout
    assert "netkeel_gone" not in tables and "netkeel_keep" in tables
    assert lab.run("drift", tmp_path / "lab.yaml").returncode == 0
    assert lab.run("drift", tmp_path / "lab.yaml", "--full").returncode == 0
