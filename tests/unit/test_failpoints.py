"""Failpoints from NETKEEL_FAILPOINT: parsing, and the on_step wrapper.
(apply.kill is only ever parsed here, never fired: it would SIGKILL pytest.)"""

import pytest

from toolkit.errors import NetkeelError
from toolkit.runtime import failpoints
from toolkit.runtime.failpoints import ENV, FailpointHit, active, wrap


@pytest.fixture
def setting(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    return lambda value: monkeypatch.setenv(ENV, value)


def test_no_setting_means_no_failpoint_and_wrap_returns_the_callable(setting):
    def on_step(done, total, current):
        pass
    assert active() is None
    assert wrap(on_step) is on_step
    assert wrap(None) is None
    setting("")
    assert active() is None


@pytest.mark.parametrize("value, expected", [("apply.after:3", ("apply.after", 3)),
                                             ("apply.kill:0", ("apply.kill", 0)),
                                             ("apply.after:12", ("apply.after", 12))])
def test_active_parses_the_setting(setting, value, expected):
    setting(value)
    assert active() == expected


@pytest.mark.parametrize("value", ["apply.after", "apply.after:", "apply.after:x", "apply.after:-1",
                                   "apply.after:1.5", "apply.sleep:3", "kill:3", "apply.after: 3"])
def test_bad_settings_are_rejected_clearly(setting, value):
    setting(value)
    with pytest.raises(NetkeelError, match=rf"{ENV}=.*expected apply\.after:K, apply\.kill:K, apply\.interrupt:K or checker\.unlisted:1"):
        active()
    with pytest.raises(NetkeelError):
        wrap(None)


def test_a_non_ascii_digit_is_rejected_clearly(setting):
    setting("apply.after:²")
    with pytest.raises(NetkeelError):
        active()


def test_wrap_calls_on_step_then_raises_once_done_reaches_k(setting):
    setting("apply.after:2")
    calls = []
    step = wrap(lambda *args: calls.append(args))
    step(1, 5, "first")
    with pytest.raises(FailpointHit, match="apply.after:2 after 2 of 5"):
        step(2, 5, "second")
    assert calls == [(1, 5, "first"), (2, 5, "second")]  # on_step saw the step before the failure
    with pytest.raises(FailpointHit):
        step(3, 5, "third")


def test_wrap_without_an_on_step_still_fires(setting):
    setting("apply.after:1")
    with pytest.raises(FailpointHit):
        wrap(None)(1, 1, "only")


def test_failpoint_hit_is_a_netkeel_error():
    assert issubclass(failpoints.FailpointHit, NetkeelError)
