"""Limits, health, metrics, errors and development mode, on apps of their own."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from strongroom.api import create_app
from strongroom.config import Settings
from strongroom.testing import HashEmbedder
from tests.api.conftest import service_settings
from tests.api.live import live_server
from tests.auth.oidc_provider import Provider


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory, provider: Provider) -> Iterator[str]:
    settings = Settings(home=tmp_path_factory.mktemp("tight"), embedder="hash")
    config = service_settings(provider, rate_per_s=0.5, rate_burst=5, max_body_bytes=2048, max_upload_bytes=4096)
    with live_server(create_app(settings, config, embedder=HashEmbedder(64))) as url:
        yield url


def _client(url: str, provider: Provider, sub: str, groups: list[str]) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {provider.token(sub=sub, groups=groups)}"})


def test_rate_limit_is_per_principal(tight: str, provider: Provider) -> None:
    with _client(tight, provider, "greedy", ["readers"]) as c:
        codes = [c.post("/v1/search", json={"query": "x"}).status_code for _ in range(8)]
        limited = c.post("/v1/search", json={"query": "x"})
    assert codes[:5] == [200] * 5 and 429 in codes
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    with _client(tight, provider, "patient", ["readers"]) as c:  # another principal has its own bucket
        assert c.post("/v1/search", json={"query": "x"}).status_code == 200


def test_body_and_upload_limits(tight: str, provider: Provider) -> None:
    with _client(tight, provider, "big", ["readers", "ingesters"]) as c:
        r = c.post("/v1/search", json={"query": "x" * 3000})
        assert r.status_code == 413 and r.json()["error"]["type"] == "request_too_large"
        r = c.post("/v1/documents", files={"file": ("big.txt", b"a " * 4000)}, data={"acl": "public"})
        assert r.status_code == 413

        def chunked() -> Iterator[bytes]:  # no Content-Length: the limit is counted as it streams
            yield b'{"query": "'
            for _ in range(10):
                yield b"y" * 500
            yield b'"}'

        r = c.post("/v1/search", content=chunked(), headers={"content-type": "application/json"})
        assert r.status_code == 413


def test_health_ready_and_metrics(tight: str) -> None:
    with httpx.Client(base_url=tight) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        assert c.get("/readyz").json() == {"status": "ready"}
        metrics = c.get("/metrics").text
    assert 'strongroom_http_requests_total{method="GET",route="/healthz",status="200"}' in metrics
    assert "strongroom_retrieval_seconds_bucket" in metrics
    assert "strongroom_ingest_pages_total" in metrics


def test_errors_are_json_without_stack_traces(tight: str, provider: Provider) -> None:
    with _client(tight, provider, "sloppy", ["readers"]) as c:
        for r in (
            c.post("/v1/search", json={"query": ""}),
            c.post("/v1/search", json={"query": "x", "k": 0}),
            c.post("/v1/search", content=b"{not json", headers={"content-type": "application/json"}),
            c.post("/v1/search", json={"query": "x", "as_of": "yesterday"}),
            c.get("/v1/nope"),
        ):
            assert r.status_code in {404, 422}
            assert set(r.json()) == {"error"}
            assert "Traceback" not in r.text


def test_dev_mode_is_explicit_and_loud(tmp_path: Path, provider: Provider, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(home=tmp_path, embedder="hash")
    with caplog.at_level(logging.WARNING, logger="strongroom.api"):
        app = create_app(
            settings,
            service_settings(provider, dev_mode=True, dev_groups=["readers", "public"]),
            embedder=HashEmbedder(64),
        )
    assert any("DEVELOPMENT MODE" in r.getMessage() for r in caplog.records)
    with live_server(app) as url, httpx.Client(base_url=url) as c:
        assert c.post("/v1/search", json={"query": "x"}).status_code == 200
