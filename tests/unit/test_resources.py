"""Resource: construction, field access, labels, descriptions, comparison."""

import pytest

from toolkit.core.resource import Resource, changed_fields
from toolkit.kinds import NAMES as KINDS

VETH = Resource.make("link", ("ns_client1", "veth_c1"), kind="veth", peer="ns_server/veth_srv_c1",
                     mtu=1500, state="up", master="")


# -- construction and field access ----------------------------------------------

def test_make_drops_none_fields_and_sorts_spec():
    r = Resource.make("link", ["ns", "eth0"], state="up", mac=None, kind="veth", mtu=1500)
    assert r.key == ("ns", "eth0")  # any sequence becomes a tuple
    assert r.spec == (("kind", "veth"), ("mtu", 1500), ("state", "up"))


def test_make_keeps_falsy_values_that_are_not_none():
    r = Resource.make("route", ("ns", "0.0.0.0/0", 0), via="")
    assert r.spec == (("via", ""),)


def test_equal_specs_given_in_any_order_are_equal():
    assert Resource.make("link", ("n", "a"), state="up", kind="veth") == \
        Resource.make("link", ("n", "a"), kind="veth", state="up")


def test_ns_and_ident():
    assert VETH.ns == "ns_client1"
    assert VETH.ident == ("link", ("ns_client1", "veth_c1"))


def test_get_and_fields():
    assert VETH.get("mtu") == 1500
    assert VETH.get("master") == ""
    assert VETH.get("mac") is None
    assert VETH.get("mac", "-") == "-"
    assert VETH.fields() == {"kind": "veth", "peer": "ns_server/veth_srv_c1", "mtu": 1500,
                             "state": "up", "master": ""}


def test_with_fields_overrides_adds_and_drops_none():
    changed = VETH.with_fields(mtu=9000, mac="aa:bb:cc:dd:ee:ff", peer=None)
    assert changed.fields() == {"kind": "veth", "mtu": 9000, "mac": "aa:bb:cc:dd:ee:ff",
                                "state": "up", "master": ""}
    assert changed.key == VETH.key
    assert VETH.get("mtu") == 1500  # the original is untouched (frozen)


# -- identity: what a dataclass(frozen, order, owner not compared) gave -----------

def test_owner_is_not_part_of_equality_hash_or_order():
    mine, theirs = VETH, VETH.owned_by("foreign")
    assert mine == theirs and hash(mine) == hash(theirs) and not mine < theirs and mine <= theirs
    assert {mine, theirs} == {mine} and theirs.owner == "foreign"
    assert VETH != VETH.with_fields(mtu=9000)


def test_resources_sort_by_kind_then_key_then_spec():
    a = Resource.make("addr", ("n", "eth0", "10.0.0.1/24"))
    b = Resource.make("link", ("m", "eth0"), mtu=1500)
    c = Resource.make("link", ("n", "eth0"), mtu=1400)
    d = Resource.make("link", ("n", "eth0"), mtu=1500)
    assert sorted([d, c, b, a]) == [a, b, c, d]
    assert max([a, d, b]) is d and d > c and d >= c and c <= d


def test_a_resource_is_never_equal_to_its_fields_as_a_tuple_nor_ordered_with_one():
    assert VETH != (VETH.kind, VETH.key, VETH.spec, VETH.owner)
    with pytest.raises(TypeError):
        VETH < ("link",)


def test_a_resource_of_a_subclass_is_another_resource():
    class Tagged(Resource):
        __slots__ = ()

    tagged = Tagged(VETH.kind, VETH.key, VETH.spec)
    assert tagged != VETH and VETH != tagged and sorted([tagged, Tagged("a", ())])[0].kind == "a"
    import copy

    # (copied by __reduce__, as pickled: a local class does not pickle)
    assert type(copy.copy(tagged)) is Tagged and repr(tagged).startswith("Tagged(kind='link'")


def test_a_resource_cannot_be_changed_in_place():
    with pytest.raises(AttributeError):
        VETH.spec = ()
    with pytest.raises(AttributeError):
        del VETH.owner
    with pytest.raises(AttributeError):
        VETH.extra = 1  # slots: no new attributes either


