"""Uploads queued on a bus (a real Redis, and the SQLite-file bus) and ingested by a worker,
over real HTTP."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from strongroom.api import create_app
from strongroom.bus import Bus, open_bus
from strongroom.config import Settings
from strongroom.runtime import open_runtime
from strongroom.service.worker import run_worker
from strongroom.testing import HashEmbedder
from tests.api.conftest import service_settings
from tests.api.live import live_server
from tests.auth.oidc_provider import Provider
from tests.redis_service import REDIS_URL, needs_redis

URL = REDIS_URL


@pytest.mark.integration
@needs_redis
def test_an_upload_is_queued_then_a_worker_ingests_it(tmp_path: Path, provider: Provider, stream: str) -> None:
    _upload_then_work(tmp_path, provider, URL, stream)


def test_an_upload_is_queued_on_the_sqlite_bus_then_a_worker_ingests_it(tmp_path: Path, provider: Provider) -> None:
    _upload_then_work(tmp_path, provider, f"sqlite://{tmp_path}/bus.sqlite3", "strongroom:ingest")


def _upload_then_work(tmp_path: Path, provider: Provider, bus_url: str, stream: str) -> None:
    settings = Settings(home=tmp_path / "home", embedder="hash")
    uploads = tmp_path / "shared-uploads"
    config = service_settings(provider, bus_url=bus_url, bus_stream=stream, upload_dir=str(uploads))
    app = create_app(settings, config, embedder=HashEmbedder(64))
    token = provider.token(sub="ina", groups=["ingesters", "desk"])
    note = b"Rates desk note. The 2031 senior notes pay a 4.25% coupon, issued at 99.412."
    with live_server(app) as url, httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as c:
        queued = c.post("/v1/documents", files={"file": ("note.txt", note)}, data={"acl": "desk"})
        assert queued.status_code == 202 and queued.json()["status"] == "queued"
        assert c.get("/v1/documents").json()["documents"] == []  # nothing is ingested without a worker

        bus: Bus = open_bus(bus_url, stream=stream, reclaim_idle_s=5)
        stop = threading.Event()

        def work() -> None:  # a worker on the same host, sharing the upload folder and the store
            runtime = open_runtime(settings, HashEmbedder(64))
            try:
                run_worker(bus, runtime, "w1", stop=stop, block_s=0.2)
            finally:
                runtime.close()

        worker = threading.Thread(target=work)
        worker.start()
        try:
            waited = c.post(
                "/v1/documents", files={"file": ("term.txt", b"Term sheet: notional 750,000,000.")},
                data={"acl": "desk", "wait": "true"}, timeout=60,
            )  # fmt: skip
            first = c.get(f"/v1/jobs/{queued.json()['job_id']}").json()
        finally:
            stop.set()
            worker.join(timeout=30)
            bus.close()
        assert waited.json()["status"] == "done" and waited.json()["files"][0]["status"] == "ingested"
        assert first["status"] == "done" and first["files"][0]["name"] == "note.txt"
        assert first["files"][0]["document_id"]
        hits = c.post("/v1/search", json={"query": "senior notes coupon"}).json()
        assert hits["hits"] and hits["hits"][0]["source"].endswith("/note.txt")
    assert list(uploads.iterdir()) == []  # the worker removed the uploads' private copies
