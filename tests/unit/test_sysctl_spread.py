"""Sysctls whose writes spread (conf.all.forwarding sets every interface's): written
in an order that keeps every declared value, and aliases declared apart refused."""

from __future__ import annotations

import pytest

from toolkit.core.action import MODIFY
from toolkit.core.resource import Resource
from toolkit.kinds.sysctl import KIND as SYSCTL, overwrites, write_rank
from toolkit.planner import diff


def sysctl(name: str, value: str, ns: str = "a") -> Resource:
    return Resource.make("sysctl", (ns, name), value=value)


def test_writes_that_spread_and_what_they_overwrite():
    assert overwrites("net.ipv4.conf.all.forwarding", "net.ipv4.conf.e0.forwarding")
    assert overwrites("net.ipv4.ip_forward", "net.ipv4.conf.default.forwarding")
    assert overwrites("net.ipv6.conf.all.forwarding", "net.ipv6.conf.e0.forwarding")
    assert overwrites("net.ipv6.conf.all.disable_ipv6", "net.ipv6.conf.e0.disable_ipv6")
    assert overwrites("net.ipv4.conf.default.rp_filter", "net.ipv4.conf.e0.rp_filter")
    # Any `all` field may spread, as IPv6's do more with each kernel (6.18: addr_gen_mode,
    # ignore_routes_with_linkdown, force_forwarding): written again, which is harmless.
    assert overwrites("net.ipv6.conf.all.ignore_routes_with_linkdown", "net.ipv6.conf.e0.ignore_routes_with_linkdown")
    assert overwrites("net.ipv4.conf.all.rp_filter", "net.ipv4.conf.e0.rp_filter")
    # Not: another field, another family, the other scope upwards, IPv6 defaults (new
    # devices only), itself.
    assert not overwrites("net.ipv4.conf.all.forwarding", "net.ipv4.conf.e0.rp_filter")
    assert not overwrites("net.ipv4.conf.all.forwarding", "net.ipv6.conf.e0.forwarding")
    assert not overwrites("net.ipv4.conf.e0.forwarding", "net.ipv4.conf.all.forwarding")
    assert not overwrites("net.ipv6.conf.default.forwarding", "net.ipv6.conf.e0.forwarding")
    assert not overwrites("net.ipv4.conf.default.rp_filter", "net.ipv4.conf.default.rp_filter")
    assert not overwrites("net.ipv4.conf.all.forwarding", "net.ipv4.ip_forward")  # one setting, two names


def test_sysctls_are_written_all_wide_first_then_default_then_the_rest_then_per_interface():
    names = ["net.ipv4.conf.a0.forwarding", "net.core.somaxconn", "net.ipv4.conf.default.rp_filter",
             "net.ipv4.conf.all.forwarding", "net.ipv4.ip_forward"]
    ordered = [r.key[1] for r in SYSCTL.restore_order([sysctl(n, "1") for n in names])]
    assert ordered == ["net.ipv4.conf.all.forwarding", "net.ipv4.ip_forward", "net.ipv4.conf.default.rp_filter",
                       "net.core.somaxconn", "net.ipv4.conf.a0.forwarding"]
    assert [write_rank(n) for n in ordered] == [0, 0, 1, 2, 3]


def test_a_spreading_write_carries_the_declared_values_under_it_that_nothing_else_writes():
    desired = [sysctl("net.ipv4.conf.all.forwarding", "1"), sysctl("net.ipv4.conf.e0.forwarding", "0"),
               sysctl("net.ipv4.conf.e1.forwarding", "0"), sysctl("net.ipv4.conf.e0.rp_filter", "2"),
               sysctl("net.ipv4.conf.e2.forwarding", "0", ns="b")]
    live = [sysctl("net.ipv4.conf.all.forwarding", "0"), sysctl("net.ipv4.conf.e0.forwarding", "0"),
            sysctl("net.ipv4.conf.e1.forwarding", "1"), sysctl("net.ipv4.conf.e0.rp_filter", "2"),
            sysctl("net.ipv4.conf.e2.forwarding", "0", ns="b")]
    plan = diff(desired, live)
    assert [(a.op, a.key) for a in plan.actions] == [(MODIFY, ("a", "net.ipv4.conf.all.forwarding")),
                                                     (MODIFY, ("a", "net.ipv4.conf.e1.forwarding"))]
    # e1 is written anyway (after `all`); e0 only again; another field and another namespace not at all.
    assert plan.actions[0].desired.get("_then") == (("net.ipv4.conf.e0.forwarding", "0"),)
    assert plan.actions[1].desired.get("_then") is None


