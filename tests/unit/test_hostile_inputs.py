"""Hostile input, table-driven: every case must be refused at validate time with
`FILE:LINE: path: message` lines, every problem at once, no traceback, bounded
messages on one line each, and nothing read beyond what the manifest may name.

Each case is a set of files written to a fresh directory (the manifest is
m.yaml, its policy, when it has one, p.yaml) and a fragment the report must
contain, with the location it must be reported at.
"""

from __future__ import annotations

import os
import re
import stat
import textwrap

import pytest

from toolkit.errors import ManifestError
from toolkit.manifest import load_topology

LINE = re.compile(r"\A(?P<file>[^\n]+?):(?P<line>[1-9][0-9]*): (?:(?P<path>[^ \n]+): )?(?P<message>[^\n]+)\Z")
MAX_LINE = 700

LINK = """\
links:
  - endpoints:
      - {node: a, interface: e0, addresses: [10.0.0.1/24]}
      - {node: b, interface: e0, addresses: [10.0.0.2/24]}
"""


def manifest(nodes: str = "a:\nb:\n", links: str = LINK, name: str = "t") -> str:
    """A two-node manifest with `nodes` (YAML, indented under `nodes:`) and `links`."""
    return f"name: {name}\nnodes:\n  " + textwrap.indent(textwrap.dedent(nodes), "  ").lstrip() + links


def endpoint(fields: str) -> str:
    """The links of `manifest` with a's endpoint given `fields` (YAML flow mapping body)."""
    return ("links:\n  - endpoints:\n"
            f"      - {{node: a, {fields}}}\n"
            "      - {node: b, interface: e0, addresses: [10.0.0.2/24]}\n")


def with_policy(policy: str, nodes: str = "a:\n  policies: [p.yaml]\nb:\n") -> dict:
    return {"m.yaml": manifest(nodes), "p.yaml": textwrap.dedent(policy)}


def rules(*lines: str, hook: str = "input", ctype: str = "filter", family: str = "inet") -> dict:
    """A policy with one base chain holding `lines` (YAML flow mappings)."""
    body = "".join(f"          - {line}\n" for line in lines)
    return with_policy(f"tables:\n  f:\n    family: {family}\n    chains:\n      c:\n"
                       f"        type: {ctype}\n        hook: {hook}\n        rules:\n{body}")


def write(tmp_path, files: dict) -> None:
    for name, content in files.items():
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):  # a symlink, a FIFO, a sparse file: made in place
            content(target)
        elif isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)


def report(tmp_path, monkeypatch, files: dict) -> list[str]:
    """The problem lines validating m.yaml gives (it must be invalid)."""
    write(tmp_path, files)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ManifestError) as caught:
        load_topology("m.yaml")
    lines = str(caught.value).split("\n")
    assert len(lines) == len(caught.value.problems), "a message broke onto another line"
    for line in lines:
        assert LINE.match(line), f"not FILE:LINE: path: message: {line!r}"
        assert len(line) <= MAX_LINE, f"message too long ({len(line)} characters)"
        assert line.isprintable(), f"control characters in {line!r}"
        assert "Traceback" not in line
    return lines


def symlink(to: str):
    return lambda target: target.symlink_to(to)


