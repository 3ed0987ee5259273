"""Rate limits shared through a real Redis by two replicas, and request timeouts, over HTTP."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi.responses import StreamingResponse

from strongroom.api import create_app
from strongroom.config import Settings
from strongroom.testing import HashEmbedder
from tests.api.conftest import service_settings
from tests.api.live import live_server
from tests.auth.oidc_provider import Provider
from tests.redis_service import REDIS_URL, needs_redis


def _client(url: str, provider: Provider, sub: str) -> httpx.Client:
    token = provider.token(sub=sub, groups=["readers"])
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


@pytest.mark.integration
@needs_redis
def test_two_replicas_share_one_budget_in_redis(tmp_path: Path, provider: Provider) -> None:
    config = service_settings(provider, rate_per_s=0.2, rate_burst=4, rate_limit_redis_url=REDIS_URL)
    home = tmp_path / "home"
    first = create_app(Settings(home=home, embedder="hash"), config, embedder=HashEmbedder(64))
    second = create_app(Settings(home=home, embedder="hash"), config, embedder=HashEmbedder(64))
    sub = f"shared-{uuid.uuid4().hex[:8]}"  # a fresh bucket, whatever earlier runs left in Redis
    with live_server(first) as a, live_server(second) as b:
        with _client(a, provider, sub) as ca, _client(b, provider, sub) as cb:
            codes = [c.post("/v1/search", json={"query": "x"}).status_code for c in (ca, cb, ca, cb)]
            refused = cb.post("/v1/search", json={"query": "x"})
        with _client(b, provider, f"other-{uuid.uuid4().hex[:8]}") as other:
            assert other.post("/v1/search", json={"query": "x"}).status_code == 200
    assert codes == [200, 200, 200, 200]  # the burst of 4 is spent across both replicas ...
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1  # ... so the 5th is refused


def test_an_unreachable_shared_limit_refuses_calls(tmp_path: Path, provider: Provider) -> None:
    config = service_settings(provider, rate_limit_redis_url="redis://127.0.0.1:1/0")  # nothing listens on port 1
    app = create_app(Settings(home=tmp_path / "home", embedder="hash"), config, embedder=HashEmbedder(64))
    with live_server(app) as url, _client(url, provider, "anyone") as c:
        r = c.post("/v1/search", json={"query": "x"})
    assert r.status_code == 503
    assert "Redis" in r.json()["error"]["message"] and "127.0.0.1:1" in r.json()["error"]["message"]


def test_slow_requests_time_out_but_started_streams_run_on(tmp_path: Path, provider: Provider) -> None:
    config = service_settings(provider, request_timeout_s=0.5)
    app = create_app(Settings(home=tmp_path / "home", embedder="hash"), config, embedder=HashEmbedder(64))

    @app.get("/test/slow")
    async def slow() -> dict[str, str]:
        await asyncio.sleep(5)
        return {"late": "yes"}

    @app.get("/test/stream")
    async def stream() -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            for i in range(4):
                yield f"{i}\n".encode()
                await asyncio.sleep(0.3)

        return StreamingResponse(body(), media_type="text/plain")

    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        r = c.get("/test/slow")
        assert r.status_code == 504 and r.json()["error"]["type"] == "timeout"
        assert "0.5 s" in r.json()["error"]["message"]
        assert c.get("/test/stream").text == "0\n1\n2\n3\n"  # 1.2 s in all, but it started at once
        assert "strongroom_request_timeouts_total 1.0" in c.get("/metrics").text