def test_a_resource_pickles_and_copies_with_its_owner():
    import copy
    import pickle

    theirs = VETH.owned_by("foreign")
    for made in (pickle.loads(pickle.dumps(theirs, pickle.HIGHEST_PROTOCOL)), copy.copy(theirs),
                 copy.deepcopy(theirs)):
        assert (made, made.owner, type(made)) == (theirs, "foreign", Resource)
    assert repr(theirs) == (f"Resource(kind='link', key=('ns_client1', 'veth_c1'), spec={VETH.spec!r}, "
                            "owner='foreign')")


def test_kinds_in_creation_order():
    assert KINDS == ("netns", "link", "sysctl", "addr", "route", "rule", "neigh", "fdb", "impair", "nft_table", "vrrp")


# -- label ------------------------------------------------------------------------

@pytest.mark.parametrize("resource, label", [
    (Resource.make("netns", ("ns_server",)), "namespace"),
    (VETH, "link veth_c1"),
    (Resource.make("addr", ("ns_server", "veth_srv_c1", "10.0.1.1/24")), "addr 10.0.1.1/24 on veth_srv_c1"),
    (Resource.make("sysctl", ("ns_server", "net.ipv4.ip_forward"), value="1"), "sysctl net.ipv4.ip_forward"),
    (Resource.make("route", ("n", "0.0.0.0/0", 0)), "route default"),
    (Resource.make("route", ("n", "0.0.0.0/0", 100)), "route default metric 100"),
    (Resource.make("route", ("n", "10.9.0.0/16", 0)), "route 10.9.0.0/16"),
    (Resource.make("route", ("n", "10.9.0.0/16", 1024)), "route 10.9.0.0/16 metric 1024"),
    (Resource.make("route", ("n", "::/0", 1024)), "route default"),
    (Resource.make("route", ("n", "::/0", 0)), "route default metric 0"),
    (Resource.make("route", ("n", "2001:db8::/64", 1024)), "route 2001:db8::/64"),
    (Resource.make("route", ("n", "2001:db8::/64", 100)), "route 2001:db8::/64 metric 100"),
    (Resource.make("qdisc", ("n", "eth0", 1)), "qdisc eth0 1"),
])
def test_label(resource, label):
    assert resource.label == label


# -- describe ---------------------------------------------------------------------

@pytest.mark.parametrize("resource, text", [
    (VETH, "veth peer ns_server/veth_srv_c1 mtu 1500 up"),
    (Resource.make("link", ("sw", "sw_h1"), kind="veth", peer="h1/eth0", master="br0", mtu=1500,
                   mac="aa:bb:cc:dd:ee:ff", state="down"),
     "veth peer h1/eth0 master br0 mtu 1500 mac aa:bb:cc:dd:ee:ff down"),
    (Resource.make("link", ("sw", "br0"), kind="bridge", master="", mtu=1500, state="up"), "bridge mtu 1500 up"),
    (Resource.make("link", ("n", "lo"), kind="loopback", state="up"), "loopback up"),
    (Resource.make("route", ("n", "0.0.0.0/0", 0), via="10.0.1.1", dev="veth_c1"), "via 10.0.1.1 dev veth_c1"),
    (Resource.make("route", ("n", "10.9.0.0/16", 0), via="", dev="br0"), "dev br0"),
    (Resource.make("route", ("n", "0.0.0.0/0", 0), via="10.0.1.1"), "via 10.0.1.1"),
    (Resource.make("sysctl", ("n", "net.ipv4.ip_forward"), value="1"), "= 1"),
    (Resource.make("netns", ("n",)), ""),
    (Resource.make("addr", ("n", "eth0", "10.0.0.1/24")), ""),
])
def test_describe(resource, text):
    assert resource.describe() == text


# -- changed_fields ---------------------------------------------------------------

def test_changed_fields_ignores_fields_only_live_has():
    desired = Resource.make("link", ("n", "lo"), kind="loopback", state="up")
    live = Resource.make("link", ("n", "lo"), kind="loopback", state="up", mtu=65536,
                         mac="00:00:00:00:00:00", master="")
    assert changed_fields(desired, live) == ()


def test_changed_fields_lists_field_desired_live_in_spec_order():
    live = VETH.with_fields(mtu=9000, state="down", mac="aa:bb:cc:dd:ee:ff")
    assert changed_fields(VETH, live) == (("mtu", 1500, 9000), ("state", "up", "down"))


def test_changed_fields_reports_a_field_live_lacks_as_none():
    live = VETH.with_fields(master=None)
    assert changed_fields(VETH, live) == (("master", "", None),)
