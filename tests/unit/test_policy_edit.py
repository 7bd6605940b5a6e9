"""An edited policy file read rule by rule (manifest/policy_edit.py) gives
exactly what reading it whole gives, or declines: checked against the whole
read over many edits, random and chosen."""

import random

import pytest

from toolkit.manifest.policy import load_policy
from toolkit.manifest.policy_edit import splice

FILE = "policies/edited.yaml"

POLICY = """\
# A policy written in both styles, with comments and blank lines.
tables:
  filter:
    family: inet
    sets:
      blocked:
        type: ipv4_addr
        elements: [192.0.2.1, 192.0.2.2]
      ports:
        type: inet_service
        elements:
          - 22
          - 80   # web
          - 443
      nets:
        type: ipv4_addr
        flags: [interval]
        elements:
          - 10.0.0.0/8
          - 192.168.0.0/16
    chains:
      input:
        hook: input
        policy: drop
        rules:
          - {ct_state: [established, related], action: accept}
          - {saddr: "@blocked", action: drop}   # the block list

          - protocol: tcp
            dport: 22
            counter: true
            action: accept
          # between items
          - {protocol: udp, dport: [53, 5353], action: accept, comment: "dns"}
          - action:
              jump: audit
          - protocol: tcp
            dport: 80
            action: accept
      audit:
        rules:
        - {counter: true, action: return}
        - {saddr: 10.0.0.0/8, action: drop}
      output:
        hook: output
        rules:
          - {daddr: 198.51.100.7, action: drop}
  nat:
    family: ip
    chains:
      post:
        type: nat
        hook: postrouting
        rules:
          - {oif: eth0, action: masquerade}
          - {saddr: 10.1.0.0/16, action: masquerade}
"""


def whole(text):
    load, problems = load_policy(text, FILE)
    return load, problems


def check_edit(old_text, new_text):
    """The edit read rule by rule equals the whole read; returns whether it was."""
    old, problems = whole(old_text)
    assert problems == []
    spliced = splice(old, new_text, FILE)
    full, full_problems = whole(new_text)
    if spliced is None:
        return False
    assert full_problems == [], f"a rule-by-rule read passed what the whole read refuses: {full_problems}"
    assert spliced.tables == full.tables
    assert spliced.spans == full.spans
    assert spliced.repeated == full.repeated
    assert spliced.text == new_text
    return True


def test_the_policy_reads_whole_with_spans_for_every_rule():
    load, problems = whole(POLICY)
    assert problems == []
    assert len([s for s in load.spans if s[0] == "rules"]) == 11
    assert len([s for s in load.spans if s[0] == "elements"]) == 5


@pytest.mark.parametrize("old, new", [
    ("dport: 22", "dport: 2222"),                                        # a block rule's value
    ("dport: 22\n", "dport: 22\n            comment: ssh\n"),            # a line added within it
    ("            counter: true\n", ""),                                 # a line taken out of it
    ('"dns"}', '"dns", counter: true}'),                                 # a flow rule
    ("{daddr: 198.51.100.7, action: drop}", "{daddr: 198.51.100.8, action: accept}"),  # the last, another chain
    ("- {saddr: 10.1.0.0/16", "- {saddr: 10.2.0.0/16"),                  # the last rule of the file
    ("# between items", "# between the items, said again"),             # a comment inside a span
    ("{saddr: 10.0.0.0/8, action: drop}", "{saddr: 10.0.0.0/8, action: drop}  # ours"),
    # set elements changed, added and removed
    ("          - 80   # web", "          - 8080   # web"),
    ("          - 443\n", "          - 443\n          - 853\n"),
    ("          - 22\n", ""),
    ("          - 22\n          - 80   # web\n", "          - 21\n"),
    # rules added and removed: the later rules' indexes move
    ("          # between items\n", "          # between items\n          - {protocol: udp, dport: 123, action: accept}\n"),
    ("        rules:\n          - {ct_state", "        rules:\n          - {daddr: 192.0.2.9, action: drop}\n          - {ct_state"),
    ("        - {saddr: 10.0.0.0/8, action: drop}\n", "        - {saddr: 10.0.0.0/8, action: drop}\n        - {log: true, action: drop}\n"),
    ("          - protocol: tcp\n            dport: 22\n            counter: true\n            action: accept\n", ""),
    ('          - {protocol: udp, dport: [53, 5353], action: accept, comment: "dns"}\n', ""),
    ("          - {daddr: 198.51.100.7, action: drop}\n", ""),              # a chain left with no rules
    ("          - {ct_state: [established, related], action: accept}\n          - {saddr",
     "          - {ct_state: [established], action: accept}\n          - {ct_state: [related], action: accept}\n"
     "          - {saddr"),                                                   # one rule made two
])
def test_edits_within_one_rule_read_alone_as_the_whole_read(old, new):
    assert old in POLICY
    assert check_edit(POLICY, POLICY.replace(old, new, 1))


