"""The properties of ``test_properties`` over real HTTP: no read endpoint leaks, and
everything admitted is found.

One store holds a rich, fixed history, built through the application layer beside the
reference model (so each write is checked as it happens: refused writes change nothing and
are audited; deleted bytes are ingested again; versions are published and learned at
different times, some in the future). Its second half is written by another process while
a real uvicorn server, already warm, serves the store: the server must see each write, ACL
change and deletion at once. A real OIDC provider mints tokens with any groups. Hypothesis
chooses the caller's groups, both clocks (datetimes, ISO text, bare dates, the far future or
absent), a document type or metadata filter and the questions, and every read endpoint must
return exactly what the model admits.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import event, given, note, settings
from hypothesis import strategies as st

from strongroom.api import create_app
from strongroom.config import Settings
from strongroom.service import Platform
from strongroom.testing import HashEmbedder
from strongroom.types import sha256_hex
from tests.api.conftest import service_settings
from tests.api.live import live_server
from tests.auth.oidc_provider import Provider, serve_provider
from tests.service.rules_history import (
    History,
    Query,
    query_st,
    start,
)
from tests.service.rules_model import (
    EVERY_ROLE,
    GROUPS,
    NARROW,
    PROPERTIES,
    SCRATCH,
    Again,
    Delete,
    Ingest,
    Model,
    MVersion,
    SetAcl,
    Who,
    Write,
    doc_id,
    ingested_text,
    marker,
)
from tests.service.test_properties import (
    EVERY_WRITE,
    OPS,
    L,
    P,
    R,
)

pytestmark = pytest.mark.integration

DEALS = frozenset({"deals"})
#: written before the server starts: every kind of write (alder, birch), the two clocks (cedar)
BEFORE = [
    *EVERY_WRITE,
    Write("cedar", "amber", P, -400, -400),
    Write("cedar", "cobalt", P, -30, -3),  # published a month ago, learned three days ago
    Write("cedar", "indigo", R, -10, -10),  # public readers lose cedar
    Ingest(Who(R, EVERY_ROLE), "cedar", "amber", R, -5),  # the current one, and not a "document"
]
#: written by another process while the server runs (it must see each change at once)
WHILE_SERVING = [
    Ingest(Who(P | R, EVERY_ROLE), "dogwood", "amber", P, 1),  # published tomorrow
    Ingest(Who(P, EVERY_ROLE), "dogwood", "cobalt", None, -1),
    Write("elm", "amber", L, -1, 30),  # learned next month
    Write("elm", "cobalt", OPS | L, -400, -30),
    Write("fir", "amber", DEALS, -200, -200),
    Ingest(Who(P, EVERY_ROLE), "fir", "cobalt", DEALS, -1),  # refused: public may not read fir
    SetAcl(Who(frozenset(), EVERY_ROLE, "all"), 1, P | DEALS),  # birch, which the server has read
    Delete(Who(frozenset(), EVERY_ROLE, "all"), 0),  # alder, deleted once more
    Again(Who(R, EVERY_ROLE), 0, -1, deleted=True),  # and its bytes ingested once more
]
DOCUMENTS = ("alder", "birch", "cedar", "dogwood", "elm", "fir")


@dataclass
class Served:
    url: str
    provider: Provider
    model: Model
    t0: datetime

    def client(self, groups: frozenset[str]) -> httpx.Client:
        token = self.provider.token(sub="prop-reader", groups=["readers", *sorted(groups)])
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _warm_up(served: Served) -> None:
    """Read as a few callers, so the server holds indexes, masks and versions in memory
    before another process changes the store under it."""
    for groups in (frozenset(GROUPS), P, R | OPS):
        with served.client(groups) as c:
            for clocks in ({}, {"as_of": (served.t0 - timedelta(days=20)).isoformat()}):
                assert c.post("/v1/search", json={"query": "harbor ledger", "k": 50, **clocks}).status_code == 200
                assert c.get("/v1/documents", params=clocks).status_code == 200
                for v in served.model.live():
                    c.get(f"/v1/documents/{doc_id(v.doc)}/versions/{v.id}/pages/1", params=clocks)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with tempfile.TemporaryDirectory(prefix="sr-props-http-", dir=SCRATCH) as tmp:
        home, files = Path(tmp) / "home", Path(tmp) / "files"
        files.mkdir()
        settings = Settings(home=home, embedder="hash")
        with Platform.open(settings, embedder=HashEmbedder(64)) as platform:
            history = History(platform, files, start(), events=False)
            for op in BEFORE:
                history.run(op)
        with serve_provider() as provider:
            app = create_app(settings, service_settings(provider), embedder=HashEmbedder(64))
            with live_server(app) as url:
                live = Served(url, provider, history.model, history.t0)
                _warm_up(live)
                with Platform.open(settings, embedder=HashEmbedder(64)) as other:
                    history.platform, history.store = other, other.runtime.store  # type: ignore[assignment]
                    for op in WHILE_SERVING:
                        history.run(op)
                model, t0 = history.model, history.t0
                # as rich as it says: deleted bytes ingested again (twice), an ACL changed while
                # serving, versions published and learned in the future, and learned late
                assert {v.doc for v in model.live()} == set(DOCUMENTS)
                assert sum(v.deleted for v in model.versions if v.doc == "alder" and len(v.pages) == 1) == 2
                assert model.live_id(ingested_version("alder", "amber")) is not None
                assert all(v.acl == P | DEALS for v in model.live("birch"))
                assert any(v.published > t0 for v in model.live()) and any(v.ingested > t0 for v in model.live())
                assert any(v.published < v.ingested < t0 - timedelta(days=1) for v in model.live())
                yield live


def ingested_version(doc: str, variant: str) -> str:
    return sha256_hex(ingested_text(doc, variant).encode())


def _clocks(query: Query, t0: datetime) -> dict[str, str]:
    values = {"as_of": query.as_of.http(t0), "known_at": query.known_at.http(t0)}
    return {k: v for k, v in values.items() if v is not None}


def _chat(client: httpx.Client, question: str, clocks: dict[str, Any], stream: bool) -> tuple[str, list[Any]]:
    body = {"model": "strongroom-rag", "stream": stream, "k": 3, "messages": [{"role": "user", "content": question}]}
    r = client.post("/v1/chat/completions", json={**body, **clocks})
    assert r.status_code == 200, r.text
    if not stream:
        data = r.json()
        return data["choices"][0]["message"]["content"], data["citations"]
    text, citations = "", []
    for line in r.text.splitlines():
        if line.startswith("data: {"):
            chunk = json.loads(line[len("data: ") :])
            text += chunk["choices"][0]["delta"].get("content", "")
            citations = chunk.get("citations", citations)
    return text, citations


def _admitted(what: str, version_id: str, acl: list[str] | None, currents: dict[str, MVersion]) -> MVersion:
    allowed = currents.get(version_id)
    assert allowed is not None, f"{what}: returned version {version_id[:12]}, not admitted"
    assert acl is None or set(acl) == allowed.acl, f"{what}: version {version_id[:12]} shown with ACL {acl}"
    return allowed


@settings(PROPERTIES, max_examples=60)
@given(query=query_st, words=st.lists(st.sampled_from(DOCUMENTS), max_size=3, unique=True), stream=st.booleans())
def test_no_endpoint_leaks_and_everything_admitted_is_found(
    served: Served, query: Query, words: list[str], stream: bool
) -> None:
    """Every read endpoint (search, ask, chat completions streamed or not, the document list,
    a document, every page of every version ever written) at random clocks and groups."""
    note(f"query: {query!r}, words: {words!r}, stream: {stream}")  # this hypothesis prints no arguments
    model, t0 = served.model, served.t0
    clocks = _clocks(query, t0)
    groups = query.groups_in(model)
    expected = model.view(groups, query.as_of.instant(t0), query.known_at.instant(t0))
    currents = {seen.current.id: seen.current for seen in expected.values()}
    what = f"{sorted(groups)} {clocks}"
    event(f"visible documents: {len(expected)}")
    with served.client(groups) as c:
        r = c.get("/v1/documents", params={"limit": 1000, **clocks})
        assert r.status_code == 200, r.text
        for d in r.json()["documents"]:
            _admitted(f"{what} GET /v1/documents", d["current"]["version_id"], d["current"]["acl"], currents)
        assert {d["document_id"] for d in r.json()["documents"]} == set(expected), f"{what}: a document is missing"

        missing = c.get(f"/v1/documents/{'0' * 32}", params=clocks)
        assert missing.status_code == 404
        for doc in sorted({v.doc for v in model.versions}):
            r = c.get(f"/v1/documents/{doc_id(doc)}", params=clocks)
            seen = expected.get(doc_id(doc))
            if seen is None:
                assert (r.status_code, r.json()) == (404, missing.json()), f"{what}: GET {doc} leaked"
                continue
            assert r.status_code == 200, f"{what}: GET {doc} hidden"
            body = r.json()
            assert body["current"]["version_id"] == seen.current.id
            assert [v["version_id"] for v in body["versions"]] == [v.id for v in seen.history]

        for version_id in dict.fromkeys(v.id for v in model.versions):
            live = model.live_id(version_id)
            doc = next(v.doc for v in model.versions if v.id == version_id)
            seen = expected.get(doc_id(doc))
            admitted = live is not None and seen is not None and any(v.id == version_id for v in seen.history)
            for page in range(1, (len(live.pages) if live else 2) + 2):
                r = c.get(f"/v1/documents/{doc_id(doc)}/versions/{version_id}/pages/{page}", params=clocks)
                if live is not None and admitted and page <= len(live.pages):
                    assert r.status_code == 200 and r.json()["text"] == live.pages[page - 1], f"{what}: page hidden"
                else:
                    assert r.status_code == 404, f"{what}: page {page} of {doc} version {version_id[:12]} leaked"
                    assert r.json() == missing.json()

        # the POST endpoints narrow by document type and metadata too (chat: metadata only)
        doc_types, filters = NARROW[query.narrow]
        narrowed = model.view(groups, query.as_of.instant(t0), query.known_at.instant(t0), narrow=query.narrow)
        currents = {seen.current.id: seen.current for seen in narrowed.values()}
        lens = {**clocks, "doc_types": sorted(doc_types), "filters": filters}
        chat_narrow = "" if doc_types else query.narrow
        chatted = model.view(groups, query.as_of.instant(t0), query.known_at.instant(t0), narrow=chat_narrow)
        chat_currents = {seen.current.id: seen.current for seen in chatted.values()}
        what = f"{what} narrow={query.narrow!r}"

        for narrow, (types, metadata) in NARROW.items():  # every narrowing: the current version decides
            seen_by = model.view(groups, query.as_of.instant(t0), query.known_at.instant(t0), narrow=narrow)
            r = c.post(
                "/v1/search",
                json={"query": "harbor ledger", "k": 50, "doc_types": sorted(types), "filters": metadata, **clocks},
            )
            assert r.status_code == 200, r.text
            hits = r.json()["hits"]
            admitted = {seen.current.id: seen.current for seen in seen_by.values()}
            for h in hits:
                version = _admitted(f"{what} search narrowed to {narrow!r}", h["version_id"], None, admitted)
                assert h["text"] in version.pages[h["page"] - 1]
            assert {h["version_id"] for h in hits} == set(admitted), f"{what} {narrow!r}: search misses a document"

        for word in dict.fromkeys(marker(doc, variant) for doc in words for variant in ("amber", "cobalt", "indigo")):
            owner = next((v for v in currents.values() if marker(v.doc, v.variant) == word), None)
            r = c.post("/v1/search", json={"query": word, "k": 3, **lens})
            assert r.status_code == 200, r.text
            for h in r.json()["hits"]:
                _admitted(f"{what} search {word}", h["version_id"], None, currents)
            texts = [h["text"] for h in r.json()["hits"] if owner and h["version_id"] == owner.id]
            assert (owner is not None) == any(word in t for t in texts), f"{what}: search {word}"

            r = c.post("/v1/ask", json={"question": word, "k": 3, **lens})
            assert r.status_code == 200, r.text
            answer = r.json()
            for cited in answer["citations"]:
                _admitted(f"{what} ask {word}", cited["version_id"], None, currents)
            assert (owner is not None) == (word in answer["answer"]), f"{what}: ask {word}"

            owner = next((v for v in chat_currents.values() if marker(v.doc, v.variant) == word), None)
            text, citations = _chat(c, word, {**clocks, "filters": filters}, stream)
            for cited in citations:
                _admitted(f"{what} chat {word}", cited["version_id"], None, chat_currents)
            assert (owner is not None) == (word in text), f"{what}: chat {word} (stream={stream})"
            if owner is not None:
                assert owner.id in {cited["version_id"] for cited in citations}
