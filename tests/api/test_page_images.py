"""A cited page as an image and its highlight, over real HTTP: entitled, audited, refused cleanly.

The site draws under a 3 s limit (STRONGROOM_RENDER_TIMEOUT_S): a real page draws in tens of
milliseconds, and the hostile page (tests/ingest/hostile_files.py) in minutes.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from strongroom.api import create_app
from strongroom.bus import open_bus
from strongroom.config import Settings
from strongroom.ingest.pipeline import IngestOptions, ingest
from strongroom.runtime import open_runtime
from strongroom.service.worker import run_worker
from strongroom.testing import HashEmbedder
from tests.api.conftest import audit_records, service_settings
from tests.api.live import live_server
from tests.auth.oidc_provider import Provider
from tests.ingest import hostile_files as hostile
from tests.ingest.pdf_fixtures import make_pdf
from tests.ingest.test_pdf_pages import decode_png

AAPL = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "sec10q" / "docs" / "2023 Q3 AAPL.pdf"
ANALYST = ["readers", "ingesters", "research"]
OUTSIDER = ["readers", "public"]  # a reader, but not of research documents
LEGACY = make_pdf(["Legacy filing\nNet income 19,881"])  # ingested before originals were kept
TAMPERED = make_pdf(["Tampered filing\nNet income 91,881"])


@dataclass
class Site:
    url: str
    provider: Provider
    home: Path
    versions: dict[str, tuple[str, str]]  # name -> (document id, version id)

    def client(self, groups: list[str], sub: str = "ana") -> httpx.Client:
        token = self.provider.token(sub=sub, groups=groups)
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)

    def path(self, name: str, page: int, what: str = "") -> str:
        document_id, version_id = self.versions[name]
        return f"/v1/documents/{document_id}/versions/{version_id}/pages/{page}" + (f"/{what}" if what else "")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, provider: Provider) -> Iterator[Site]:
    if not AAPL.is_file():
        pytest.skip(f"the sec10q corpus is not at {AAPL.parent}")
    home = tmp_path_factory.mktemp("home")
    files = tmp_path_factory.mktemp("files")
    settings = Settings(home=home, embedder="hash", render_timeout_s=3)
    (files / "legacy.pdf").write_bytes(LEGACY)
    runtime = open_runtime(settings, HashEmbedder(64))
    try:  # a library caller that keeps no original, as strongroom did before
        assert ingest(
            [files / "legacy.pdf"], runtime.store, runtime.embedder, IngestOptions(acl=frozenset({"research"}))
        ).ok
    finally:
        runtime.close()
    app = create_app(settings, service_settings(provider), embedder=HashEmbedder(64))
    versions: dict[str, tuple[str, str]] = {}
    with live_server(app) as url:
        site = Site(url, provider, home, versions)
        uploads = {
            "aapl.pdf": AAPL.read_bytes(),
            "notes.txt": b"Quarterly notes\n\nNet sales rose.\n",
            "tampered.pdf": TAMPERED,
            "stall.pdf": hostile.pdf_render_stall(),  # parses at once, takes minutes to draw
        }
        with site.client(ANALYST, sub="uploader") as c:  # the upload path: the platform keeps originals
            for name, data in uploads.items():
                r = c.post("/v1/documents", files={"file": (name, data)}, data={"acl": "research", "wait": "true"})
                assert r.status_code == 202 and r.json()["status"] == "done", r.text
                (entry,) = r.json()["files"]
                versions[name] = (entry["document_id"], entry["version_id"])
            listed = c.get("/v1/documents").json()["documents"]
        legacy = next(d for d in listed if d["source"].endswith("legacy.pdf"))
        versions["legacy.pdf"] = (legacy["document_id"], legacy["current"]["version_id"])
        tampered = home / "originals" / hashlib.sha256(TAMPERED).hexdigest()
        tampered.write_bytes(tampered.read_bytes().replace(b"91,881", b"19,881"))
        yield site


def _span(site: Site, c: httpx.Client, needle: str) -> tuple[int, int]:
    text: str = c.get(site.path("aapl.pdf", 4)).json()["text"]
    start = text.index(needle)
    return start, start + len(needle)


def test_the_cited_figure_is_highlighted_over_its_ink_on_the_page_image(site: Site) -> None:
    with site.client(ANALYST) as c:
        r = c.get(site.path("aapl.pdf", 4, "image"))
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "image/png"
        assert r.headers["cache-control"] == "private, no-store"
        pixels = decode_png(r.content)
        row = _span(site, c, "Total net sales 81,797")
        figure = (row[1] - len("81,797"), row[1])
        h = c.get(site.path("aapl.pdf", 4, "highlight"), params={"start": figure[0], "end": figure[1]})
        assert h.status_code == 200, h.text
        assert h.headers["cache-control"] == "private, no-store"
        (box,) = h.json()["boxes"]
        (label,) = c.get(site.path("aapl.pdf", 4, "highlight"), params={"start": row[0], "end": row[0] + 15}).json()[
            "boxes"
        ]
    x0, y0, x1, y1 = box
    assert label[1] < (y0 + y1) / 2 < label[3] and x0 > label[2]  # on the label's line, to its right
    height, width = pixels.shape[:2]
    under = pixels[int(y0 * height) : int(y1 * height) + 1, int(x0 * width) : int(x1 * width) + 1]
    assert under.min() < 80  # the highlight is over ink


def test_a_reader_outside_the_acl_gets_404_for_image_and_highlight(site: Site) -> None:
    with site.client(OUTSIDER, sub="bo") as c:
        image = c.get(site.path("aapl.pdf", 4, "image"))
        spot = c.get(site.path("aapl.pdf", 4, "highlight"), params={"start": 0, "end": 10})
        bad_span = c.get(site.path("aapl.pdf", 4, "highlight"), params={"start": 0, "end": 10**6})
        absent = c.get(site.path("aapl.pdf", 4, "image").replace(site.versions["aapl.pdf"][1], "f" * 64))
    for r in (image, spot, bad_span, absent):
        assert r.status_code == 404, r.text
    assert image.json() == absent.json()  # the same answer as a version that does not exist


def test_a_span_outside_the_page_text_is_422(site: Site) -> None:
    with site.client(ANALYST) as c:
        length = len(c.get(site.path("aapl.pdf", 4)).json()["text"])
        for start, end in ((5, 5), (7, 3), (0, length + 1), (-1, 4)):
            r = c.get(site.path("aapl.pdf", 4, "highlight"), params={"start": start, "end": end})
            assert r.status_code == 422, (start, end, r.text)
        assert c.get(site.path("aapl.pdf", 4, "highlight"), params={"start": 0, "end": length}).status_code == 200


def test_a_version_that_is_not_a_pdf_has_no_image(site: Site) -> None:
    with site.client(ANALYST) as c:
        r = c.get(site.path("notes.txt", 1, "image"))
        assert c.get(site.path("notes.txt", 1)).status_code == 200  # its text is there
    assert r.status_code == 404 and "for PDFs only" in r.json()["error"]["message"]


def test_a_version_ingested_before_originals_were_kept_is_404_with_a_reason(site: Site) -> None:
    with site.client(ANALYST) as c:
        r = c.get(site.path("legacy.pdf", 1, "image"))
        spot = c.get(site.path("legacy.pdf", 1, "highlight"), params={"start": 0, "end": 6})
    assert r.status_code == 404 and "was not kept" in r.json()["error"]["message"]
    assert spot.status_code == 404


def test_a_tampered_original_is_refused_not_drawn_and_recorded(site: Site) -> None:
    with site.client(ANALYST) as c:
        r = c.get(site.path("tampered.pdf", 1, "image"))
    assert r.status_code == 500
    assert r.headers["content-type"].startswith("application/json")  # no image bytes
    assert "quote request id" in r.json()["error"]["message"]  # the operator's detail is in the log
    with site.client(["admins"], sub="auditor") as admin:
        records = audit_records(admin)
    target = "/".join(site.versions["tampered.pdf"]) + "/1"
    (refused,) = [e for e in records if e["action"] == "documents.page.image" and e["target"].endswith(target)]
    assert refused["outcome"] == "error" and "does not match its SHA-256 name" in refused["detail"]


def test_a_page_that_stalls_the_renderer_is_refused_and_the_server_goes_on(site: Site) -> None:
    with site.client(ANALYST) as c:
        r = c.get(site.path("stall.pdf", 1, "image"))
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/json")
        assert r.json()["error"]["message"].startswith("page 1: drawing it took over 3 s;")
        assert "Read the page's text instead" in r.json()["error"]["message"]
        # the server goes on: the page's text, its highlight (no drawing needed) and another page's image
        assert c.get(site.path("stall.pdf", 1)).json()["text"] == "Quarterly figures"
        spot = c.get(site.path("stall.pdf", 1, "highlight"), params={"start": 0, "end": 9})
        assert spot.status_code == 200 and len(spot.json()["boxes"]) == 1
        assert c.get(site.path("aapl.pdf", 3, "image")).status_code == 200
    with site.client(["admins"], sub="auditor") as admin:
        records = audit_records(admin)
    target = "/".join(site.versions["stall.pdf"]) + "/1"
    (refused,) = [e for e in records if e["action"] == "documents.page.image" and e["target"].endswith(target)]
    assert refused["outcome"] == "error" and "drawing it took over 3 s" in refused["detail"]


def test_image_and_highlight_reads_are_audited_like_page_reads(site: Site) -> None:
    with site.client(ANALYST, sub="cora") as c:
        assert c.get(site.path("aapl.pdf", 2, "image")).status_code == 200
        assert c.get(site.path("aapl.pdf", 2, "highlight"), params={"start": 0, "end": 5}).status_code == 200
    with site.client(OUTSIDER, sub="dan") as c:
        assert c.get(site.path("aapl.pdf", 2, "image")).status_code == 404
    with site.client(["admins"], sub="auditor") as admin:
        records: list[dict[str, Any]] = audit_records(admin)
    target = "/".join(site.versions["aapl.pdf"]) + "/2"
    seen = {(e["principal"], e["action"], e["outcome"]) for e in records if e["target"] == target}
    assert ("cora", "documents.page.image", "ok") in seen
    assert ("cora", "documents.page.highlight", "ok") in seen
    assert ("dan", "documents.page.image", "not_found") in seen


def test_deleting_a_document_removes_its_original(site: Site) -> None:
    data = make_pdf(["Withdrawn filing\nNet income 1,234"])
    with site.client([*ANALYST, "admins"], sub="erin") as c:
        r = c.post("/v1/documents", files={"file": ("withdrawn.pdf", data)}, data={"acl": "research", "wait": "true"})
        (entry,) = r.json()["files"]
        kept = site.home / "originals" / entry["version_id"]
        assert kept.is_file()
        assert c.delete(f"/v1/documents/{entry['document_id']}").status_code == 200
    assert not kept.exists()


def test_a_pdf_ingested_by_a_bus_worker_keeps_its_original(tmp_path: Path, provider: Provider) -> None:
    settings = Settings(home=tmp_path / "home", embedder="hash")
    bus_url = f"sqlite://{tmp_path}/bus.sqlite3"
    config = service_settings(
        provider, bus_url=bus_url, bus_stream="strongroom:ingest", upload_dir=str(tmp_path / "up")
    )
    app = create_app(settings, config, embedder=HashEmbedder(64))
    data = make_pdf(["Queued filing\nNet income 4,321"])
    token = provider.token(sub="ina", groups=ANALYST)
    with live_server(app) as url, httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as c:
        bus = open_bus(bus_url, stream="strongroom:ingest", reclaim_idle_s=5)
        stop = threading.Event()

        def work() -> None:  # the worker's own runtime: the platform's settings name the home
            runtime = open_runtime(settings, HashEmbedder(64))
            try:
                run_worker(bus, runtime, "w1", stop=stop, block_s=0.2)
            finally:
                runtime.close()

        worker = threading.Thread(target=work)
        worker.start()
        try:
            job = c.post("/v1/documents", files={"file": ("q.pdf", data)}, data={"acl": "research", "wait": "true"})
        finally:
            stop.set()
            worker.join(timeout=30)
            bus.close()
        (entry,) = job.json()["files"]
        assert entry["status"] == "ingested", job.text
        image = c.get(f"/v1/documents/{entry['document_id']}/versions/{entry['version_id']}/pages/1/image")
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    assert (tmp_path / "home" / "originals" / hashlib.sha256(data).hexdigest()).is_file()