@pytest.mark.parametrize("old, new", [
    ("dport: 22", "dport: 70000"),                      # out of range: the whole read says so
    ("dport: 22", "dport: [22"),                        # YAML broken
    ("dport: 22", "dport: 22\n          - {action: drop}"),  # a new item: not an edit of one
    ("jump: audit", "jump: output"),                # a jump: the loop checks are the table's
    ("- {counter: true, action: return}", "- {action: jump, target: audit}"),  # a jump made
    ('- {oif: eth0, action: masquerade}', '- {nft: "oifname eth0 masquerade"}'),  # native
    ("dport: 22", "dport: &port 22"),                   # an anchor
    ("policy: drop", "policy: accept"),                 # outside any rule
    ("192.0.2.2]", "192.0.2.3]"),                       # a set
    ('"dns"}', '"dns\n             "}'),                # a scalar over two lines
    ("dport: 22", "dport: 22.0"),                       # a float: the schema's slow path
    ("            counter: true", "\tcounter: true"),   # a tab
    ("          - 10.0.0.0/8", "          - 10.0.0.0/9"),   # an interval set: overlaps are the set's
    ("          - 443", "          - 70000"),              # not a port
    ("          - 443", "          - web"),                # not a port either
    ("dport: 80\n", "dport: 80\n  other: 1\n"),         # a line that ends the item differently
])
def test_edits_that_are_not_one_plain_rule_are_declined(old, new):
    assert old in POLICY
    edited = POLICY.replace(old, new, 1)
    old_load, _ = whole(POLICY)
    assert splice(old_load, edited, FILE) is None


BREAKS = ["\u2028", "\u2029", "\x85", "\r"]  # line breaks to YAML, not to str.split("\n")


@pytest.mark.parametrize("mark", BREAKS)
def test_a_text_yaml_counts_other_lines_in_is_never_read_rule_by_rule(mark):
    """Found by review: with such a break above a chain, a line YAML gives is
    not an index into the split text, and an edit replaced another rule."""
    old_text = POLICY.replace("# between items", f"# between{mark}# items")
    old, problems = whole(old_text)
    assert old.spans == () or problems
    if not problems:
        assert splice(old, old_text.replace("dport: 22", "dport: 2222"), FILE) is None
    # nor when the edit brings one in
    fine, _ = whole(POLICY)
    assert splice(fine, POLICY.replace('"dns"}', f'"dns"}}  # a{mark}# b'), FILE) is None


def test_a_crlf_file_still_reads_rule_by_rule():
    crlf = POLICY.replace("\n", "\r\n")
    assert check_edit(crlf, crlf.replace("dport: 22", "dport: 2222"))


def test_a_directive_before_the_document_is_never_read_rule_by_rule():
    tagged = "%TAG !! tag:example.com,2000:\n---\n" + POLICY
    old, problems = whole(tagged)
    assert problems == [] and old.spans == ()
    assert splice(old, tagged.replace("dport: 22", "dport: !!int 22"), FILE) is None


def test_an_item_rewritten_to_begin_below_its_dash_is_read_whole():
    edited = POLICY.replace("- {protocol: tcp, dport: 80", "-\n            {protocol: tcp, dport: 80")
    old, _ = whole(POLICY)
    assert splice(old, edited, FILE) is None


def test_an_element_written_twice_makes_the_set_read_whole_from_then_on():
    twice = POLICY.replace("          - 443\n", "          - 443\n          - 22\n")
    old, _ = whole(POLICY)
    spliced = splice(old, twice, FILE)
    full, _ = whole(twice)
    assert spliced is not None and spliced.tables == full.tables and spliced.repeated == full.repeated
    assert ("filter", "ports") in full.repeated
    # taking one of the two out leaves the other: only the whole read knows there were two
    assert splice(spliced, twice.replace("          - 22\n", "", 1), FILE) is None


def test_a_rule_that_moves_later_lines_moves_their_sources():
    edited = POLICY.replace("dport: 22\n", "dport: 22\n            comment: one\n            log: true\n", 1)
    assert check_edit(POLICY, edited)
    full, _ = whole(edited)
    assert full.tables[1].source == f"{FILE}:{POLICY.splitlines().index('  nat:') + 3}"


def test_an_unchanged_text_is_no_edit():
    old, _ = whole(POLICY)
    assert splice(old, POLICY, FILE) is None


