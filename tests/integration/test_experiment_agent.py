"""The experiment agent in real namespaces: two of our own (a unique prefix),
joined by a veth, removed afterwards. Every agent runs inside them, bounded by
its count and its deadline, and is stopped when its test ends."""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from labkit import remove_prefixed

from toolkit.experiment.measure import measure
from toolkit.experiment.probes import AgentProcess
from toolkit.model.experiment import Probe

A4, B4 = "10.99.7.1", "10.99.7.2"
A6, B6 = "fd99:7::1", "fd99:7::2"
NOBODY = "10.99.7.9"   # in the subnet, on no interface
UDP_PORT, TCP_PORT, CLOSED_PORT = 8080, 9000, 9001


@dataclass(frozen=True)
class Pair:
    a: str
    b: str


@pytest.fixture(scope="module")
def pair():
    prefix = f"nkxa-{secrets.token_hex(3)}-"
    a, b = f"{prefix}a", f"{prefix}b"

    def ip(*argv):
        subprocess.run(["ip", *argv], check=True, capture_output=True, timeout=10)

    try:
        ip("netns", "add", a)
        ip("netns", "add", b)
        ip("-n", a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", b)
        for ns, dev, v4, v6 in ((a, "va", A4, A6), (b, "vb", B4, B6)):
            ip("-n", ns, "addr", "add", f"{v4}/24", "dev", dev)
            ip("-n", ns, "addr", "add", f"{v6}/64", "dev", dev, "nodad")
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "link", "set", dev, "up")
        # IPv6 routes come once the carrier is seen: wait (bounded) until both families answer.
        for family, address in (("-4", B4), ("-6", B6)):
            subprocess.run(["ip", "netns", "exec", a, "ping", family, "-n", "-c", "1", "-w", "5", address],
                           check=True, capture_output=True, timeout=10)
        yield Pair(a, b)
    finally:
        remove_prefixed(prefix)


def deadline(seconds: float) -> float:
    return time.time() + seconds


def probe(kind: str, **fields) -> Probe:
    return Probe(name="p", kind=kind, node="a", **fields)


def run(namespace: str, spec: dict, seconds: float = 10) -> AgentProcess:
    """An agent run to its end (its own, or stopped after `seconds`)."""
    with AgentProcess() as agent:
        agent.start(namespace, {"deadline": deadline(seconds), **spec})
        assert agent.wait(seconds + 5)
    assert agent.error is None, agent.error
    return agent


@contextmanager
def service(namespace: str, mode: str, port: int):
    with AgentProcess() as agent:
        agent.start(namespace, {"mode": mode, "port": port, "deadline": deadline(15)})
        assert agent.wait_ready(5), agent.error
        yield agent


def first_sample(agent: AgentProcess, seconds: float = 5) -> None:
    end = time.monotonic() + seconds
    while not agent.samples and time.monotonic() < end:
        time.sleep(0.01)
    assert agent.samples


@pytest.mark.parametrize("target", [B4, B6])
def test_icmp_answers_every_request(pair, target):
    agent = run(pair.a, {"mode": "icmp", "target": target, "count": 5, "interval_ms": 20, "timeout_ms": 1000})
    assert sorted(s["seq"] for s in agent.samples) == [0, 1, 2, 3, 4]
    assert all(s["ok"] and s["rtt_ms"] > 0 for s in agent.samples)
    assert measure(probe("icmp"), agent.samples)["loss"] == 0


def test_icmp_probes_at_once_in_one_namespace_keep_their_own_answers(pair):
    """Every raw ICMP socket sees every echo reply: the probe to an address
    nobody has must not take the other's answers for its own."""
    spec = {"mode": "icmp", "count": 10, "interval_ms": 10, "timeout_ms": 300, "deadline": deadline(10)}
    with AgentProcess() as answered, AgentProcess() as unanswered:
        answered.start(pair.a, {**spec, "target": B4})
        unanswered.start(pair.a, {**spec, "target": NOBODY})
        assert answered.wait(10) and unanswered.wait(10)
    assert measure(probe("icmp"), answered.samples)["loss"] == 0
    assert measure(probe("icmp"), unanswered.samples)["loss"] == 100


@pytest.mark.parametrize("target", [B4, B6])
def test_udp_time_answers_each_request_in_order(pair, target):
    # Stale means answered after the next request went: at 10 ms apart a busy CPU
    # delaying either Python process that long made it so (a flaky test, found by review).
    with service(pair.b, "serve_udp_time", UDP_PORT):
        agent = run(pair.a, {"mode": "udp", "target": target, "port": UDP_PORT, "count": 20, "interval_ms": 100,
                             "timeout_ms": 1000})
    measured = measure(probe("udp"), agent.samples)
    assert (measured["samples"], measured["loss"], measured["stale"], measured["out_of_order"]) == (20, 0, 0, 0)
    assert measured["rtt_max"] > 0


def test_udp_without_a_server_loses_everything(pair):
    agent = run(pair.a, {"mode": "udp", "target": B4, "port": CLOSED_PORT, "count": 3, "interval_ms": 10,
                         "timeout_ms": 200})
    assert measure(probe("udp"), agent.samples)["loss"] == 100


