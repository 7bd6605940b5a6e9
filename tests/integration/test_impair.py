"""Permanent impairments declared in the topology: applied, measured with real
traffic, drift after a hand change, repair, rollback."""

from __future__ import annotations

import subprocess

LAB = "topologies/impaired-link.yaml"


# The declared 10mbit, as TCP measures it through the shaper: at most the rate
# (what tbf holds to), and not far below it. The lower bound tells the declared
# rate from a wrong unit (x8, x1000); a sender on a busy 2-core machine got 79%
# of it once (a CI run with a benchmark beside it), so it leaves room for that.
RATE_BAND = (6e6, 10.5e6)


def test_a_declared_rate_applies_drifts_repairs_and_rolls_back(lab, tmp_path):
    lab.applied(LAB)
    rate = lab.throughput("office", "isp", "10.0.7.1")
    assert RATE_BAND[0] <= rate <= RATE_BAND[1], rate
    assert lab.run("drift", LAB).returncode == 0

    subprocess.run(["tc", "-n", lab.ns("office"), "qdisc", "replace", "dev", "uplink", "root", "handle", "4e4b:",
                    "tbf", "rate", "5mbit", "burst", "1600", "latency", "50ms"], check=True, timeout=10)
    code, doc = lab.json("drift", LAB)
    assert code == 2
    assert [(d["object"], d["changes"]) for d in doc["differences"]] == [
        ("impairment on uplink", [{"field": "burst", "desired": 12_500, "live": 1_600},
                                  {"field": "limit", "desired": 75_000, "live": 32_850},  # 5mbit x 50ms + burst
                                  {"field": "rate", "desired": 10_000_000, "live": 5_000_000}])]
    assert lab.run("apply", LAB).returncode == 0
    assert lab.run("drift", LAB).returncode == 0

    fast = tmp_path / "fast.yaml"
    fast.write_text(open(LAB).read().replace("    impair: {rate: 10mbit}\n", ""))
    assert lab.run("apply", fast).returncode == 0
    assert lab.throughput("office", "isp", "10.0.7.1", 1) > 50e6
    assert lab.run("rollback", None).returncode == 0
    assert lab.run("drift", LAB).returncode == 0
    rate = lab.throughput("office", "isp", "10.0.7.1")
    assert RATE_BAND[0] <= rate <= RATE_BAND[1], rate
