"""Prometheus metrics for the gateway, per route and deployment, in a registry the caller owns.

strongroom_llm_requests_total{route,deployment}            calls sent to a deployment
strongroom_llm_errors_total{route,deployment,error}        failures by error class
strongroom_llm_time_to_first_token_seconds{route,deployment}   histogram
strongroom_llm_tokens_per_second{route,deployment}         histogram of completion speed
strongroom_llm_tokens_total{route,deployment,kind}         prompt / completion tokens
strongroom_llm_failovers_total{route,deployment}           calls that left this deployment
strongroom_llm_breaker_state{deployment}                   0 closed, 1 half-open, 2 open
"""

from __future__ import annotations

from typing import NamedTuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["GatewayMetrics"]

_TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_SPEED_BUCKETS = (1, 5, 10, 20, 40, 80, 160, 320, 640, 1280)


class GatewayMetrics:
    """The gateway's metrics, registered in ``registry`` (never the global default, so that
    two gateways, or two tests, do not share counters)::

        registry = CollectorRegistry()
        gateway = Gateway(..., metrics=GatewayMetrics(registry))
        print(prometheus_client.generate_latest(registry).decode())
    """

    def __init__(self, registry: CollectorRegistry, *, namespace: str = "strongroom_llm") -> None:
        self.registry = registry
        self.requests = Counter(
            "requests", "Calls sent to a deployment.", ["route", "deployment"],
            namespace=namespace, registry=registry,
        )  # fmt: skip
        self.errors = Counter(
            "errors", "Failed calls by error class ('-' deployment: rejected before any).",
            ["route", "deployment", "error"], namespace=namespace, registry=registry,
        )  # fmt: skip
        self.ttft = Histogram(
            "time_to_first_token_seconds", "Seconds from the call to its first text.",
            ["route", "deployment"], buckets=_TTFT_BUCKETS, namespace=namespace, registry=registry,
        )  # fmt: skip
        self.speed = Histogram(
            "tokens_per_second", "Completion tokens per second of generation, per call.",
            ["route", "deployment"], buckets=_SPEED_BUCKETS, namespace=namespace, registry=registry,
        )  # fmt: skip
        self.tokens = Counter(
            "tokens", "Tokens used, by kind (prompt or completion).", ["route", "deployment", "kind"],
            namespace=namespace, registry=registry,
        )  # fmt: skip
        self.failovers = Counter(
            "failovers", "Calls that left this deployment for the next one.", ["route", "deployment"],
            namespace=namespace, registry=registry,
        )  # fmt: skip
        self.breaker = Gauge(
            "breaker_state", "Circuit breaker state: 0 closed, 1 half-open, 2 open.", ["deployment"],
            namespace=namespace, registry=registry,
        )  # fmt: skip

        # labelled children by (route, deployment): labels() takes a lock and builds a key
        self._children: dict[tuple[str, str], _Children] = {}

    def _of(self, route: str, deployment: str) -> _Children:
        key = (route, deployment)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = _Children(
                self.requests.labels(route, deployment),
                self.ttft.labels(route, deployment),
                self.speed.labels(route, deployment),
                self.tokens.labels(route, deployment, "prompt"),
                self.tokens.labels(route, deployment, "completion"),
            )
        return children

    def request(self, route: str, deployment: str) -> None:
        self._of(route, deployment).requests.inc()

    def error(self, route: str, deployment: str, error: str) -> None:
        self.errors.labels(route, deployment, error).inc()

    def failover(self, route: str, deployment: str) -> None:
        self.failovers.labels(route, deployment).inc()

    def breaker_state(self, deployment: str, state: int) -> None:
        self.breaker.labels(deployment).set(state)

    def first_token(self, route: str, deployment: str, seconds: float) -> None:
        self._of(route, deployment).ttft.observe(seconds)

    def done(
        self,
        route: str,
        deployment: str,
        *,
        first_token_s: float | None,
        latency_s: float,
        prompt_tokens: int,
        completion_tokens: int,
    ) -> None:
        """Record a finished call: its generation speed and token counts."""
        children = self._of(route, deployment)
        generating = latency_s - (first_token_s or 0.0)
        if completion_tokens and generating > 0:
            children.speed.observe(completion_tokens / generating)
        children.prompt_tokens.inc(prompt_tokens)
        children.completion_tokens.inc(completion_tokens)


class _Children(NamedTuple):
    requests: Counter
    ttft: Histogram
    speed: Histogram
    prompt_tokens: Counter
    completion_tokens: Counter
