"""Attack: hostile files (issue 15, "Why"). A 570 KB ``.docx`` expanding to 200 MB of XML took the
server to 3.5 GB and was still parsing after 150 s; SIGTERM did not stop the server; after a
restart the job showed ``running`` forever and its upload stayed in the temporary folder.

A zip bomb and an XML (entity) bomb uploaded over HTTP must each fail with a reason the uploader
can act on, while the server keeps answering; SIGTERM during an upload stops the real
``strongroom serve`` and leaves no job running and no upload behind.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.attack.conftest import Server, serve, wait_for
from tests.auth.oidc_provider import Provider
from tests.ingest.hostile_files import entity_bomb_docx, lying_header_docx, zip_bomb_docx

pytestmark = pytest.mark.integration

INGESTER = ["desk", "ingesters"]
READER = ["desk", "readers"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, provider: Provider) -> Iterator[Server]:
    with serve(tmp_path_factory.mktemp("hostile") / "home", provider) as s:
        job = s.upload(INGESTER, "note.txt", b"Desk note. The plover fund returned 7% in May.\n", acl="desk")
        assert job["status"] == "done"
        yield s


BOMBS: dict[str, tuple[Callable[[], bytes], tuple[str, ...]]] = {
    "zip bomb (200 MB of XML)": (zip_bomb_docx, ("zip bomb", "expands to")),
    "zip bomb with a forged size header": (lying_header_docx, ("forged zip", "zip bomb")),
    "XML entity bomb": (entity_bomb_docx, ("entit",)),
}


def _job(server: Server, job_id: str) -> dict[str, Any]:
    with server.client(INGESTER, sub="ingester") as c:
        r = c.get(f"/v1/jobs/{job_id}")
    assert r.status_code == 200, r.text
    job: dict[str, Any] = r.json()
    return job


def _answers(server: Server) -> bool:
    with server.client(READER, sub="reader") as c:
        health = c.get("/healthz")
        search = c.post("/v1/search", json={"query": "plover fund"})
    return health.status_code == 200 and search.status_code == 200 and bool(search.json()["hits"])


@pytest.mark.parametrize("bomb", list(BOMBS))
def test_http_a_decompression_bomb_fails_with_a_clear_reason_and_the_server_stays_up(server: Server, bomb: str) -> None:
    build, reasons = BOMBS[bomb]
    data = build()
    assert len(data) < 2 * 1024 * 1024  # small on the wire
    queued = server.upload(INGESTER, "quarterly.docx", data, wait=False, acl="desk")
    assert _answers(server)  # while the bomb is being handled

    def settled() -> dict[str, Any] | None:
        job = _job(server, queued["job_id"])
        return job if job["status"] not in ("queued", "running") else None

    job = wait_for(settled, f"the {bomb} job to settle", timeout_s=120)
    assert job["status"] == "failed", job
    [entry] = job["files"]
    assert entry["status"] == "failed" and any(word in entry["error"] for word in reasons), entry["error"]
    assert "quarterly.docx" in entry["error"] and "Traceback" not in entry["error"]
    assert _answers(server)


# -- SIGTERM during an upload: the real `strongroom serve` in its own process -------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _long_report() -> bytes:
    """Plain text that takes seconds to ingest (many pages and chunks)."""
    page = "".join(f"Quarterly revenue of segment {i} rose to {i},000 thousand dollars.\n" for i in range(400))
    return "\f".join(page for _ in range(120)).encode()


def test_sigterm_during_an_upload_stops_the_server_and_leaves_no_job_running(tmp_path: Path) -> None:
    """Issue 15: SIGTERM did not stop the server; the job showed running forever and its upload stayed."""
    home, port = tmp_path / "home", _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("STRONGROOM_")},
        "STRONGROOM_EMBEDDER": "hash",
        "STRONGROOM_SHUTDOWN_GRACE_S": "5",
    }
    args = [sys.executable, "-m", "strongroom.cli", "serve", "--dev", "--home", str(home), "--port", str(port)]
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            try:
                return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, "the server to start")
        r = httpx.post(f"{url}/v1/documents", files={"file": ("report.txt", _long_report())}, timeout=60)
        assert r.status_code == 202 and r.json()["status"] == "running", r.text
        job_id = r.json()["job_id"]
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)  # it stops (the grace period is 5 s; the deadline is generous)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    with sqlite3.connect(home / "catalog.sqlite3") as db:
        (status,) = db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
    assert status in ("interrupted", "done"), status  # never left "running"
    assert list((home / "uploads").iterdir()) == []  # the upload's temporary copy is gone
