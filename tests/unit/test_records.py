"""The records every command makes (rtnl's dump records, errors.Problem,
owners.Claim): plain classes and named tuples rather than dataclasses, so that
a quick answer never imports `dataclasses`. What the dataclasses gave stays:
fields in order with their defaults, equality and a repr by value, ordering
where there was one, pickling."""

import copy
import pickle

import pytest

from toolkit.core.owners import Claim
from toolkit.errors import ManifestError, Problem
from toolkit.kernel import rtnl

RECORDS = [
    rtnl.Link(3, 0x1, "eth0", mtu=1500, mac="aa:bb:cc:dd:ee:ff", port={"learning": True}),
    rtnl.Addr(3, 2, 24, "10.0.0.1", proto=4, valid_lft=30),
    rtnl.Qdisc(3, 0x10000, 0xFFFFFFFF, "tbf", rate=125000, burst=10),
    rtnl.Rule(2, priority=100, table=254, selector="from 10.0.0.0/8"),
    rtnl.Neigh(3, 2, 0x80, "10.0.0.2", mac="aa:bb:cc:dd:ee:01"),
    rtnl.Route(2, 24, 254, 4, 1, dst="10.0.0.0", oif=3, extra={"expires": 5}),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_a_dump_record_pickles_as_its_values_and_compares_by_them(record):
    made = pickle.loads(pickle.dumps(record, pickle.HIGHEST_PROTOCOL))
    assert type(made) is type(record) and made == record and made is not record
    assert copy.deepcopy(record) == record
    assert record.__reduce__() == (type(record), tuple(getattr(record, name) for name in record._fields))
    other = copy.copy(record)
    setattr(other, record._fields[0], 99)  # filled in as attributes are read: mutable
    assert other != record
    with pytest.raises(TypeError):
        hash(record)  # mutable, so unhashable (as the dataclass was)
    with pytest.raises(AttributeError):
        record.unknown = 1  # slots


def test_a_dump_records_defaults_and_repr():
    link = rtnl.Link(index=1, flags=0)
    assert (link.ifname, link.mtu, link.kind, link.port) == ("", None, None, None)
    assert repr(rtnl.Rule(10)) == "Rule(family=10, priority=0, table=0, action=0, proto=0, selector='')"
    a, b = rtnl.Route(2, 0, 254, 4, 1), rtnl.Route(2, 0, 254, 4, 1)
    a.extra["pref"] = 1
    assert b.extra == {}  # each route its own dict
    assert rtnl.Link(1, 0) != rtnl.Addr(1, 0, 0, "")


def test_problems_sort_by_file_line_path_message_and_say_where():
    problems = [Problem("b.yaml", 1, "", "x"), Problem("a.yaml", 9, "nodes.n", "y"), Problem("a.yaml", 2, "z", "w")]
    error = ManifestError(problems)
    assert [str(p) for p in error.problems] == ["a.yaml:2: z: w", "a.yaml:9: nodes.n: y", "b.yaml:1: x"]
    p = Problem(file="f", line=3, path="p", message="m")
    assert p == Problem("f", 3, "p", "m") and hash(p) == hash(Problem("f", 3, "p", "m"))
    assert repr(p) == "Problem(file='f', line=3, path='p', message='m')"
    assert pickle.loads(pickle.dumps(p)) == p
    with pytest.raises(AttributeError):
        p.line = 4


def test_a_claim_has_its_defaults_and_is_immutable():
    def matches(resource):
        return True

    claim = Claim("fault:x", "link", matches)
    assert (claim.mask, claim.text, claim.targets, claim.supplies, claim.supplies_while) == ((), "", (), (), None)
    assert claim == Claim(owner="fault:x", kind="link", matches=matches)
    with pytest.raises(AttributeError):
        claim.text = "y"


def test_a_record_subclass_keeps_its_bases_fields():
    class Tagged(rtnl.Link):
        __slots__ = ("tag",)

        def __init__(self, *args, tag=None, **kwargs):
            super().__init__(*args, **kwargs)
            self.tag = tag

    class Same(rtnl.Link):
        __slots__ = ()

    a, b = Tagged(1, 0, "x", tag="t"), Tagged(2, 0, "y", tag="t")
    assert a != b and Tagged._fields == rtnl.Link._fields + ("tag",)
    assert repr(a).startswith("Tagged(index=1, flags=0, ifname='x'") and repr(a).endswith("tag='t')")
    made = copy.copy(Same(1, 0))  # (copied by __reduce__, as pickled: a local class does not pickle)
    assert type(made) is Same and made == Same(1, 0) and made != rtnl.Link(1, 0)


def test_a_manifest_errors_json_names_each_problems_fields():
    from toolkit.report.machine import dumps, error_document

    doc = error_document("validate", ManifestError([Problem("t.yaml", 3, "nodes.a", "bad")]))
    assert '"problems": [\n      {\n        "file": "t.yaml"' in dumps(doc)
    assert doc["error"]["problems"] == [{"file": "t.yaml", "line": 3, "path": "nodes.a", "message": "bad"}]
