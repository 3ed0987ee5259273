"""A per-deployment circuit breaker: stop sending traffic to a deployment that keeps failing.

    CLOSED --N consecutive failures--> OPEN --cool-down elapsed--> HALF_OPEN (one probe)
    HALF_OPEN --probe succeeds--> CLOSED        HALF_OPEN --probe fails--> OPEN (new cool-down)

Only failures that say something about the deployment's health count (connect errors,
5xx, 429, timeouts, malformed streams); a 4xx that rejects one request does not.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["BreakerPolicy", "BreakerState", "CircuitBreaker"]


class BreakerState(enum.IntEnum):
    """The breaker's state; the integer is what the ``breaker_state`` gauge reports."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """Open after ``failure_threshold`` consecutive failures; probe again after ``cooldown_s``."""

    failure_threshold: int = 5
    cooldown_s: float = 30.0

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.cooldown_s < 0:
            raise ValueError("failure_threshold must be >= 1 and cooldown_s >= 0")


class CircuitBreaker:
    """Decide whether a deployment may take a call, from the outcomes of earlier calls.

    Every call :meth:`allow` admitted must end in exactly one of :meth:`record_success`,
    :meth:`record_failure` or :meth:`release` (the call ended without a verdict, e.g. the
    caller went away)::

        breaker = CircuitBreaker(BreakerPolicy(failure_threshold=3, cooldown_s=10))
        if breaker.allow():
            try:
                ...  # call the deployment
            except BackendUnavailable:
                breaker.record_failure()
                raise
            breaker.record_success()

    Not thread-safe: it lives on one event loop, like the gateway that owns it.
    """

    def __init__(
        self,
        policy: BreakerPolicy = BreakerPolicy(),
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False

    @property
    def state(self) -> BreakerState:
        return self._state

    @property
    def retry_in(self) -> float:
        """Seconds until an open breaker lets a probe through (0 when not open)."""
        if self._state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.policy.cooldown_s - self._clock())

    def _set(self, state: BreakerState) -> None:
        if state is not self._state:
            self._state = state
            if self._on_change is not None:
                self._on_change(state)

    def allow(self) -> bool:
        """Whether a call may go to the deployment now; a half-open breaker admits one probe."""
        state = self._state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN:
            if self._clock() < self._opened_at + self.policy.cooldown_s:
                return False
            self._set(BreakerState.HALF_OPEN)
        if self._probing:
            return False
        self._probing = True
        return True

    def record_success(self) -> None:
        """An admitted call succeeded: close the breaker (ends a half-open probe)."""
        if self._state is BreakerState.OPEN:
            return  # a call admitted before the breaker opened; the cool-down still runs
        self._failures = 0
        self._probing = False
        self._set(BreakerState.CLOSED)

    def record_failure(self) -> None:
        """An admitted call failed: count it, and open the breaker at the threshold."""
        if self._state is BreakerState.HALF_OPEN:
            self._open()
        elif self._state is BreakerState.CLOSED:
            self._failures += 1
            if self._failures >= self.policy.failure_threshold:
                self._open()

    def release(self) -> None:
        """An admitted call ended without a verdict: let another probe through if it was one."""
        if self._state is BreakerState.HALF_OPEN:
            self._probing = False

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._probing = False
        self._failures = 0
        self._set(BreakerState.OPEN)