def test_ip_forward_and_all_forwarding_declared_apart_are_refused(errors, load):
    problems = errors("""\
        name: t
        nodes:
          a:
            sysctls:
              net.ipv4.ip_forward: 1
              net.ipv4.conf.all.forwarding: 0
        """)
    assert problems == ['6: nodes.a.sysctls["net.ipv4.conf.all.forwarding"]: net.ipv4.conf.all.forwarding = 0, yet '
                        "net.ipv4.ip_forward = 1: they are one setting (the kernel keeps whichever is written "
                        "last); declare one of them"], problems
    load("name: t\nnodes:\n  a:\n    sysctls: {net.ipv4.ip_forward: 1, net.ipv4.conf.all.forwarding: 1}\n")


@pytest.mark.parametrize("scope", ["all", "default"])
def test_ipv6_off_everywhere_or_by_default_is_refused_on_a_node_with_ipv6_addresses_unless_its_device_turns_it_on(
        load, errors, scope):
    """`all` is written first, the interface's own value after: e0 keeps IPv6.
    `default` is written before the node's devices are made, and they take it:
    IPv6 off on each (the kernel refused their addresses only once the node was
    made again, by an apply after its peer's namespace was deleted)."""
    lab = """\
        name: t
        nodes:
          a:
            sysctls: {{net.ipv6.conf.{scope}.disable_ipv6: 1{own}}}
          b: {{}}
        links:
          - endpoints:
              - {{node: a, interface: e0, addresses: ["fd00::1/64"]}}
              - {{node: b, interface: e0}}
        """
    load(lab.format(scope=scope, own=", net.ipv6.conf.e0.disable_ipv6: 0"))
    assert errors(lab.format(scope=scope, own="")) == [
        f'4: nodes.a.sysctls["net.ipv6.conf.{scope}.disable_ipv6"]: net.ipv6.conf.{scope}.disable_ipv6 = 1, yet e0 '
        "has IPv6 addresses: the kernel refuses them"]


def test_defaults_are_written_once_namespaces_exist_before_any_device_is_made(load):
    from toolkit.kinds import compile_all
    from toolkit.runtime.execute import steps

    topology = load("""\
        name: t
        nodes:
          a:
            sysctls: {net.ipv6.conf.default.hop_limit: 7, net.ipv4.ip_forward: 1,
                      net.ipv4.conf.default.forwarding: 0, net.ipv6.conf.e0.hop_limit: 9}
          b: {}
        links:
          - endpoints: [{node: a, interface: e0}, {node: b, interface: e0}]
        """)
    plan = diff(compile_all(topology), [])
    order = [(s.phase, s.action.kind, s.action.key[-1]) for s in steps(plan) if s.action.ns == "a"]
    assert order == [("create", "netns", "a"), ("defaults", "sysctl", "net.ipv4.conf.default.forwarding"),
                     ("defaults", "sysctl", "net.ipv6.conf.default.hop_limit"), ("create", "link", "e0"),
                     ("configure", "link", "e0"), ("configure", "link", "lo"), ("set", "sysctl", "net.ipv4.ip_forward"),
                     ("set", "sysctl", "net.ipv4.conf.e0.forwarding"), ("set", "sysctl", "net.ipv6.conf.e0.hop_limit")]
    # ip_forward, written after it, also sets default.forwarding: it writes the declared value again.
    forward = next(a for a in plan.actions if a.key == ("a", "net.ipv4.ip_forward"))
    assert forward.desired.get("_then") == (("net.ipv4.conf.default.forwarding", "0"),)


def test_ipv6_off_by_default_leaves_lo_its_ipv6_addresses(load):
    """lo is made with the namespace, before `default` is written: it keeps IPv6."""
    load("name: t\nnodes:\n  a:\n    sysctls: {net.ipv6.conf.default.disable_ipv6: 1}\n"
         "    loopback: {addresses: ['fd00:9::1/128']}\n")
