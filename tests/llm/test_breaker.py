"""The circuit breaker's state machine, on a fake clock."""

from __future__ import annotations

import pytest

from strongroom.llm.breaker import BreakerPolicy, BreakerState, CircuitBreaker
from tests.llm.conftest import FakeClock


def breaker(clock: FakeClock, seen: list[BreakerState] | None = None) -> CircuitBreaker:
    return CircuitBreaker(
        BreakerPolicy(failure_threshold=3, cooldown_s=10),
        clock=clock,
        on_change=None if seen is None else seen.append,
    )


def test_opens_after_consecutive_failures_only(clock: FakeClock) -> None:
    b = breaker(clock)
    for _ in range(2):
        assert b.allow()
        b.record_failure()
    assert b.allow()
    b.record_success()  # a success resets the count
    for _ in range(2):
        assert b.allow()
        b.record_failure()
    assert b.state is BreakerState.CLOSED
    assert b.allow()
    b.record_failure()
    assert b.state is BreakerState.OPEN and not b.allow()
    assert b.retry_in == pytest.approx(10)


def test_half_open_admits_exactly_one_probe(clock: FakeClock) -> None:
    seen: list[BreakerState] = []
    b = breaker(clock, seen)
    for _ in range(3):
        b.allow()
        b.record_failure()
    clock.advance(9.9)
    assert not b.allow()
    clock.advance(0.2)
    assert b.allow()  # the probe
    assert b.state is BreakerState.HALF_OPEN
    assert not b.allow() and not b.allow()  # everyone else waits for its verdict
    b.record_success()
    assert b.state is BreakerState.CLOSED and b.allow()
    assert seen == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


def test_a_failed_probe_reopens_with_a_fresh_cooldown(clock: FakeClock) -> None:
    b = breaker(clock)
    for _ in range(3):
        b.allow()
        b.record_failure()
    clock.advance(10)
    assert b.allow()
    b.record_failure()
    assert b.state is BreakerState.OPEN and b.retry_in == pytest.approx(10)
    clock.advance(5)
    assert not b.allow()


def test_a_probe_without_verdict_lets_another_probe_through(clock: FakeClock) -> None:
    b = breaker(clock)
    for _ in range(3):
        b.allow()
        b.record_failure()
    clock.advance(10)
    assert b.allow()
    b.release()  # the caller went away before the answer
    assert b.allow()


def test_a_late_success_does_not_close_an_open_breaker(clock: FakeClock) -> None:
    b = breaker(clock)
    for _ in range(3):
        b.allow()
        b.record_failure()
    b.record_success()  # from a call admitted before the breaker opened
    assert b.state is BreakerState.OPEN


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        BreakerPolicy(failure_threshold=0)
