"""A snapshot's resources are checked on load, each by its kind (key_arity,
check_key, check_spec in toolkit/kinds): a damaged one is a SnapshotError naming
the file and the resource, never a traceback or a kernel error half way through
a rollback."""

import json

import pytest

from toolkit.kinds import KINDS
from toolkit.state.snapshots import SnapshotError, Snapshots
from toolkit.state.statedir import StateDir

SNAPSHOT = "20240101T000000.000Z-abcd"

GOOD = [
    {"kind": "netns", "key": ["a"], "spec": {}},
    {"kind": "netns", "key": ["b"], "spec": {}},
    {"kind": "link", "key": ["a", "eth0"],
     "spec": {"kind": "veth", "peer": "b/eth0", "mtu": 1500, "state": "up", "mac": "02:00:00:00:00:01",
              "master": ""}},
    {"kind": "link", "key": ["a", "lo"], "spec": {"kind": "loopback", "mtu": 65536, "state": "up"}},
    {"kind": "link", "key": ["a", "wg0"], "spec": {"reason": "a wireguard device"}, "owner": "foreign"},
    {"kind": "link_foreign", "key": ["a", "v9"], "spec": {"reason": "a veth into x", "peer": "x/v9"}},
    {"kind": "addr", "key": ["a", "eth0", "10.0.0.1/24"], "spec": {"secondary": True}},
    {"kind": "addr", "key": ["a", "eth0", "2001:db8::1/64"], "spec": {}},
    {"kind": "route", "key": ["a", "0.0.0.0/0", 0], "spec": {"via": "10.0.0.2", "dev": "eth0"}},
    {"kind": "route", "key": ["a", "192.0.2.0/24", 10], "spec": {"via": "", "type": "blackhole"}},
    {"kind": "neigh", "key": ["a", "eth0", "10.0.0.9"], "spec": {"mac": "02:00:00:00:00:09"}},
    {"kind": "sysctl", "key": ["a", "net.ipv4.ip_forward"], "spec": {"value": "1"}},
    {"kind": "impair", "key": ["a", "eth0"],
     "spec": {"qdisc": "netem", "rate": 10_000_000, "delay_us": 20000, "jitter_us": 100, "loss": 0.5}},
    {"kind": "nft_table", "key": ["a", "inet", "netkeel_f"],
     "spec": {"chain input": '{"hook": "input", "policy": "drop", "prio": 0, "type": "filter"}',
              "rules input": ['{"expr":[{"accept":null}]}'],
              "set allowed": '{"elements": ["\\"10.0.0.1\\""], "flags": [], "type": "ipv4_addr"}',
              "counter hits": '{"bytes": 0}'}},
    {"kind": "nft_foreign", "key": ["a", "ip", "filter"], "spec": {}},
    {"kind": "route", "key": ["a", "10.9.0.0/16 table 100", 0], "owner": "foreign",
     "spec": {"reason": "a route in table 100"}},
    {"kind": "rule", "key": ["a", "inet", 100, "from 10.0.0.0/8"], "owner": "foreign",
     "spec": {"reason": "a policy routing rule"}},
    {"kind": "fdb", "key": ["a", "p1", "02:11:22:33:44:55", 0], "owner": "foreign",
     "spec": {"bridge": "br0", "state": "static", "reason": "a static forwarding entry"}},
]


@pytest.fixture
def state(tmp_path):
    state = StateDir(tmp_path / "state")
    state.ensure()
    state.path("snapshots").mkdir(mode=0o700)
    return state


def write(state, resources, **changes):
    document = {"format": 1, "id": SNAPSHOT, "time": "t", "instance": "lab", "topology": "lab", "prefix": "",
                "namespaces": ["a", "b"], "owned": ["a", "b"], "resources": resources, **changes}
    Snapshots(state).path(SNAPSHOT).write_text(json.dumps(document))


def test_every_kind_sets_its_key_arity():
    assert {k.name: k.key_arity for k in KINDS} == {
        "netns": 1, "link": 2, "sysctl": 2, "addr": 3, "route": 3, "neigh": 3, "impair": 2, "nft_table": 3,
        "rule": 4, "vrrp": 2, "fdb": 4}


def test_a_snapshot_of_every_kind_as_netkeel_writes_it_loads(state):
    write(state, GOOD)
    loaded = Snapshots(state).load(SNAPSHOT)
    assert len(loaded.resources) == len(GOOD)
    sorted(loaded.resources)  # comparable: what the planner does with them


