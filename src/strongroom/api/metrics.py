"""Prometheus metrics of one app, in a registry of its own (two apps never share counters)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

__all__ = ["Metrics"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """Request counts and latencies by route and status; ingestion and retrieval figures."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "strongroom_http_requests",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "strongroom_http_request_seconds",
            "HTTP request latency",
            ["route", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.retrieval = Histogram(
            "strongroom_retrieval_seconds",
            "Retrieval (search) latency inside the service",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ingest_pages = Counter("strongroom_ingest_pages", "Pages ingested", registry=r)
        self.ingest_chunks = Counter("strongroom_ingest_chunks", "Chunks ingested", registry=r)
        self.ingest_failures = Counter("strongroom_ingest_failures", "Files that failed ingestion", registry=r)
        self.auth_failures = Counter("strongroom_auth_failures", "Requests refused for bad credentials", registry=r)
        self.rate_limited = Counter("strongroom_rate_limited", "Requests refused by the rate limit", registry=r)
        self.timeouts = Counter("strongroom_request_timeouts", "Requests answered 504 after the timeout", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