def char_device(target) -> None:
    os.mknod(target, 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # what /dev/null is


def fifo(target) -> None:
    os.mkfifo(target)


def sparse(size: int):
    def make(target):
        with open(target, "wb") as f:
            f.truncate(size)
    return make


def assert_reported(lines: list[str], where: str, fragment: str) -> None:
    """Some line is at `where` ("m.yaml:3: nodes.a") and contains `fragment`."""
    hits = [line for line in lines if line.startswith(where) and fragment in line]
    assert hits, f"no {where!r} line with {fragment!r} in:\n" + "\n".join(lines)


CASES = [
    # -- 17: values the schema refused never reach the semantic checks ----------
    ("endpoint node is a list",
     {"m.yaml": manifest(links="links:\n  - endpoints:\n      - {node: [a], interface: e0}\n"
                                "      - {node: b, interface: e0}\n")},
     "m.yaml:7: links[0].endpoints[0].node", "expected a string, got a list"),
    ("limit is a number", rules("{limit: 10, action: accept}"),
     "p.yaml:9: tables.f.chains.c.rules[0].limit", "got 10"),
    ("action is an empty mapping", rules("{action: {}}"),
     "p.yaml:9: tables.f.chains.c.rules[0].action", "got a mapping"),
    ("action with an unknown field", rules("{action: {jump: x, foo: 1}}"),
     "p.yaml:9: tables.f.chains.c.rules[0].action.foo", "unknown field 'foo'"),
    ("action is an unknown word", rules("{action: allow}"),
     "p.yaml:9: tables.f.chains.c.rules[0].action", "got 'allow'"),
    ("protocol is a number", rules("{protocol: 6, dport: 22, action: accept}"),
     "p.yaml:9: tables.f.chains.c.rules[0].protocol", "got 6"),
    ("icmp type is a number", rules("{icmp_type: 8, action: accept}"),
     "p.yaml:9: tables.f.chains.c.rules[0].icmp_type", "got 8"),
    ("log prefix is a number", rules("{log: {prefix: 5}, action: accept}"),
     "p.yaml:9: tables.f.chains.c.rules[0].log.prefix", "expected a string, got integer 5"),
    ("set element is a mapping",
     with_policy("tables:\n  f:\n    sets:\n      s: {type: ipv4_addr, elements: [{a: 1}]}\n"),
     "p.yaml:4: tables.f.sets.s.elements[0]", "expected a string or an integer"),
    ("sysctl value is a mapping", {"m.yaml": manifest("a:\n  sysctls: {net.ipv4.ip_forward: {a: 1}}\nb:\n")},
     'm.yaml:4: nodes.a.sysctls["net.ipv4.ip_forward"]', "got a mapping"),
    ("route via is a number", {"m.yaml": manifest("a:\n  routes: [{to: default, via: 5}]\nb:\n")},
     "m.yaml:4: nodes.a.routes[0].via", "expected a string, got integer 5"),

    # -- 11: names are matched whole: `$` matched before a final newline ----------
    ("node name ends in a newline", {"m.yaml": manifest('"x\\n":\nb:\n', links="")},
     'm.yaml:3: nodes["x\\n"]', "invalid node name 'x\\n'"),
    ("topology name ends in a newline", {"m.yaml": manifest(name='"t\\n"')},
     "m.yaml:1: name", "invalid topology name 't\\n'"),
    ("MAC ends in a newline", {"m.yaml": manifest(links="links:\n  - endpoints:\n"
                                                  '      - {node: a, interface: e0, mac: "02:00:00:00:00:01\\n"}\n'
                                                  "      - {node: b, interface: e0}\n")},
     "m.yaml:7: links[0].endpoints[0].mac", "invalid MAC address"),
    ("sysctl name ends in a newline", {"m.yaml": manifest('a:\n  sysctls: {"net.ipv4.ip_forward\\n": 1}\nb:\n')},
     "m.yaml:4: nodes.a.sysctls", "malformed sysctl name"),
    ("table name ends in a newline", with_policy('tables:\n  "f\\n": {}\n'),
     'p.yaml:2: tables["f\\n"]', "invalid name 'f\\n'"),
    ("port ends in a newline", rules('{protocol: tcp, dport: "22\\n", action: accept}'),
     "p.yaml:9: tables.f.chains.c.rules[0].dport", "invalid port"),
    ("port in Arabic-Indic digits", rules('{protocol: tcp, dport: "\u0662\u0662", action: accept}'),
     "p.yaml:9: tables.f.chains.c.rules[0].dport", "invalid port"),
    ("port in superscript digits", rules('{protocol: tcp, dport: "\u00b2", action: accept}'),
     "p.yaml:9: tables.f.chains.c.rules[0].dport", "invalid port"),
    # -- 13: a value is quoted short, a file's content never ----------------------
    ("manifest is a passwd file", {"m.yaml": "root:x:0:0:root:/root:/bin/bash\n" * 50},
     "m.yaml:1", "expected a mapping at the top level, got a string"),
    ("a long topology name", {"m.yaml": manifest(name="n" * 100_000)},
     "m.yaml:1: name", "(100000 characters)"),
    ("a long unknown field", {"m.yaml": manifest() + "? " + "x" * 100_000 + "\n: 1\n"},
     "m.yaml:9: ", "unknown field"),
    ("a long interface name", {"m.yaml": manifest(links="links:\n  - endpoints:\n"
                                                  f"      - {{node: a, interface: {'i' * 5000}}}\n"
                                                  "      - {node: b, interface: e0}\n")},
     "m.yaml:7: links[0].endpoints[0].interface", "is 5000 bytes"),
    ("a long address", {"m.yaml": manifest(links="links:\n  - endpoints:\n"
                                           f"      - {{node: a, interface: e0, addresses: [{'1' * 5000}]}}\n"
                                           "      - {node: b, interface: e0}\n")},
     "m.yaml:7: links[0].endpoints[0].addresses[0]", "(5000 characters)"),
    ("a huge integer", {"m.yaml": manifest(links="links:\n  - mtu: " + "9" * 5000 + "\n    endpoints:\n"
                                           "      - {node: a, interface: e0}\n      - {node: b, interface: e0}\n")},
     "m.yaml:6: links[0].mtu", ""),
    ("many unknown nodes", {"m.yaml": manifest("".join(f"n{i}:\n" for i in range(3000)),
                                               links="links:\n  - endpoints:\n      - {node: a, interface: e0}\n"
                                                     "      - {node: b, interface: e0}\n")},
     "m.yaml:3005: links[0].endpoints[0].node", "more)"),
    # -- 20: control characters, nesting --------------------------------------------
    ("a control character on line 4", {"m.yaml": manifest("a:\n  description: \"x\x07y\"\nb:\n")},
     "m.yaml:4", "character U+0007 is not allowed"),
    ("a NUL byte on line 3", {"m.yaml": b"name: t\nnodes:\n  a\x00:\n"},
     "m.yaml:3", "character U+0000 is not allowed"),
    ("an escape sequence in a name", {"m.yaml": manifest('"a\\e[31m":\nb:\n', links="")},
     'm.yaml:3: nodes["a\\u001b[31m"]', "invalid node name 'a\\x1b[31m'"),
    ("a line separator in a name", {"m.yaml": manifest('"a\\u2028":\nb:\n', links="")},
     'm.yaml:3: nodes["a\\u2028"]', "invalid node name 'a\\u2028'"),
    ("deep nesting without aliases", {"m.yaml": manifest("a:\n  description: " + "[" * 900 + "]" * 900 + "\nb:\n")},
     "m.yaml:4: nodes.a.description[0]", "nesting too deep"),
    ("not UTF-8 on line 3", {"m.yaml": b"name: t\nnodes:\n  \xff:\n"},
     "m.yaml:3", "not UTF-8"),
    ("UTF-16", {"m.yaml": "name: t\nnodes:\n  a:\n".encode("utf-16")},
     "m.yaml:1", "not UTF-8"),
    ("a python tag", {"m.yaml": manifest("a: !!python/object:os.system {}\nb:\n")},
     "m.yaml:3: nodes.a", "is not allowed here"),
    ("a python tag on a scalar", {"m.yaml": manifest(name="!!python/name:os.system t")},
     "m.yaml:1: name", "could not determine a constructor"),
    ("a python tag on a mapping", {"m.yaml": "name: t\nnodes: !!python/object:os.system\n  a:\n"},
     "m.yaml:2: nodes", "YAML tag 'tag:yaml.org,2002:python/object:os.system' is not allowed here"),
    ("a set", {"m.yaml": "name: t\nnodes: !!set\n  a:\n"},
     "m.yaml:2: nodes", "is not allowed here"),
    ("a mapping as a key", {"m.yaml": "name: t\nnodes:\n  ? {a: 1}\n  : {}\n"},
     "m.yaml:3: nodes", "mapping keys must be scalars"),
    ("a duplicate key", {"m.yaml": manifest("a:\nb:\na:\n")},
     "m.yaml:5: nodes.a", "duplicate key 'a'"),
    ("an undefined alias", {"m.yaml": manifest("a: *nope\nb:\n")},
     "m.yaml:3", "undefined alias"),
    # -- 18: only regular files, bounded, policies inside the repository -----------
    ("policy is /dev/zero", with_policy("", nodes="a:\n  policies: [/dev/zero]\nb:\n"),
     "m.yaml:4: nodes.a.policies[0]", "is outside the manifest's directory"),
    ("policy escapes the directory", with_policy("", nodes="a:\n  policies: [../../../../../../etc/passwd]\nb:\n"),
     "m.yaml:4: nodes.a.policies[0]", "is outside the manifest's directory"),
    ("policy is a symlink out of the directory", {**with_policy(""), "p.yaml": symlink("/etc/passwd")},
     "m.yaml:4: nodes.a.policies[0]", "is outside the manifest's directory"),
    ("policy is a FIFO", {**with_policy(""), "p.yaml": fifo},
     "m.yaml:4: nodes.a.policies[0]", "it is a FIFO, not a regular file"),
    ("policy is a directory", {**with_policy(""), "p.yaml": lambda target: target.mkdir()},
     "m.yaml:4: nodes.a.policies[0]", "it is a directory, not a regular file"),
    ("policy is a symlink to a FIFO", {**with_policy(""), "p.yaml": symlink("f"), "f": fifo},
     "m.yaml:4: nodes.a.policies[0]", "it is a FIFO"),
    ("policy is larger than 16 MiB", {**with_policy(""), "p.yaml": sparse(16 * 1024 * 1024 + 1)},
     "m.yaml:4: nodes.a.policies[0]", "larger than 16 MiB"),
    ("manifest is a symlink to /dev/zero", {"m.yaml": symlink("/dev/zero")},
     "m.yaml:1", "is a symlink to a file outside its directory"),
    ("manifest is a symlink to a device in its directory", {"m.yaml": symlink("null"), "null": char_device},
     "m.yaml:1", "it is a character device, not a regular file"),
    ("manifest is a FIFO", {"m.yaml": fifo}, "m.yaml:1", "it is a FIFO"),
    ("manifest is larger than 16 MiB", {"m.yaml": sparse(17 * 1024 * 1024)}, "m.yaml:1", "larger than 16 MiB"),
    # -- 16, 19: what nftables or the kernel would refuse, or crash on ----------------
    ("log prefix of 160 bytes", rules(f"{{log: {'p' * 160}, action: drop}}"),
     "p.yaml:9: tables.f.chains.c.rules[0].log", "the log prefix is 160 bytes; nftables allows 127"),
    ("comment of 300 bytes", rules(f"{{action: drop, comment: {'c' * 300}}}"),
     "p.yaml:9: tables.f.chains.c.rules[0].comment", "a comment is 300 bytes; nftables allows 128"),
    ("native rule with a long log prefix", rules(f"{{nft: 'log prefix \"{'p' * 160}\" drop'}}"),
     "p.yaml:9: tables.f.chains.c.rules[0].nft", "the log prefix is 160 bytes"),
    ("native rule with a long comment", rules(f"{{nft: 'drop comment \"{'c' * 300}\"'}}"),
     "p.yaml:9: tables.f.chains.c.rules[0].nft", "a comment is 300 bytes"),
    ("native rule with a NUL", rules('{nft: "drop\\0 accept"}'),
     "p.yaml:9: tables.f.chains.c.rules[0].nft", "holds control characters"),
    ("native rule comment too long", rules(f"{{nft: drop, comment: {'c' * 129}}}"),
     "p.yaml:9: tables.f.chains.c.rules[0].comment", "a comment is 129 bytes"),
    ("burst 0", rules("{limit: {rate: 5, burst: 0}, action: accept}"),
     "p.yaml:9: tables.f.chains.c.rules[0].limit.burst", "0 is less than the minimum of 1"),
    ("rate beyond 32 bits", rules("{limit: 4294967296/second, action: accept}"),
     "p.yaml:9: tables.f.chains.c.rules[0].limit", "it must be from 1 to 4294967295"),
    ("rate with a huge number", rules(f"{{limit: {'9' * 5000}/second, action: accept}}"),
     "p.yaml:9: tables.f.chains.c.rules[0].limit", "invalid rate"),
    ("iif longer than 15 bytes", rules("{iif: abcdefghijklmnop, action: accept}"),
     "p.yaml:9: tables.f.chains.c.rules[0].iif", "is 16 bytes"),
    ("ifname set element longer than 15 bytes",
     with_policy("tables:\n  f:\n    sets:\n      s: {type: ifname, elements: [abcdefghijklmnop]}\n"),
     "p.yaml:4: tables.f.sets.s.elements[0]", "is 16 bytes"),
    ("mark beyond 32 bits", rules("{mark: 4294967296, action: accept}"),
     "p.yaml:9: tables.f.chains.c.rules[0].mark", "4294967296 is greater than the maximum"),
    ("negative port", rules("{protocol: tcp, dport: -1, action: accept}"),
     "p.yaml:9: tables.f.chains.c.rules[0].dport", "port -1 is out of range"),
    ("port 65536", rules("{protocol: tcp, dport: 65536, action: accept}"),
     "p.yaml:9: tables.f.chains.c.rules[0].dport", "port 65536 is out of range"),
    ("priority beyond 32 bits", with_policy("tables:\n  f:\n    chains:\n      c: {hook: input, priority: 2147483648}\n"),
     "p.yaml:4: tables.f.chains.c.priority", "priority must be an integer"),
    ("masquerade at input", rules("{action: masquerade}", ctype="nat", family="ip"),
     "p.yaml:9: tables.f.chains.c.rules[0].action", "masquerade belongs in a postrouting chain, not input"),
    ("reject at postrouting", rules("{action: reject}", hook="postrouting"),
     "p.yaml:9: tables.f.chains.c.rules[0].action", "reject belongs in a prerouting, input, forward, output chain"),
    ("dnat to a port without a protocol", rules('{action: {dnat: "10.0.0.9:80"}}', hook="prerouting", ctype="nat",
                                                family="ip"),
     "p.yaml:9: tables.f.chains.c.rules[0].action", "needs the rule to match protocol tcp, udp or sctp"),
    ("a jump loop", with_policy("tables:\n  f:\n    chains:\n      a: {rules: [{action: {jump: b}}]}\n"
                                "      b: {rules: [{action: {goto: a}}]}\n"),
     "p.yaml:5: tables.f.chains.b.rules[0].action", "goto to 'a' closes a loop: a -> b -> a"),
    # -- 19: what the kernel reserves, makes itself, or refuses ---------------------
    ("interface called all", {"m.yaml": manifest(links=endpoint("interface: all"))},
     "m.yaml:7: links[0].endpoints[0].interface", "interface name 'all' is reserved"),
    ("interface called default", {"m.yaml": manifest(links=endpoint("interface: default"))},
     "m.yaml:7: links[0].endpoints[0].interface", "interface name 'default' is reserved"),
    ("interface with a NUL", {"m.yaml": manifest(links=endpoint('interface: "e\\0"'))},
     "m.yaml:7: links[0].endpoints[0].interface", "contains control characters"),
    ("interface with a Cyrillic e", {"m.yaml": manifest(links=endpoint("interface: \u0435th0"))},
     "m.yaml:7: links[0].endpoints[0].interface", "is not ASCII"),
    ("bridge called all", {"m.yaml": manifest("a:\n  bridges: {all: {}}\nb:\n")},
     "m.yaml:4: nodes.a.bridges.all", "is reserved"),
    ("all-zero MAC", {"m.yaml": manifest(links=endpoint("interface: e0, mac: '00:00:00:00:00:00'"))},
     "m.yaml:7: links[0].endpoints[0].mac", "all-zero MAC"),
    ("broadcast MAC", {"m.yaml": manifest(links=endpoint("interface: e0, mac: 'ff:ff:ff:ff:ff:ff'"))},
     "m.yaml:7: links[0].endpoints[0].mac", "multicast MAC"),
    ("multicast MAC", {"m.yaml": manifest(links=endpoint("interface: e0, mac: '01:00:5e:00:00:01'"))},
     "m.yaml:7: links[0].endpoints[0].mac", "multicast MAC"),
    ("link-local IPv6 on a veth", {"m.yaml": manifest(links=endpoint("interface: e0, addresses: [fe80::5/64]"))},
     "m.yaml:7: links[0].endpoints[0].addresses[0]", "link-local"),
    ("::1 on a veth", {"m.yaml": manifest(links=endpoint("interface: e0, addresses: ['::1/128']"))},
     "m.yaml:7: links[0].endpoints[0].addresses[0]", "loopback"),
    ("127.0.0.1/8 on lo", {"m.yaml": manifest("a:\n  loopback: {addresses: [127.0.0.1/8]}\nb:\n")},
     "m.yaml:4: nodes.a.loopback.addresses[0]", "loopback address"),
    ("127.0.0.2/32 on lo", {"m.yaml": manifest("a:\n  loopback: {addresses: [127.0.0.2/32]}\nb:\n")},
     "m.yaml:4: nodes.a.loopback.addresses[0]", "loopback address"),
    ("IPv4-mapped IPv6 address", {"m.yaml": manifest(links=endpoint("interface: e0, addresses: ['::ffff:10.0.0.5/120']"))},
     "m.yaml:7: links[0].endpoints[0].addresses[0]", "IPv4-mapped"),
    ("network address as host", {"m.yaml": manifest(links=endpoint("interface: e0, addresses: [10.0.0.0/24]"))},
     "m.yaml:7: links[0].endpoints[0].addresses[0]", "network address"),
    ("broadcast address as host", {"m.yaml": manifest(links=endpoint("interface: e0, addresses: [10.0.0.255/24]"))},
     "m.yaml:7: links[0].endpoints[0].addresses[0]", "broadcast address"),
    ("multicast address as host", {"m.yaml": manifest(links=endpoint("interface: e0, addresses: [224.0.0.5/24]"))},
     "m.yaml:7: links[0].endpoints[0].addresses[0]", "not a unicast host address"),
    ("prefix length 33", {"m.yaml": manifest(links=endpoint("interface: e0, addresses: [10.0.0.5/33]"))},
     "m.yaml:7: links[0].endpoints[0].addresses[0]", "invalid address"),
    ("prefix length 0", {"m.yaml": manifest(links=endpoint("interface: e0, addresses: [10.0.0.5/0]"))},
     "m.yaml:7: links[0].endpoints[0].addresses[0]", "prefix length 0"),
    ("mtu 0", {"m.yaml": manifest(links=endpoint("interface: e0, mtu: 0"))},
     "m.yaml:7: links[0].endpoints[0].mtu", "0 is less than the minimum of 68"),
    ("mtu 65536", {"m.yaml": manifest(links=endpoint("interface: e0, mtu: 65536"))},
     "m.yaml:7: links[0].endpoints[0].mtu", "65536 is greater than the maximum of 65535"),
    ("negative metric", {"m.yaml": manifest("a:\n  routes: [{to: default, via: 10.0.0.2, metric: -1}]\nb:\n")},
     "m.yaml:4: nodes.a.routes[0].metric", "-1 is less than the minimum of 0"),
    ("route to the connected prefix", {"m.yaml": manifest("a:\n  routes: [{to: 10.0.0.0/24, dev: e0}]\nb:\n")},
     "m.yaml:4: nodes.a.routes[0].to", "is the connected route the kernel makes"),
    ("gateway is the node's own address", {"m.yaml": manifest("a:\n  routes: [{to: default, via: 10.0.0.1}]\nb:\n")},
     "m.yaml:4: nodes.a.routes[0].via", "is an address of node 'a' itself"),
    ("gateway is the broadcast address", {"m.yaml": manifest("a:\n  routes: [{to: default, via: 10.0.0.255}]\nb:\n")},
     "m.yaml:4: nodes.a.routes[0].via", "broadcast address"),
    ("route prefix length 40", {"m.yaml": manifest("a:\n  routes: [{to: 10.9.0.0/40, via: 10.0.0.2}]\nb:\n")},
     "m.yaml:4: nodes.a.routes[0].to", "invalid route destination"),
    # -- 12, 19: sysctls the kernel has, for interfaces the node has --------------------
    ("misspelt sysctl", {"m.yaml": manifest("a:\n  sysctls: {net.ipv4.ip_froward: 1}\nb:\n")},
     'm.yaml:4: nodes.a.sysctls["net.ipv4.ip_froward"]', "did you mean 'net.ipv4.ip_forward'?"),
    ("sysctl directory", {"m.yaml": manifest("a:\n  sysctls: {net.ipv4.conf.all: 1}\nb:\n")},
     'm.yaml:4: nodes.a.sysctls["net.ipv4.conf.all"]', "is a directory of sysctls"),
    ("sysctl of an interface the node lacks", {"m.yaml": manifest("a:\n  sysctls: {net.ipv4.conf.eth9.forwarding: 1}\nb:\n")},
     'm.yaml:4: nodes.a.sysctls["net.ipv4.conf.eth9.forwarding"]', "interface 'eth9', which node 'a' does not have"),
    ("sysctl of the other node's interface", {"m.yaml": manifest("a:\n  sysctls: {net.ipv6.conf.e1.forwarding: 1}\nb:\n",
                                                                  links=LINK.replace("node: b, interface: e0",
                                                                                     "node: b, interface: e1"))},
     'm.yaml:4: nodes.a.sysctls["net.ipv6.conf.e1.forwarding"]', "which node 'a' does not have"),
    # -- NUL bytes where Python or C would cut or crash -----------------------------
    ("policy path with a NUL", with_policy("", nodes='a:\n  policies: ["p\\0.yaml"]\nb:\n'),
     "m.yaml:4: nodes.a.policies[0]", "policy path 'p\\x00.yaml' holds control characters"),
    ("sysctl value with a NUL", {"m.yaml": manifest('a:\n  sysctls: {net.ipv4.ip_forward: "1\\0"}\nb:\n')},
     'm.yaml:4: nodes.a.sysctls["net.ipv4.ip_forward"]', "holds control characters"),
    ("iif with a NUL", rules('{iif: "e\\0", action: drop}'),
     "p.yaml:9: tables.f.chains.c.rules[0].iif", "interface name 'e\\x00' holds control characters"),
    ("address with a trailing newline", {"m.yaml": manifest(links=endpoint('interface: e0, addresses: ["10.0.0.1/24\\n"]'))},
     "m.yaml:7: links[0].endpoints[0].addresses[0]", "invalid address '10.0.0.1/24\\n'"),
    ("saddr with a trailing newline", rules('{saddr: "10.0.0.1\\n", action: drop}'),
     "p.yaml:9: tables.f.chains.c.rules[0].saddr", "invalid address or prefix"),
    ("sysctl value beyond 64 bits", {"m.yaml": manifest("a:\n  sysctls: {net.ipv4.ip_forward: " + "9" * 40 + "}\nb:\n")},
     'm.yaml:4: nodes.a.sysctls["net.ipv4.ip_forward"]', "is out of range"),
    ("a second YAML document", {"m.yaml": manifest() + "---\nname: u\n"},
     "m.yaml:9", "expected a single document"),
    ("a sysctl value of 5,000 characters", {"m.yaml": manifest("a:\n  sysctls: {net.ipv4.ip_forward: " + "x" * 5000
                                                                 + "}\nb:\n")},
     'm.yaml:4: nodes.a.sysctls["net.ipv4.ip_forward"]', "(5000 characters) is too long"),
    # -- what the kernel's limit token bucket cannot hold (measured: EOVERFLOW at commit) --
    ("a limit burst the token bucket cannot hold", rules("{limit: {rate: 1, per: day, burst: 4294967295}, "
                                                         "action: accept}"),
     "p.yaml:9: tables.f.chains.c.rules[0].limit", "a burst of 4294967295 at 1 per day is more than the kernel's "
                                                   "token bucket holds: at most 213503 at this rate"),
    # -- a scope id nftables cannot match: it was dropped without a word ------------------
    ("a policy address with a scope id", rules("{saddr: 'fe80::1%e0', action: drop}"),
     "p.yaml:9: tables.f.chains.c.rules[0].saddr", "address 'fe80::1%e0' has a scope id"),
    ("a set element with a scope id",
     with_policy("tables:\n  f:\n    sets:\n      s: {type: ipv6_addr, elements: ['fe80::1%e0']}\n"),
     "p.yaml:4: tables.f.sets.s.elements[0]", "has a scope id"),
    # -- YAML 1.1 numbers few mean: 1:30 is 90 to it, 010 is 8 -------------------------
    ("a port range typed with a colon", rules("{protocol: tcp, dport: 1:30, action: accept}"),
     "p.yaml:9: tables.f.chains.c.rules[0].dport", "invalid port '1:30'"),
    ("an MTU typed with a colon", {"m.yaml": manifest(links=endpoint("interface: e0, mtu: 15:00"))},
     "m.yaml:7: links[0].endpoints[0].mtu", "'15:00'"),
]


@pytest.mark.parametrize("files, where, fragment",
                         [pytest.param(files, where, fragment, id=name) for name, files, where, fragment in CASES])
def test_hostile_input_is_refused_with_file_line_path_and_message(tmp_path, monkeypatch, files, where, fragment):
    assert_reported(report(tmp_path, monkeypatch, files), where, fragment)


def test_the_cases_build_a_valid_lab_without_their_defect(tmp_path, monkeypatch):
    """The scaffolding itself is valid: each case fails for its defect alone."""
    write(tmp_path, {"m.yaml": manifest()} | rules("{protocol: tcp, dport: 22, action: accept}"))
    monkeypatch.chdir(tmp_path)
    load_topology("m.yaml")


def test_policies_outside_may_be_allowed_and_their_content_is_never_echoed(tmp_path, monkeypatch):
    monkeypatch.setenv("NETKEEL_ALLOW_OUTSIDE_POLICIES", "1")
    lines = report(tmp_path, monkeypatch, with_policy("", nodes="a:\n  policies: [/etc/passwd, /dev/zero]\nb:\n"))
    assert_reported(lines, "/etc/passwd:1", "expected a mapping at the top level, got a string")
    assert_reported(lines, "m.yaml:4: nodes.a.policies[1]", "it is a character device")
    assert not any("root:" in line for line in lines)


def test_a_manifest_or_fault_file_linked_out_of_its_repository_is_not_read(tmp_path, monkeypatch):
    """A symlink in the repository (a pull request's) to a file elsewhere: its
    lines would come back as unknown keys in a CI log. Refused unread, with the
    way to allow it; a link inside the repository is read as before."""
    from toolkit.manifest.fault import load_fault

    secret = tmp_path / "elsewhere" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("root-password-line: x\n")
    repo = tmp_path / "repo"
    write(repo, {"m.yaml": symlink(str(secret)), "faults/f.yaml": symlink(str(secret)), "real.yaml": manifest(),
                 "inside.yaml": symlink("real.yaml")})
    monkeypatch.chdir(repo)
    for load, name, what, root in ((load_topology, "m.yaml", "manifest", repo),
                                   (load_fault, "faults/f.yaml", "fault file", repo / "faults")):
        with pytest.raises(ManifestError) as caught:
            load(name)
        assert [str(p) for p in caught.value.problems] == [
            f"{name}:1: {what} '{name}' is a symlink to a file outside its directory ('{root}'); name the file "
            f"itself, or set NETKEEL_ALLOW_OUTSIDE_POLICIES=1 to allow it"]
    assert load_topology("inside.yaml").name == "t"
    monkeypatch.setenv("NETKEEL_ALLOW_OUTSIDE_POLICIES", "1")
    with pytest.raises(ManifestError, match="none of its 1 top-level field") as caught:
        load_topology("m.yaml")  # read now, and still not quoted: it is not a manifest
    assert "root-password" not in str(caught.value)


@pytest.mark.parametrize("text", ["root:$y$j9T$salt$hash:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n"
                                  "root:$y$j9T$salt$hash:19000:0:99999:7:::\n",  # a duplicate key too
                                  "AWS_SECRET: abc123\nTOKEN: xyz\n"])
def test_a_file_that_is_not_a_manifest_at_all_is_never_quoted(tmp_path, text):
    """/etc/shadow named by mistake: its lines came back as unknown fields, salt
    and hash in the message (found by review). A manifest's own misspelt field
    is still quoted, with a guess."""
    (tmp_path / "m.yaml").write_text(text)
    with pytest.raises(ManifestError) as caught:
        load_topology(str(tmp_path / "m.yaml"))
    said = " ".join(f"{p.path} {p.message}" for p in caught.value.problems)  # the file's path aside
    assert "top-level field(s) is one a manifest has" in said and "$" not in said and "abc123" not in said
    assert "SECRET" not in said and "root" not in said
    (tmp_path / "m.yaml").write_text("name: t\nnodse: {}\n")
    with pytest.raises(ManifestError, match="unknown field 'nodse' \\(did you mean 'nodes'\\?\\)"):
        load_topology(str(tmp_path / "m.yaml"))


def _patterns(schema):
    """Every `pattern` of a schema (x-messages, which reuse the word, left out)."""
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "pattern" and isinstance(value, str):
                yield value
            elif key != "x-messages":
                yield from _patterns(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from _patterns(item)


@pytest.mark.parametrize("name", ["topology", "policy"])
def test_every_schema_pattern_matches_whole_strings(name):
    # `^...$` lets "x\n" through: `$` also matches before a final newline (item 11).
    from toolkit.manifest.schema import load_schema
    patterns = list(_patterns(load_schema(name)))
    assert patterns
    for pattern in patterns:
        assert pattern.startswith("\\A") and pattern.endswith("\\Z"), pattern


def test_a_neighbour_mac_with_a_trailing_newline_is_refused(tmp_path, monkeypatch):
    lines = report(tmp_path, monkeypatch, {"m.yaml": manifest(
        'a:\n  neighbours: [{address: 10.0.0.9, mac: "02:00:00:00:00:09\\n", interface: e0}]\nb:\n')})
    assert_reported(lines, "m.yaml:4: nodes.a.neighbours[0].mac", "invalid MAC address")


def test_the_cli_refuses_hostile_input_with_exit_1_and_no_traceback(tmp_path):
    """The validate command itself, end to end, on a few of the cases above."""
    import subprocess
    import sys
    from pathlib import Path

    netkeel = Path(sys.executable).with_name("netkeel")
    if not netkeel.exists():
        pytest.skip("the netkeel entry point is not installed in this environment")
    cases = {"zero": {"m.yaml": symlink("/dev/zero")}, "fifo": {"m.yaml": fifo},
             "bell": {"m.yaml": manifest("a:\n  description: \"x\x07y\"\nb:\n")},
             "types": rules("{limit: 10, action: {}}"), "passwd": {"m.yaml": "root:x:0:0:root:/root:/bin/bash\n"}}
    for name, files in cases.items():
        directory = tmp_path / name
        directory.mkdir()
        write(directory, files)
        done = subprocess.run([str(netkeel), "validate", "m.yaml"], cwd=directory, capture_output=True,
                              text=True, timeout=60)
        output = done.stdout + done.stderr
        assert done.returncode == 1, (name, output)
        assert "Traceback" not in output, (name, output)
        assert re.search(r"^[mp]\.yaml:[0-9]+: ", output, re.M), (name, output)


def _jump_chain(depth: int) -> str:
    """A policy whose base chain jumps through `depth` regular chains, one after another."""
    lines = ["tables:", "  f:", "    chains:", "      base: {hook: input, rules: [{action: {jump: c1}}]}"]
    lines += [f"      c{i}: {{rules: [{{action: {{{'goto' if i % 2 else 'jump'}: c{i + 1}}}}}]}}"
              for i in range(1, depth)]
    lines.append(f"      c{depth}: {{rules: [{{action: accept}}]}}")
    return "\n".join(lines) + "\n"


def test_a_jump_deeper_than_the_kernels_stack_is_refused_at_the_rule_that_goes_too_deep(tmp_path, monkeypatch):
    """The kernel refuses a chain reached through 16 jumps or gotos from a base
    chain (measured: 15 commit, 16 give "Too many links"); 15 are valid."""
    lines = report(tmp_path, monkeypatch, with_policy(_jump_chain(16)))
    assert lines == ["p.yaml:19: tables.f.chains.c15.rules[0].action: goto to 'c16' goes 16 chains deep from base "
                     "chain 'base' (base -> c1 -> c2 -> c3 -> c4 -> c5 -> c6 -> c7 -> c8 -> c9 -> c10 -> c11 -> "
                     "c12 -> c13 -> c14 -> c15 -> c16): the kernel follows 15 at most"]
    write(tmp_path, with_policy(_jump_chain(15)))
    load_topology("m.yaml")


def test_native_rules_jumping_count_for_the_jump_depth(tmp_path, monkeypatch):
    """A chain of jumps written as native rules passed validate and was refused by
    the kernel at apply ("Too many links")."""
    policy = _jump_chain(16).replace("c15: {rules: [{action: {goto: c16}}]}", 'c15: {rules: [{nft: "jump c16"}]}')
    lines = report(tmp_path, monkeypatch, with_policy(policy))
    assert len(lines) == 1 and lines[0].startswith("p.yaml:19: tables.f.chains.c15.rules[0].nft: jump to 'c16' goes "
                                                   "16 chains deep"), lines


def test_one_mistake_in_a_mapping_is_reported_once(tmp_path, monkeypatch):
    """`action: {jump: x, foo: 1}` was two problems: "too many properties" and the unknown field."""
    lines = report(tmp_path, monkeypatch, rules("{action: {jump: x, foo: 1}}"))
    assert [line for line in lines if "rules[0].action" in line] == [
        "p.yaml:9: tables.f.chains.c.rules[0].action.foo: unknown field 'foo'; expected one of: dnat, goto, jump, "
        "reject, snat"], lines
