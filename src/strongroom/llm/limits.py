"""Request and token budgets (token buckets), prompt-size and max-token limits.

A budget is a pair of token buckets, one counting requests and one counting tokens, kept
per principal and per route. Before a call the gateway reserves one request and the
estimated tokens (prompt estimate + max_tokens); after it, it settles the difference with
the real usage, so a budget is never exceeded by more than one call's misestimate.

Buckets live behind :class:`BucketStore`, a one-method protocol: :class:`InProcessBuckets`
by default, :class:`strongroom.llm.redis_limits.RedisBuckets` to share budgets between
processes.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from strongroom.errors import BudgetExceeded, PromptTooLarge
from strongroom.llm.types import ChatRequest, estimate_tokens, prompt_tokens_estimate

__all__ = [
    "BucketStore",
    "Budget",
    "Budgets",
    "InProcessBuckets",
    "Limits",
    "Rate",
    "Reservation",
    "check_request",
]

ANONYMOUS = "anonymous"


@dataclass(frozen=True, slots=True)
class Rate:
    """``amount`` units per ``per_s`` seconds, refilled continuously; bursts up to ``burst``
    (default ``amount``). ``Rate(60_000, per_s=60)`` is 60k tokens a minute."""

    amount: float
    per_s: float = 60.0
    burst: float | None = None

    def __post_init__(self) -> None:
        if self.amount <= 0 or self.per_s <= 0 or (self.burst is not None and self.burst <= 0):
            raise ValueError("a Rate needs amount > 0, per_s > 0 and burst > 0")

    @property
    def capacity(self) -> float:
        return self.burst if self.burst is not None else self.amount

    @property
    def refill_per_s(self) -> float:
        return self.amount / self.per_s


@dataclass(frozen=True, slots=True)
class Budget:
    """How many requests and tokens one principal, or one route, may use."""

    requests: Rate | None = None
    tokens: Rate | None = None


def _frozen(m: Mapping[str, Budget] | None = None) -> Mapping[str, Budget]:
    return MappingProxyType(dict(m or {}))


def _no_budgets() -> Mapping[str, Budget]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Limits:
    """The gateway's limits. ``max_tokens`` caps what a request may ask for, and is sent
    when the request names none; ``default_principal_budget`` applies to principals not in
    ``principal_budgets`` (requests without ``user`` count as ``anonymous``)."""

    max_prompt_tokens: int | None = None
    max_tokens: int | None = None
    reserve_tokens: int = 256
    route_budgets: Mapping[str, Budget] = field(default_factory=_no_budgets)
    principal_budgets: Mapping[str, Budget] = field(default_factory=_no_budgets)
    default_principal_budget: Budget | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "route_budgets", _frozen(self.route_budgets))
        object.__setattr__(self, "principal_budgets", _frozen(self.principal_budgets))


def check_request(request: ChatRequest, limits: Limits) -> tuple[int, int | None]:
    """Check ``request`` against the size limits: its prompt-token estimate and the
    ``max_tokens`` to send. Raises PromptTooLarge with what to change. The tools a request
    offers count towards its prompt (their schemas reach the model's context)."""
    prompt = prompt_tokens_estimate(request.messages)
    if request.tools:
        prompt += sum(
            estimate_tokens(t.name + t.description + json.dumps(t.parameters, default=str)) for t in request.tools
        )
    if limits.max_prompt_tokens is not None and prompt > limits.max_prompt_tokens:
        raise PromptTooLarge(
            f"the prompt is about {prompt} tokens, over the limit of {limits.max_prompt_tokens}; "
            "send less context (fewer or shorter passages) or raise max_prompt_tokens"
        )
    max_tokens = request.max_tokens
    if limits.max_tokens is not None:
        if max_tokens is None:
            max_tokens = limits.max_tokens
        elif max_tokens > limits.max_tokens:
            raise PromptTooLarge(
                f"max_tokens={max_tokens} is over the limit of {limits.max_tokens}; "
                f"ask for at most {limits.max_tokens} tokens"
            )
    if max_tokens is not None and max_tokens < 1:
        raise PromptTooLarge(f"max_tokens={max_tokens} must be at least 1")
    return prompt, max_tokens


class BucketStore(Protocol):
    """Token buckets by key: ``take``, atomic per call, and ``aclose``.

    store = InProcessBuckets()
    wait = await store.take("principal:alice:req", 1, Rate(10, per_s=60))
    if wait: ...  # denied; nothing was taken; ``wait`` seconds until it would fit
    """

    async def take(self, key: str, cost: float, rate: Rate, *, force: bool = False) -> float:
        """Take ``cost`` units from the bucket ``key`` (created full at ``rate.capacity``).

        Returns 0.0 when taken. Otherwise nothing is taken and the result is the seconds
        until ``cost`` units will be there (``inf`` if more than the bucket holds).
        ``force`` always takes, going negative if need be; a negative ``cost`` refunds
        (never above capacity).
        """
        ...

    async def aclose(self) -> None:
        """Release connections; the store is not used afterwards."""
        ...


def wait_for(tokens: float, cost: float, rate: Rate) -> float:
    """Seconds until a bucket holding ``tokens`` has ``cost`` units (``inf`` if never)."""
    if cost > rate.capacity:
        return math.inf
    return max(0.0, (cost - tokens) / rate.refill_per_s)


class InProcessBuckets:
    """Token buckets in this process's memory: the default, exact, and lost on restart."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, list[float]] = {}

    async def take(self, key: str, cost: float, rate: Rate, *, force: bool = False) -> float:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = [rate.capacity, now]
        tokens = min(rate.capacity, bucket[0] + (now - bucket[1]) * rate.refill_per_s)
        bucket[1] = now
        if force or cost <= tokens:
            bucket[0] = min(rate.capacity, tokens - cost)
            return 0.0
        bucket[0] = tokens
        return wait_for(tokens, cost, rate)

    async def aclose(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class Reservation:
    """What was taken for one call, to settle against the real usage afterwards."""

    tokens: tuple[tuple[str, Rate], ...] = ()
    reserved: int = 0


_NOTHING = Reservation()


class Budgets:
    """Reserve and settle a call's requests and tokens against the configured budgets."""

    def __init__(self, limits: Limits, store: BucketStore | None = None) -> None:
        self.limits = limits
        self.store = store if store is not None else InProcessBuckets()

    def _applicable(self, route: str, principal: str) -> list[tuple[str, str, Budget]]:
        out = []
        if (b := self.limits.route_budgets.get(route)) is not None:
            out.append((f"route:{route}", f"route {route!r}", b))
        b = self.limits.principal_budgets.get(principal, self.limits.default_principal_budget)
        if b is not None:
            out.append((f"principal:{principal}", f"principal {principal!r}", b))
        return out

    async def reserve(self, route: str, principal: str | None, tokens: int) -> Reservation:
        """Take one request and ``tokens`` from every budget that applies, or raise
        BudgetExceeded having taken nothing."""
        budgets = self._applicable(route, principal or ANONYMOUS)
        if not budgets:
            return _NOTHING
        taken: list[tuple[str, float, Rate]] = []
        try:
            for key, label, budget in budgets:
                for kind, amount, rate in (
                    ("requests", 1, budget.requests),
                    ("tokens", tokens, budget.tokens),
                ):
                    if rate is None:
                        continue
                    bucket = f"{key}:{kind}"
                    wait = await self.store.take(bucket, amount, rate)
                    if wait:
                        raise self._exceeded(label, kind, amount, rate, wait)
                    taken.append((bucket, amount, rate))
        except BaseException:
            for bucket, spent, bucket_rate in taken:
                await self.store.take(bucket, -spent, bucket_rate, force=True)
            raise
        return Reservation(tuple((k, r) for k, _, r in taken if k.endswith(":tokens")), tokens)

    async def settle(self, reservation: Reservation, used_tokens: int) -> None:
        """Charge (or refund) the difference between the tokens used and those reserved."""
        diff = used_tokens - reservation.reserved
        if diff:
            for bucket, rate in reservation.tokens:
                await self.store.take(bucket, diff, rate, force=True)

    @staticmethod
    def _exceeded(label: str, kind: str, cost: float, rate: Rate, wait: float) -> BudgetExceeded:
        per = f"{rate.amount:g} per {rate.per_s:g}s"
        if math.isinf(wait):
            return BudgetExceeded(
                f"{label} {kind} budget ({per}) can never fit a call needing {cost:g}; "
                "lower max_tokens or the prompt, or raise the budget",
                retry_after=wait,
                scope=f"{label} {kind}",
            )
        return BudgetExceeded(
            f"{label} has used its {kind} budget ({per}); retry in {wait:.1f}s or ask for a larger budget",
            retry_after=wait,
            scope=f"{label} {kind}",
        )