def _mutations(rng, lines):
    """One random edit of a line: a value changed, a character dropped or
    added, indentation moved, a line inserted, removed, doubled or swapped
    with the next."""
    i = rng.randrange(len(lines))
    line = lines[i]
    choice = rng.randrange(9)
    out = list(lines)
    if choice == 0 and line:
        j = rng.randrange(len(line))
        out[i] = line[:j] + line[j + 1:]
    elif choice == 1 and line:
        j = rng.randrange(len(line))
        out[i] = line[:j] + rng.choice("0123456789 :,{}[]-#'\"&*!|>abz%\r\x85\u2028\t") + line[j:]
    elif choice == 2:
        out[i] = " " + line if rng.random() < 0.5 else line[1:] if line.startswith(" ") else line
    elif choice == 3:
        out.insert(i, rng.choice(["", "            # note", "            counter: true", "          - {action: drop}",
                                  "            dport: 8080", "      extra:", "          - action: accept"]))
    elif choice == 4:
        del out[i]
    elif choice == 5:
        out.insert(i, line)  # a line twice: an item doubled, a key repeated
    elif choice == 6 and i + 1 < len(out):
        out[i], out[i + 1] = out[i + 1], out[i]
    else:
        for digit in "0123456789":
            if digit in line:
                out[i] = line.replace(digit, str((int(digit) + 1) % 10), 1)
                break
    return out


def test_random_edits_read_rule_by_rule_equal_the_whole_read():
    """Each of 2,500 random edits (one or two at once) is read rule by rule
    exactly as the whole read reads it, or declined."""
    rng = random.Random(20261201)
    lines = POLICY.split("\n")
    read_alone = 0
    for _ in range(2500):
        edited_lines = _mutations(rng, lines)
        if rng.random() < 0.3:
            edited_lines = _mutations(rng, edited_lines)
        edited = "\n".join(edited_lines)
        if edited == POLICY:
            continue
        read_alone += check_edit(POLICY, edited)
    assert read_alone > 100  # the path is taken, not only declined


SHARED = """\
tables:
  filter:
    sets:
      a:
        type: ipv4_addr
        elements: &e
          - 10.0.0.1
          - 10.0.0.2
      b:
        type: ipv4_addr
        elements: *e
    chains:
      input:
        hook: input
        rules: &r
          - {saddr: "@a", action: drop}
          - {protocol: tcp, dport: 22, action: accept}
      output:
        hook: output
        rules: *r
"""


@pytest.mark.parametrize("old, new", [
    ("- 10.0.0.2", "- 10.0.0.3"),     # an element of two sets
    ("dport: 22", "dport: 23"),       # a rule of two chains
])
def test_a_document_where_items_stand_in_two_places_is_never_read_by_items(old, new):
    """Found by review: an element edited in one set stayed as it was in the set
    aliasing it (a block list dropping the wrong address)."""
    load, problems = whole(SHARED)
    assert problems == [] and load.spans == ()
    assert splice(load, SHARED.replace(old, new), FILE) is None


def test_a_chain_taking_rules_by_a_merge_key_is_never_read_by_items():
    merged = SHARED.replace("rules: *r", "rules: *r\n      audit: &c\n        rules:\n          - {action: drop}\n"
                                         "      again:\n        <<: *c")
    load, problems = whole(merged)
    assert problems == [] and load.spans == ()


@pytest.mark.parametrize("scalar", [">-", "|", "|+", ">+"])
def test_lines_a_block_scalar_before_them_takes_are_read_with_it(scalar):
    """Found by review: comment and blank lines before an edited item are the
    text of a block scalar ending the item before it, if indented so."""
    old_text = POLICY.replace("- {protocol: tcp, dport: 80, action: accept}",
                              f"- protocol: tcp\n            dport: 80\n            action: accept\n"
                              f"            comment: {scalar}\n              hello")
    old, problems = whole(old_text)
    assert problems == []
    after = "          - {protocol: tcp, dport: 81, action: accept}\n"  # an item added after it
    for inserted in ("              # world\n", "\n", "\n              # world\n", "    # x\n"):
        edited = old_text.replace("              hello\n", "              hello\n" + inserted + after, 1)
        spliced = splice(old, edited, FILE)
        full, full_problems = whole(edited)
        assert spliced is None or (not full_problems and spliced.tables == full.tables and spliced.spans == full.spans)


def test_a_run_of_thousands_of_items_removed_reads_as_the_whole_read():
    many = POLICY.replace("          - 443\n", "".join(f"          - {p}\n" for p in range(1000, 6000)))
    assert check_edit(many, POLICY)


def test_lines_agree_is_its_patterns_said_at_c_speed():
    """lines_agree looks for YAML's other line breaks (a lone CR, NEL, U+2028,
    U+2029) and a line starting with % by plain searches where it can: the
    same answer as the patterns, on random texts of the characters that matter."""
    import random
    import re

    from toolkit.manifest.item_lines import lines_agree

    breaks, directive = re.compile("\r(?!\n)|[\x85\u2028\u2029]"), re.compile(r"^%", re.MULTILINE)
    pieces = ["a", "\n", "\r", "\r\n", "\n\r", "%", "\n%", "%%", "\x85", "\u2028", "\u2029", "é", " ", "-", "#"]
    rng = random.Random(22)
    for _ in range(20_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 10)))
        assert lines_agree(text) == (breaks.search(text) is None and directive.search(text) is None), repr(text)