def test_tcp_connect_to_the_sink_and_to_a_closed_port(pair):
    spec = {"mode": "tcp_connect", "target": B4, "count": 3, "interval_ms": 10, "timeout_ms": 1000}
    with service(pair.b, "serve_tcp_sink", TCP_PORT):
        opened = run(pair.a, {**spec, "port": TCP_PORT})
    refused = run(pair.a, {**spec, "port": CLOSED_PORT})
    assert [(s["ok"], s["connect_ms"] > 0) for s in opened.samples] == [(True, True)] * 3
    assert [(s["ok"], s["error"]) for s in refused.samples] == [(False, "refused")] * 3
    assert measure(probe("tcp_connect"), refused.samples)["failed"] == 100


def test_tcp_transfer_reports_intervals_and_the_goodput_the_sink_counted(pair):
    with service(pair.b, "serve_tcp_sink", TCP_PORT):
        agent = run(pair.a, {"mode": "tcp_transfer", "target": B4, "port": TCP_PORT, "duration_ms": 1000,
                             "timeout_ms": 2000})
    *intervals, final = agent.samples
    # (a report every REPORT_S: a held-up agent makes fewer, never more)
    assert 1 <= len(intervals) <= 5 and all(s["mbit"] > 0 for s in intervals)
    assert final["done"] and final["ok"], final
    assert final["bytes"] == sum(s["bytes"] for s in intervals)  # all written was delivered
    assert measure(probe("tcp_transfer"), agent.samples)["goodput"] > 10


def test_commands_succeed_fail_and_time_out(pair):
    spec = {"mode": "command", "count": 2, "interval_ms": 10, "timeout_ms": 300}
    assert [s["ok"] for s in run(pair.a, {**spec, "command": ["true"]}).samples] == [True, True]
    assert [s["exit"] for s in run(pair.a, {**spec, "command": ["false"]}).samples] == [1, 1]
    [slow] = run(pair.a, {**spec, "count": 1, "command": ["sleep", "5"]}).samples
    assert (slow["ok"], slow["exit"], slow["error"]) == (False, None, "timeout")
    assert 300 <= slow["ms"] < 1000


def test_sigterm_stops_an_agent_at_once(pair):
    agent = AgentProcess().start(pair.a, {"mode": "icmp", "target": B4, "count": 1000, "interval_ms": 20,
                                          "timeout_ms": 1000, "deadline": deadline(30)})
    first_sample(agent)
    began = time.monotonic()
    agent.stop()
    assert time.monotonic() - began < 1
    assert agent.process.returncode == 0  # it stopped itself, it was not killed


def test_a_stopped_transfer_still_writes_its_final_line(pair):
    with service(pair.b, "serve_tcp_sink", TCP_PORT):
        with AgentProcess() as agent:
            agent.start(pair.a, {"mode": "tcp_transfer", "target": B4, "port": TCP_PORT, "duration_ms": 10_000,
                                 "timeout_ms": 1000, "deadline": deadline(30)})
            first_sample(agent)
    assert agent.samples[-1]["done"] and agent.samples[-1]["error"] == "stopped"
    assert measure(probe("tcp_transfer"), agent.samples)["failed"] == 100


def test_no_agent_outlives_its_deadline(pair, tmp_path):
    """Each is busy well past its deadline; each stops there by itself, and a
    command it was running goes with it."""
    pid_file = tmp_path / "command.pid"
    specs = [
        (pair.b, {"mode": "serve_udp_time", "port": UDP_PORT}),
        (pair.b, {"mode": "serve_tcp_sink", "port": TCP_PORT}),
        (pair.a, {"mode": "icmp", "target": B4, "count": 1000, "interval_ms": 20, "timeout_ms": 1000}),
        (pair.a, {"mode": "tcp_connect", "target": B4, "port": CLOSED_PORT, "count": 1000, "interval_ms": 20,
                  "timeout_ms": 1000}),
        (pair.a, {"mode": "command", "command": ["sh", "-c", f"echo $$ > {pid_file}; exec sleep 30"], "count": 1,
                  "interval_ms": 10, "timeout_ms": 30_000}),
    ]
    end = deadline(1.0)
    agents = [AgentProcess().start(ns, {**spec, "deadline": end}) for ns, spec in specs]
    try:
        for agent in agents:
            # (5 s of slack for five interpreters starting at once: the shortest of these
            # runs would take 20 s by itself)
            assert agent.wait(max(0.0, end + 5 - time.time())), f"still running past its deadline: {agent}"
            assert agent.process.returncode == 0, agent.error
    finally:
        for agent in agents:
            agent.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


def test_a_bad_spec_exits_2_with_one_line(pair):
    with AgentProcess() as agent:
        agent.start(pair.a, {"mode": "serve_tcp_sink", "port": 70000, "deadline": deadline(5)})
        assert not agent.wait_ready(5)
        assert agent.wait(5)
    assert agent.process.returncode == 2
    assert agent.error == "agent: serve_tcp_sink: port 70000 is not a port 1-65535"
