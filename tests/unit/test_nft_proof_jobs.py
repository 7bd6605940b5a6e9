"""Which tables a plan proves in a throwaway namespace (kinds/nft_table.proof_jobs):
those its apply would make whole, each content once, with the node's interfaces."""

import json
from pathlib import Path

from toolkit.core.action import CREATE, DELETE, MODIFY, Action, Plan
from toolkit.kinds import compile_all
from toolkit.kinds.nft_table import proof_jobs
from toolkit.manifest.topology import load_topology

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"
DESIRED = compile_all(load_topology(TOPOLOGIES / "two-clients.yaml"))
TABLES = sorted((r for r in DESIRED if r.kind == "nft_table"), key=lambda r: r.key)


def plan_of(*actions):
    return Plan(tuple(actions))


def test_new_tables_are_proven_with_the_nodes_interfaces():
    jobs = proof_jobs(plan_of(*(Action(CREATE, desired=t) for t in TABLES)), DESIRED)
    assert [(ns, devices) for ns, devices, _ in jobs] == [("ns_server", ["veth_srv_c1", "veth_srv_c2"])]
    (_, _, actions), = jobs
    assert [(a.op, a.desired) for a in actions] == [(CREATE, t) for t in TABLES]


def test_the_same_content_in_another_namespace_is_proven_once():
    moved = [type(t)(t.kind, ("ns_other", *t.key[1:]), t.spec, t.owner) for t in TABLES]
    jobs = proof_jobs(plan_of(*(Action(CREATE, desired=t) for t in TABLES + moved)), DESIRED)
    assert [ns for ns, _, _ in jobs] == ["ns_other"]  # (sorted: the first namespace proves it)


def test_a_rule_by_rule_change_is_not_proven_the_echo_verifies_it():
    filter_table = TABLES[0]
    rules = dict(filter_table.spec)
    chain = next(k for k in rules if k.startswith("rules ") and len(rules[k]) > 1)
    kept = rules[chain][:-1]
    handles = tuple((c[6:], rule, 10 + i) for c in sorted(rules) if c.startswith("rules ")
                    for i, rule in enumerate(kept if c == chain else rules[c]))
    live = filter_table.with_fields(**{chain: kept}, _handles=handles)
    assert proof_jobs(plan_of(Action(MODIFY, desired=filter_table, live=live)), DESIRED) == []


def test_a_deleted_table_alone_proves_nothing():
    assert proof_jobs(plan_of(Action(DELETE, live=TABLES[0])), DESIRED) == []


def test_a_flagged_table_or_one_changing_by_itself_is_not_proven():
    dormant = TABLES[0].with_fields(**{"table flags": "dormant"})
    assert proof_jobs(plan_of(Action(CREATE, desired=dormant)), DESIRED) == []
    textless = TABLES[0].with_fields(_nft=None)
    assert proof_jobs(plan_of(Action(CREATE, desired=textless)), DESIRED) == []


# -- what a plan does with the child's answers (kernel/nftables.prove_in_scratch) ------

class FakeMemo:
    trust = True

    def __init__(self, proven=(), refuted=()):
        self.proven_keys, self.refuted_keys = set(proven), set(refuted)
        self.recipes = {}

    def proven(self, table):
        return table.key in self.proven_keys

    def refuted(self, table):
        return table.key in self.refuted_keys

    def prove(self, tables):
        self.proven_keys |= {t.key for t in tables}

    def refute(self, tables):
        self.refuted_keys |= {t.key for t in tables}

    def keep_recipe(self, table, made):
        self.recipes[table.key] = made


class FakeForms:
    def __init__(self):
        self.merged = []

    def table(self, ns, family, name):
        merged = self.merged

        class Table:
            def merge(self, noted):
                merged.append((name, noted))
        return Table()


class FakeKernel:
    def __init__(self, memo):
        self.nft_memo = memo
        self.nft_forms = FakeForms()

    def log(self, ns, text):
        pass


def sized(name, rules):
    base = TABLES[0]
    chain = next(k for k, _ in base.spec if k.startswith("rules "))
    return type(base)(base.kind, ("ns_x", "inet", name),
                      tuple((k, tuple(f'{{"expr":[{{"counter":{i}}}]}}' for i in range(rules)) if k == chain else v)
                            for k, v in base.spec), base.owner)


def test_the_answers_prove_refute_or_warn_and_a_budget_bounds_the_work(monkeypatch):
    from toolkit.kernel import nft_proof, nftables

    budget = nftables.PROOF_BUDGET
    big, bigger, known, failed, odd, refused = (sized("big", budget * 3 // 5), sized("bigger", budget * 2 // 5 + 10),
                                                sized("known", 3), sized("failed", 4), sized("odd", 5),
                                                sized("refused", 6))
    sent = []

    def prove(todo):
        sent.extend(a.key for _, _, actions in todo for a in actions)
        return {big.key: {"proven": True, "forms": {"f" * 32: ["counter", [8]]}, "recipe": "cmVjaXBl"},
                odd.key: {"proven": False, "forms": {"e" * 32: ["never", []]}, "recipe": "bm90IHByb3Zlbg=="},
                refused.key: {"refused": "no such chain"}}

    monkeypatch.setattr(nft_proof, "prove", prove)
    memo = FakeMemo(proven=[known.key], refuted=[failed.key])
    jobs = [("ns_x", [], [Action(CREATE, desired=t) for t in (big, bigger, known, failed, odd, refused)])]
    kernel = FakeKernel(memo)
    assert nftables.prove_in_scratch(kernel, jobs) == [("ns_x", "no such chain")]
    assert kernel.nft_forms.merged == [("big", {"f" * 32: ["counter", [8]]})]  # the forms of what was proven alone
    assert sent == [big.key, odd.key, refused.key]  # bigger: past the budget; known, failed: not again
    assert memo.recipes == {big.key: b"recipe"}  # the recipe of what was proven alone
    assert memo.proven_keys == {known.key, big.key}
    assert memo.refuted_keys == {failed.key, odd.key}  # a refusal is said again by the next plan


def test_set_elements_count_in_the_budget_as_rules_do():
    from toolkit.kernel.nftables import PROOF_BUDGET, _items

    base = sized("elements", 2)
    name, spec = next((k, v) for k, v in base.spec if k.startswith("set "))
    elements = [f'"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"' for i in range(PROOF_BUDGET)]
    big_set = base.with_fields(**{name: json.dumps({**json.loads(spec), "elements": elements})})
    assert _items(big_set) - _items(base) == PROOF_BUDGET - len(json.loads(spec)["elements"])
