"""Experiment probes without a kernel: samples reduced to metrics and checked
against bounds, the agent's stale/out-of-order accounting driven over a local
socket pair, and the specs the runner hands the agent."""

from __future__ import annotations

import json
import re
import socket
import time

import pytest

from toolkit.experiment import agent
from toolkit.experiment.measure import check, measure, passed, percentile, within
from toolkit.experiment.probes import service_spec, spec_of
from toolkit.model.experiment import METRICS, PROBE_KINDS, Bound, Probe, Service


def probe(kind: str, *bounds: Bound, **fields) -> Probe:
    return Probe(name="p", kind=kind, node="a", expect=bounds, **fields)


def answered(seq: int, rtt: float, **flags) -> dict:
    return {"t": 100.0 + seq, "seq": seq, "ok": True, "rtt_ms": rtt, **flags}


def lost(seq: int, **flags) -> dict:
    return {"t": 100.0 + seq, "seq": seq, "ok": False, "rtt_ms": None, **flags}


# --- percentiles --------------------------------------------------------------

@pytest.mark.parametrize("p, expected", [(0, 1), (10, 1), (11, 2), (50, 5), (90, 9), (91, 10), (99, 10), (100, 10)])
def test_percentiles_are_nearest_rank(p, expected):
    assert percentile([7, 3, 10, 1, 5, 2, 9, 4, 8, 6], p) == expected


def test_a_percentile_of_one_value_is_that_value_and_of_none_is_none():
    assert percentile([4.5], 99) == 4.5
    assert percentile([], 50) is None


# --- request probes -------------------------------------------------------------

def test_every_kind_reports_exactly_its_metrics_and_the_sample_count():
    for kind in PROBE_KINDS:
        assert set(measure(probe(kind), [])) == set(METRICS[kind]) | {"samples"}, kind


def test_icmp_loss_is_a_percentage_and_times_count_answered_requests_only():
    samples = [answered(0, 1.0), lost(1), answered(2, 3.0), answered(3, 2.0)]
    measured = measure(probe("icmp"), samples)
    assert measured == {"loss": 25.0, "rtt_p50": 2.0, "rtt_p90": 3.0, "rtt_p99": 3.0, "rtt_max": 3.0,
                        "samples": 4}


def test_nothing_answered_is_full_loss_and_no_times():
    measured = measure(probe("icmp"), [lost(0), lost(1)])
    assert measured["loss"] == 100.0
    assert measured["rtt_p50"] is None and measured["rtt_max"] is None


def test_no_requests_at_all_measure_nothing():
    measured = measure(probe("udp"), [])
    assert measured["samples"] == 0
    assert all(measured[metric] is None for metric in METRICS["udp"])


def test_udp_stale_and_out_of_order_are_shares_of_all_requests():
    samples = [answered(1, 1.0), answered(0, 25.0, stale=True, out_of_order=True), answered(2, 12.0, stale=True),
               lost(3, stale=False, out_of_order=False)]
    measured = measure(probe("udp"), samples)
    assert (measured["loss"], measured["stale"], measured["out_of_order"]) == (25.0, 50.0, 25.0)
    assert measured["rtt_max"] == 25.0


def test_tcp_connect_failures_and_connect_times():
    samples = [{"t": 1, "seq": 0, "ok": True, "connect_ms": 0.5},
               {"t": 2, "seq": 1, "ok": False, "connect_ms": None, "error": "refused"},
               {"t": 3, "seq": 2, "ok": True, "connect_ms": 1.5}]
    measured = measure(probe("tcp_connect"), samples)
    assert measured == {"failed": 100 / 3, "connect_p50": 0.5, "connect_p90": 1.5, "connect_p99": 1.5,
                        "samples": 3}


def test_command_failures():
    samples = [{"t": 1, "seq": 0, "ok": True, "exit": 0, "ms": 3}, {"t": 2, "seq": 1, "ok": False, "exit": 1, "ms": 3}]
    assert measure(probe("command"), samples) == {"failed": 50.0, "samples": 2}


# --- transfers -------------------------------------------------------------------

INTERVAL = {"t": 1.0, "bytes": 1000, "mbit": 8.0}


def test_a_transfer_measures_the_goodput_of_its_final_line():
    final = {"t": 2.0, "done": True, "ok": True, "bytes": 10_000_000, "seconds": 2.0, "goodput_mbit": 40.0}
    assert measure(probe("tcp_transfer"), [INTERVAL, final]) == {"goodput": 40.0, "failed": 0.0, "samples": 1}


@pytest.mark.parametrize("samples", [
    [INTERVAL],                                                           # never finished
    [INTERVAL, {"t": 2.0, "done": True, "ok": False, "bytes": None, "seconds": None, "goodput_mbit": None,
                "error": "reset"}],
])
def test_a_transfer_without_a_good_final_line_failed(samples):
    measured = measure(probe("tcp_transfer"), samples)
    assert measured["failed"] == 100.0 and measured["goodput"] is None


# --- bounds ----------------------------------------------------------------------

def test_bounds_hold_or_fail_and_report_the_value():
    loss, rtt = Bound("loss", "<=", 10.0), Bound("rtt_p50", "<", 2.0)
    results = check(probe("icmp", loss, rtt), {"loss": 25.0, "rtt_p50": 1.0})
    assert results == [(loss, 25.0, False), (rtt, 1.0, True)]
    assert not passed(results)
    assert passed(results[1:])


def test_a_metric_that_could_not_be_measured_fails_its_bound():
    rtt = Bound("rtt_max", "<=", 1000.0)
    measured = measure(probe("icmp", rtt), [lost(0)])
    assert check(probe("icmp", rtt), measured) == [(rtt, None, False)]


