"""Attack: hostile files (issue 15, "Why"). A 570 KB ``.docx`` expanding to 200 MB of XML took the
server to 3.5 GB and was still parsing after 150 s. A zip bomb and an XML (entity) bomb uploaded
over HTTP must each fail with a reason the uploader can act on, while the server keeps answering.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

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
