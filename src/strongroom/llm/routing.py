"""Routes: a public model name to an ordered list of deployments, and the pure decisions
made from them (which deployment first, how long to back off). No I/O here.

    Route("chat", version=3, targets=(Target("vllm-a", 90), Target("vllm-b", 10),
                                      Target("extractive", 0)))

Targets with a weight share the traffic (champion/challenger): each call starts at one of
them, drawn by weight, deterministically from its request id when it has one. The rest of
the list, in order, is the failover chain; weight 0 means "fallback only".
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

__all__ = [
    "RetryPolicy",
    "Route",
    "RouteSource",
    "StaticRoutes",
    "Target",
    "draw_for",
    "failover_order",
]


@dataclass(frozen=True, slots=True)
class Target:
    """A deployment in a route and its share of the traffic (0: fallback only)."""

    deployment: str
    weight: float = 0.0


@dataclass(frozen=True, slots=True)
class Route:
    """One version of a route: what serves the public model name ``name``."""

    name: str
    version: int
    targets: tuple[Target, ...]
    note: str = ""

    def __post_init__(self) -> None:
        if not self.targets:
            raise ValueError(f"route {self.name!r} needs at least one deployment")
        if any(t.weight < 0 for t in self.targets):
            raise ValueError(f"route {self.name!r}: weights must be >= 0")
        names = [t.deployment for t in self.targets]
        if len(set(names)) != len(names):
            raise ValueError(f"route {self.name!r} names a deployment twice")

    def split(self) -> str:
        """The targets as people read them: ``vllm-a (90%), vllm-b (10%), extractive (fallback)``."""
        total = sum(t.weight for t in self.targets)
        share = [f"{100 * t.weight / total:.0f}%" if t.weight and total else "fallback" for t in self.targets]
        return ", ".join(f"{t.deployment} ({s})" for t, s in zip(self.targets, share, strict=True))

    def as_dict(self) -> dict[str, object]:
        targets = [{"deployment": t.deployment, "weight": t.weight} for t in self.targets]
        return {"name": self.name, "version": self.version, "note": self.note, "targets": targets}


class RouteSource(Protocol):
    """Where the gateway looks up the active version of a route, on every call.

    routes = StaticRoutes([Route("chat", 1, (Target("vllm", 1),))])
    routes.get("chat").version  # 1
    """

    def get(self, name: str) -> Route | None:
        """The active version of route ``name``, or None when there is no such route."""
        ...

    def names(self) -> list[str]:
        """The names of all routes."""
        ...


class StaticRoutes:
    """Routes fixed in code: for tests, embedding, and the built-in defaults."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self._routes: Mapping[str, Route] = MappingProxyType({r.name: r for r in routes})

    def get(self, name: str) -> Route | None:
        return self._routes.get(name)

    def names(self) -> list[str]:
        return sorted(self._routes)


def draw_for(route: str, request_id: str) -> float:
    """A uniform number in [0, 1) fixed by route and request id: the same request id always
    lands on the same side of a split."""
    digest = hashlib.sha256(f"{route}\x00{request_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def failover_order(route: Route, draw: float) -> tuple[str, ...]:
    """The deployments to try, in order, for a call whose split draw is ``draw``."""
    weighted = [t for t in route.targets if t.weight > 0]
    if not weighted:
        return tuple(t.deployment for t in route.targets)
    x = draw * sum(t.weight for t in weighted)
    first = weighted[-1].deployment
    acc = 0.0
    for t in weighted:
        acc += t.weight
        if x < acc:
            first = t.deployment
            break
    return (first, *(t.deployment for t in route.targets if t.deployment != first))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries of one deployment before failing over: at most ``attempts`` calls in all,
    backing off ``base_s * 2**n`` (capped at ``max_s``) with jitter. A server's Retry-After
    longer than ``max_s`` means: do not wait, fail over."""

    attempts: int = 2
    base_s: float = 0.05
    max_s: float = 1.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.base_s < 0 or self.max_s < 0:
            raise ValueError("RetryPolicy needs attempts >= 1 and non-negative delays")

    def delay(self, retry: int, rng: random.Random, retry_after: float | None = None) -> float | None:
        """Seconds to wait before retry number ``retry`` (0-based), or None to fail over now."""
        if retry_after is not None:
            return retry_after if retry_after <= self.max_s else None
        ceiling = min(self.max_s, self.base_s * 2.0**retry)
        return ceiling * (0.5 + rng.random() / 2)
