"""What an interruption warning advises, per interrupted op: each command and
what it would do (after a destroy, `apply` would rebuild the lab)."""

from toolkit.state.recovery import advice


def start(op, **changes):
    return {"event": "start", "tx": "x", "op": op, "instance": "lab@t_", "snapshot": "S0",
            "manifests": [{"path": "lab.yaml", "sha256": "00"}], **changes}


def test_an_interrupted_apply_is_finished_by_apply_or_undone_by_rollback():
    assert advice(start("apply")) == [
        ("apply lab.yaml --ns-prefix t_", "finishes it: converges to the manifest from whatever half state is left"),
        ("rollback --snapshot S0", "returns to the state before it")]


def test_an_interrupted_destroy_is_finished_by_destroy_not_apply():
    assert advice(start("destroy")) == [("destroy lab.yaml --ns-prefix t_", "finishes removing the lab"),
                                        ("rollback --snapshot S0", "rebuilds what was there before it")]


def test_an_interrupted_rollback_is_finished_by_rolling_back_to_its_target():
    assert advice(start("rollback", git={"rollback_to": "S9"})) == [
        ("rollback --snapshot S9", "finishes it: returns to snapshot S9"),
        ("rollback --snapshot S0", "returns to the state before the rollback")]


def test_without_a_prefix_or_manifest_the_advice_still_reads():
    assert advice(start("apply", instance="lab", manifests=[]))[0][0] == "apply FILE"
    assert advice({"op": "fault", "instance": "lab"}) == []


def test_a_state_directory_other_than_the_default_is_named_in_every_command():
    advised = advice(start("apply"), "/tmp/lab state")
    assert [command for command, _ in advised] == [
        "apply lab.yaml --ns-prefix t_ --state-dir '/tmp/lab state'",
        "rollback --snapshot S0 --state-dir '/tmp/lab state'"]


def test_words_from_the_journal_are_quoted_for_the_shell():
    advised = advice(start("apply", manifests=[{"path": "my lab.yaml"}], snapshot="S0;rm -rf /"))
    assert [command for command, _ in advised] == ["apply 'my lab.yaml' --ns-prefix t_",
                                                   "rollback --snapshot 'S0;rm -rf /'"]
