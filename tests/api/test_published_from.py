"""``published_from`` over HTTP: ``/v1/search``, ``/v1/ask``, a conversation's ask and the
OpenAI-compatible chat take it; a version published before it never appears, a restricted
reader still gets a full top-k of what it may read, it is refused after ``as_of`` (422),
and the audit record keeps it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from strongroom.api import create_app
from strongroom.config import Settings
from strongroom.ingest.pipeline import IngestOptions, ingest
from strongroom.runtime import open_runtime
from strongroom.testing import HashEmbedder
from tests.api.conftest import audit_records, service_settings
from tests.api.live import live_server
from tests.auth.oidc_provider import Provider

OLD = datetime(2022, 3, 1, tzinfo=UTC)
NEW = datetime(2024, 5, 1, tzinfo=UTC)
BOUND = "2023-01-01"
#: (marker, ACL, published). Every text says "quarterly revenue"; the old desk notes say it
#: most, so a filter applied after top-k would find only them.
CORPUS = [
    *((f"olddesk{i}", "desk", OLD) for i in range(12)),
    *((f"newdesk{i}", "desk", NEW) for i in range(3)),
    *((f"newpublic{i}", "public", NEW) for i in range(12)),
]


def text(marker: str) -> str:
    extra = " Quarterly revenue, quarterly revenue, revenue again." if marker.startswith("old") else ""
    return f"{marker} quarterly report\n\nThe {marker} quarterly revenue rose in the quarter.{extra}\n"


@dataclass
class Site:
    url: str
    provider: Provider

    def client(self, groups: list[str]) -> httpx.Client:
        token = self.provider.token(sub="ana", groups=groups)
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, provider: Provider) -> Iterator[Site]:
    home = tmp_path_factory.mktemp("home")
    files = tmp_path_factory.mktemp("docs")
    settings = Settings(home=home, embedder="hash")
    runtime = open_runtime(settings, HashEmbedder(64))
    try:
        for marker, acl, published in CORPUS:
            path = files / f"{marker}.txt"
            path.write_text(text(marker))
            options = IngestOptions(acl=frozenset({acl}), published=published, source=f"{marker}.txt")
            assert ingest([path], runtime.store, runtime.embedder, options).ingested == 1
    finally:
        runtime.close()
    app = create_app(settings, service_settings(provider), embedder=HashEmbedder(64))
    with live_server(app) as url:
        yield Site(url, provider)


def sources(hits: list[dict[str, object]]) -> list[str]:
    return [Path(str(h["source"])).stem for h in hits]


def test_search_is_bounded_inside_the_index_and_fills_top_k_for_a_restricted_reader(site: Site) -> None:
    with site.client(["readers", "desk"]) as desk:
        unbounded = desk.post("/v1/search", json={"query": "quarterly revenue", "k": 3})
        assert unbounded.status_code == 200, unbounded.text
        assert all(s.startswith("olddesk") for s in sources(unbounded.json()["hits"]))  # the bound matters
        r = desk.post("/v1/search", json={"query": "quarterly revenue", "k": 3, "published_from": BOUND})
        assert r.status_code == 200, r.text
        hits = r.json()["hits"]
        assert sorted(sources(hits)) == ["newdesk0", "newdesk1", "newdesk2"]  # a full top-k, none public
        r = desk.post("/v1/search", json={"query": "quarterly revenue", "k": 50, "published_from": BOUND})
        hits = r.json()["hits"]
        assert set(sources(hits)) == {"newdesk0", "newdesk1", "newdesk2"}
        assert all(datetime.fromisoformat(h["published_at"]) >= NEW for h in hits)
    with site.client(["readers", "desk", "public"]) as both:
        r = both.post("/v1/search", json={"query": "quarterly revenue", "k": 15, "published_from": BOUND})
        assert len(r.json()["hits"]) == 15
        assert not any(s.startswith("old") for s in sources(r.json()["hits"]))


def test_ask_conversation_and_chat_take_the_bound(site: Site) -> None:
    question = {"question": "How did quarterly revenue do?", "published_from": BOUND}
    with site.client(["readers", "desk"]) as desk:
        r = desk.post("/v1/ask", json=question)
        assert r.status_code == 200, r.text
        cited = {Path(c["source"]).stem for c in r.json()["citations"]}
        assert cited and cited <= {"newdesk0", "newdesk1", "newdesk2"}
        cid = desk.post("/v1/conversations", json={}).json()["conversation_id"]
        r = desk.post(f"/v1/conversations/{cid}/ask", json=question)
        assert r.status_code == 200, r.text
        cited = {Path(c["source"]).stem for c in r.json()["answer"]["citations"]}
        assert cited and cited <= {"newdesk0", "newdesk1", "newdesk2"}
        chat = {
            "model": "strongroom-rag",
            "messages": [{"role": "user", "content": question["question"]}],
            "published_from": BOUND,
        }
        r = desk.post("/v1/chat/completions", json=chat)
        assert r.status_code == 200, r.text
        cited = {Path(c["source"]).stem for c in r.json()["citations"]}
        assert cited and cited <= {"newdesk0", "newdesk1", "newdesk2"}


def test_a_bound_after_as_of_is_a_422_and_the_audit_keeps_the_bound(site: Site) -> None:
    with site.client(["readers", "desk"]) as desk:
        for path, body in (
            ("/v1/search", {"query": "revenue"}),
            ("/v1/ask", {"question": "revenue?"}),
        ):
            r = desk.post(path, json={**body, "published_from": "2024-02-01", "as_of": "2024-01-31"})
            assert r.status_code == 422, r.text
            assert "published_from" in r.json()["error"]["message"]
            r = desk.post(path, json={**body, "published_from": "next week"})
            assert r.status_code == 422 and "published_from" in r.json()["error"]["message"]
        assert desk.post("/v1/search", json={"query": "zzz", "published_from": BOUND}).status_code == 200
    with site.client(["admins"]) as admin:
        records = audit_records(admin)
    searched = [r for r in records if r["action"] == "search" and r["query"] == "zzz"]
    assert searched and searched[-1]["filters"]["published_from"] == "2023-01-01T00:00:00+00:00"
    refused = [r for r in records if r["action"] in ("search", "ask") and r["outcome"] == "error"]
    assert sum(r["filters"].get("published_from") == "2024-02-01" for r in refused) == 2  # as asked