def test_a_probe_without_bounds_passes():
    assert passed(check(probe("icmp"), {"loss": 100.0}))


def test_goodput_bound_against_a_measured_transfer():
    floor = Bound("goodput", ">=", 50.0)
    final = {"t": 2.0, "done": True, "ok": True, "bytes": 1, "seconds": 1.0, "goodput_mbit": 40.0}
    assert not passed(check(probe("tcp_transfer", floor), measure(probe("tcp_transfer"), [final])))


def test_within_is_half_open_and_skips_lines_without_a_time():
    samples = [{"t": 0.9}, {"t": 1.0}, {"t": 1.5}, {"t": 2.0}, {"ready": True}]
    assert within(samples, 1.0, 2.0) == [{"t": 1.0}, {"t": 1.5}]


# --- the agent's echo accounting, over a socket pair (no network) ----------------

def answers_on(sock):
    """The seq of each answer waiting on a non-blocking socket (the agent's answers())."""
    while True:
        try:
            yield int(sock.recv(64))
        except BlockingIOError:
            return


def test_the_agent_marks_stale_and_out_of_order_answers(capfd):
    """Answers are scripted by the request whose sending releases them: 1 comes
    at once, 0 only after request 2 went, 2 after request 3 went, 3 never."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    released_by = {1: [1], 2: [0, 1], 3: [2]}  # the second 1 is a duplicate: ignored
    with ours, theirs:
        ours.setblocking(False)

        def send(seq):
            for answer in released_by.get(seq, []):
                theirs.send(str(answer).encode())

        spec = {"count": 4, "interval_ms": 5, "timeout_ms": 200}
        agent.echo_schedule(spec, ours, send, lambda: answers_on(ours), order=True)
    lines = {line["seq"]: line for line in map(json.loads, capfd.readouterr().out.splitlines())}
    flags = {seq: (line["ok"], line["stale"], line["out_of_order"]) for seq, line in lines.items()}
    assert flags == {0: (True, True, True), 1: (True, False, False), 2: (True, True, False), 3: (False, False, False)}
    assert lines[3]["rtt_ms"] is None and lines[0]["rtt_ms"] > lines[1]["rtt_ms"]


def test_an_agent_held_up_sends_on_from_now_not_in_a_burst(capfd):
    """A stall of five intervals (here in the first send) does not make the
    agent send the missed requests back to back: a lock-step client never does,
    and the answer to the first of such a burst would count as stale."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    sent_at = []
    with ours, theirs:
        ours.setblocking(False)

        def send(seq):
            sent_at.append(time.monotonic())
            if seq == 0:
                time.sleep(0.1)
            theirs.send(str(seq).encode())

        agent.echo_schedule({"count": 4, "interval_ms": 20, "timeout_ms": 500}, ours, send, lambda: answers_on(ours),
                            order=True)
    # After the stall (it ends 0.1 s after the first send) the schedule starts
    # again: request 1 at once, 3 two intervals later (in a burst, all at once).
    assert sent_at[3] - sent_at[0] >= 0.1 + 2 * 0.02 - 0.001, sent_at
    lines = [json.loads(line) for line in capfd.readouterr().out.splitlines()]
    assert [line["stale"] for line in lines] == [False] * 4


# --- specs -------------------------------------------------------------------------

@pytest.mark.parametrize("kind", PROBE_KINDS)
def test_every_probe_spec_is_one_the_agent_accepts(kind):
    fields = {"target": "10.99.0.2", "port": 9000, "duration_ms": 500.0, "command": ("true",)}
    spec = spec_of(probe(kind, **{k: v for k, v in fields.items() if k != "target"}), "10.99.0.2", time.time() + 5)
    assert agent.parse([json.dumps(spec)]) == spec
    assert set(spec) == {"mode", "deadline", *agent.FIELDS[kind]}


@pytest.mark.parametrize("kind", ["udp_time", "tcp_sink"])
def test_every_service_spec_is_one_the_agent_accepts(kind):
    spec = service_spec(Service(node="b", kind=kind, port=8080), 1e10)
    assert agent.parse([json.dumps(spec)]) == {"mode": f"serve_{kind}", "deadline": 1e10, "port": 8080}


@pytest.mark.parametrize("spec, message", [
    ("[]", "not a JSON object"),
    ('{"mode": "ping", "deadline": 1}', "unknown mode 'ping'"),
    ('{"mode": "icmp", "target": "10.0.0.1", "count": 1, "interval_ms": 1, "timeout_ms": 1}', "deadline is missing"),
    ('{"mode": "icmp", "deadline": 1, "target": "host", "count": 1, "interval_ms": 1, "timeout_ms": 1}',
     "target 'host' is not an IPv4 or IPv6 address"),
    ('{"mode": "udp", "deadline": 1, "target": "::1", "port": 0, "count": 1, "interval_ms": 1, "timeout_ms": 1}',
     "port 0 is not a port"),
    ('{"mode": "command", "deadline": 1, "command": [], "count": 1, "interval_ms": 1, "timeout_ms": 1}',
     "command [] is not an argv list"),
    ('{"mode": "tcp_connect", "deadline": 1, "target": "::1", "port": 1, "count": true, "interval_ms": 1, '
     '"timeout_ms": 1}', "count True is not a whole number"),
    ('{"mode": "serve_tcp_sink", "deadline": Infinity, "port": 80}', "deadline inf is not a time"),
])
def test_the_agent_refuses_a_bad_spec(spec, message):
    with pytest.raises(agent.SpecError, match=re.escape(message)):
        agent.parse([spec])
