"""The circuit breaker's back-off: exponential, capped, one trial call when it has passed."""

from __future__ import annotations

import pytest

from looper_common.sdk.breaker import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_backoff_doubles_per_failure_up_to_the_cap_and_a_success_closes():
    clock = Clock()
    breaker = CircuitBreaker(base_s=1.0, max_s=5.0, clock=clock)
    assert breaker.allow() and breaker.state() == "closed"
    waits = []
    for _ in range(5):
        assert breaker.failure(TimeoutError("hung")) is (not waits)  # True only when it opens
        waits.append(breaker.backoff_s)
        assert not breaker.allow() and breaker.state() == "open"
        clock.now += breaker.backoff_s - 0.001
        assert not breaker.allow()
        clock.now += 0.001
        assert breaker.state() == "half_open"
        assert breaker.allow()  # the trial
        assert not breaker.allow()  # only one
    assert waits == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert breaker.opened == 1 and breaker.last_error == "TimeoutError: hung"
    breaker.success()
    assert breaker.state() == "closed" and breaker.allow() and breaker.backoff_s == 0.0


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="0 < base_s <= max_s"):
        CircuitBreaker(base_s=2.0, max_s=1.0)
    with pytest.raises(ValueError):
        CircuitBreaker(base_s=0.0)
