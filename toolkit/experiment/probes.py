"""Agents (toolkit/experiment/agent.py) started in namespaces, their lines collected.

An AgentProcess runs one agent: `ip netns exec NS python -m
toolkit.experiment.agent SPEC`. A reader thread parses each line it writes
into `samples` (a service's ready line instead marks it ready); the agent
stops by itself at the spec's deadline, and `stop()` ends it sooner.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading

from ..model.experiment import Probe, Service
from .agent import FIELDS

AGENT = "toolkit.experiment.agent"
STOP_GRACE_S = 1.0   # after SIGTERM, before SIGKILL


def spec_of(probe: Probe, target_address: str | None, deadline: float) -> dict:
    """The agent spec of a probe aimed at `target_address` (None for a command),
    stopping at `deadline` (epoch seconds)."""
    values = {"target": target_address, "port": probe.port, "count": probe.count,
              "interval_ms": probe.interval_ms, "timeout_ms": probe.timeout_ms,
              "duration_ms": probe.duration_ms, "command": list(probe.command)}
    return {"mode": probe.kind, "deadline": deadline, **{field: values[field] for field in FIELDS[probe.kind]}}


def service_spec(service: Service, deadline: float) -> dict:
    return {"mode": f"serve_{service.kind}", "deadline": deadline, "port": service.port}


class AgentProcess:
    """One agent process. `on_sample(sample)`, if given, is called on the reader
    thread for each sample as it comes: it must be quick and must not raise."""

    def __init__(self, on_sample=None):
        self.on_sample = on_sample
        self.samples: list = []      # appended to by the reader thread only
        self.error: str | None = None
        self.process: subprocess.Popen | None = None
        self._ready = False
        self._settled = threading.Event()   # the ready line came, or stdout closed
        self._stderr = ""
        self._readers: list = []
        self._signalled = False             # we stopped it: its exit status is ours, not an error

    def start(self, namespace: str, spec: dict) -> "AgentProcess":
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", namespace, sys.executable, "-m", AGENT, json.dumps(spec)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._readers = [threading.Thread(target=self._read_samples, daemon=True),
                         threading.Thread(target=self._read_errors, daemon=True)]
        for reader in self._readers:
            reader.start()
        return self

    def _read_samples(self) -> None:
        for line in self.process.stdout:
            try:
                sample = json.loads(line)
            except ValueError:
                continue
            if not isinstance(sample, dict):
                continue
            if sample.get("ready"):
                self._ready = True
                self._settled.set()
                continue
            self.samples.append(sample)
            if self.on_sample is not None:
                self.on_sample(sample)
        self._settled.set()

    def _read_errors(self) -> None:
        # Its own thread: a chatty stderr must not fill its pipe and block the agent.
        self._stderr = self.process.stderr.read()

    def wait_ready(self, timeout: float) -> bool:
        """True once a service has written its ready line; False if it exited or
        `timeout` seconds passed first."""
        self._settled.wait(timeout)
        return self._ready

    def wait(self, timeout: float | None = None) -> bool:
        """Whether the agent exited within `timeout` seconds (its lines all read)."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        self._finish()
        return True

    def stop(self) -> None:
        """SIGTERM, SIGKILL if it is still there a second later; always reaped."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self._signalled = True
            self.process.terminate()
            try:
                self.process.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._finish()

    def _finish(self) -> None:
        for reader in self._readers:
            reader.join(STOP_GRACE_S)
        code = self.process.returncode
        if code != 0 and not self._signalled:
            self.error = self._stderr.strip() or f"the agent exited with status {code}"

    def __enter__(self) -> "AgentProcess":
        return self

    def __exit__(self, *_exc) -> None:
        self.stop()