DAMAGED = {
    "unknown kind": ({"kind": "bogus", "key": ["a", "x"], "spec": {}}, "unknown kind \"bogus\""),
    "netns key not a string": ({"kind": "netns", "key": [5], "spec": {}}, "key part 1 must be a non-empty string"),
    "netns key too long": ({"kind": "netns", "key": ["a", "b"], "spec": {}}, "netns keys have 1 part(s), not 2"),
    "mtu not a number": ({"kind": "link", "key": ["a", "eth1"], "spec": {"mtu": "abc"}},
                         'mtu must be an integer, not "abc"'),
    "mtu a bool": ({"kind": "link", "key": ["a", "eth1"], "spec": {"mtu": True}}, "mtu must be an integer"),
    "state a list": ({"kind": "link", "key": ["a", "eth1"], "spec": {"state": ["up"]}},
                     'state must be "up" or "down", not ["up"]'),
    "veth without its peer": ({"kind": "link", "key": ["a", "eth1"], "spec": {"kind": "veth"}},
                              "a veth needs its peer"),
    "short addr key": ({"kind": "addr", "key": ["a", "eth0"], "spec": {}}, "addr keys have 3 part(s), not 2"),
    "addr key not an address": ({"kind": "addr", "key": ["a", "eth0", "ten"], "spec": {}},
                                "key part 3 must be an address with its prefix length"),
    "route metric a string": ({"kind": "route", "key": ["a", "10.1.0.0/16", "x"], "spec": {}},
                              "key part 3 must be a whole number"),
    "route metric a float": ({"kind": "route", "key": ["a", "10.1.0.0/16", 1.0], "spec": {}},
                             "key part 3 must be a whole number"),
    "route prefix with host bits": ({"kind": "route", "key": ["a", "10.1.0.1/16", 0], "spec": {}},
                                    "key part 2 must be a network prefix"),
    "route via not an address": ({"kind": "route", "key": ["a", "10.1.0.0/16", 0], "spec": {"via": "gw"}},
                                 'via must be an IP address or ""'),
    "route type unknown": ({"kind": "route", "key": ["a", "10.1.0.0/16", 0], "spec": {"type": "local"}},
                           "type must be blackhole or unreachable or prohibit or throw"),
    "neigh key not an address": ({"kind": "neigh", "key": ["a", "eth0", "x"], "spec": {}},
                                 "key part 3 must be an IP address"),
    "sysctl value a number": ({"kind": "sysctl", "key": ["a", "net.ipv4.ip_forward"], "spec": {"value": 1}},
                              "value must be a string"),
    "impair loss over 100": ({"kind": "impair", "key": ["a", "eth0"], "spec": {"loss": 150}},
                             "loss must be a percentage"),
    "impair rate negative": ({"kind": "impair", "key": ["a", "eth0"], "spec": {"rate": -1}},
                             "rate must be a whole number"),
    "a spec value that is an object": ({"kind": "link", "key": ["a", "eth1"], "spec": {"mac": {"x": 1}}},
                                       "mac must be a string, number or list"),
    "a spec list of lists": ({"kind": "sysctl", "key": ["a", "net.x"], "spec": {"other": [[1]]}},
                             "other must be a list of strings and numbers"),
    "nft rules not JSON": ({"kind": "nft_table", "key": ["a", "inet", "netkeel_g"],
                            "spec": {"rules input": ["tcp dport 22 accept"]}}, "rules input is not as netkeel"),
    "nft chain not JSON": ({"kind": "nft_table", "key": ["a", "inet", "netkeel_g"],
                            "spec": {"chain input": "{"}}, "chain input is not as netkeel"),
    "nft set without elements": ({"kind": "nft_table", "key": ["a", "inet", "netkeel_g"],
                                  "spec": {"set s": '{"type": "ipv4_addr", "flags": []}'}}, "set s is not as"),
    "nft unknown field": ({"kind": "nft_table", "key": ["a", "inet", "netkeel_g"], "spec": {"bogus": "x"}},
                          '"bogus" is not a field of a table'),
    "unknown owner": ({"kind": "netns", "key": ["a"], "spec": {}, "owner": "nobody"}, 'unknown owner "nobody"'),
    "foreign route with a wrong-typed metric": ({"kind": "route", "key": ["a", "x table 5", "0"], "spec": {},
                                                 "owner": "foreign"}, "key part 3 must be a whole number"),
    "a namespace the snapshot does not list": ({"kind": "link", "key": ["victim", "eth1"], "spec": {}},
                                               "namespace victim, which the snapshot does not list"),
    "a veth into a namespace the snapshot does not list": (
        {"kind": "link", "key": ["a", "eth1"], "spec": {"kind": "veth", "peer": "victim/eth1"}},
        "reaches into) namespace victim"),
    "the same resource twice": ({"kind": "sysctl", "key": ["a", "net.ipv4.ip_forward"], "spec": {"value": "0"}},
                                "repeats resources[11]"),
}


@pytest.mark.parametrize("resource, message", DAMAGED.values(), ids=DAMAGED.keys())
def test_a_damaged_resource_is_a_snapshot_error_naming_the_file_and_the_resource(state, resource, message):
    write(state, GOOD + [resource])
    snapshots = Snapshots(state)
    with pytest.raises(SnapshotError) as caught:
        snapshots.load(SNAPSHOT)
    text = str(caught.value)
    assert f"not a valid netkeel snapshot ({snapshots.path(SNAPSHOT)}): resources[{len(GOOD)}] (" in text
    assert message in text
    assert isinstance(snapshots.listing()[0][1], SnapshotError)


@pytest.mark.parametrize("git", [{"commit": 5}, {"dirty": "yes"}, {"rollback_to": ["x"]}])
def test_a_wrong_typed_git_origin_is_refused(state, git):
    """A rollback copies it into its journal record, which would then be skipped as damaged."""
    write(state, GOOD, git=git)
    with pytest.raises(SnapshotError, match="not a valid netkeel snapshot"):
        Snapshots(state).load(SNAPSHOT)
