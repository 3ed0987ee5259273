"""``published_from`` in the application layer: a lower bound on publication for searches,
answers and lists, parsed like ``as_of`` (a bare date is the start of that day, no zone is
UTC), refused after ``as_of``, and kept in the audit record beside the clocks (through the
sync facade, :class:`~strongroom.service.Platform`, over a real store)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from strongroom.config import Settings
from strongroom.errors import QueryError
from strongroom.service import AskRequest, DocumentsRequest, IngestRequest, Platform, SearchRequest
from strongroom.testing import HashEmbedder
from strongroom.types import Principal

READER = frozenset({"reader"})
#: source -> published (midnight UTC): every one speaks of revenue
DOCS = {
    "old1.txt": "2022-03-01",
    "old2.txt": "2022-09-01",
    "edge.txt": "2024-01-15",
    "new.txt": "2024-05-01",
}


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    files = tmp_path / "files"
    files.mkdir()
    with Platform.open(Settings(home=tmp_path / "home", embedder="hash"), embedder=HashEmbedder(64)) as p:
        admin = p.principal("root", ["public"])
        for name, published in DOCS.items():
            (files / name).write_text(f"Quarterly report\n\nRevenue of {name[:-4]} rose in the quarter.\n")
            request = IngestRequest(paths=(files / name,), acl=frozenset({"public"}), published=published)
            assert p.ingest(admin, request).ingested == 1
        yield p


ana = Principal("ana", frozenset({"public"}), READER)


def found(p: Platform, **view: object) -> set[str]:
    return {
        Path(h.version.source).name for h in p.search(ana, SearchRequest(query="quarterly revenue", k=10, **view)).hits
    }  # type: ignore[arg-type]


def test_search_sees_only_what_was_published_from_the_bound(platform: Platform) -> None:
    assert found(platform) == set(DOCS)
    assert found(platform, published_from="2023-01-01") == {"edge.txt", "new.txt"}
    # with as_of: a range
    assert found(platform, published_from="2022-06-01", as_of="2024-03-01") == {"old2.txt", "edge.txt"}
    assert found(platform, published_from="2024-05-02") == set()


def test_a_bare_date_is_the_start_of_that_day_and_no_zone_is_utc(platform: Platform) -> None:
    assert "edge.txt" in found(platform, published_from="2024-01-15")
    assert "edge.txt" in found(platform, published_from="2024-01-15T00:00:00")
    assert "edge.txt" not in found(platform, published_from="2024-01-15T00:00:01")
    assert "edge.txt" in found(platform, published_from="2024-01-15T01:00:00+02:00")  # 23:00 UTC the day before
    # from and as of the same day: that day's publications
    assert found(platform, published_from="2024-01-15", as_of="2024-01-15") == {"edge.txt"}


def test_published_from_after_as_of_is_refused_and_recorded(platform: Platform) -> None:
    with pytest.raises(QueryError, match=r"published_from .* is after as_of"):
        platform.search(ana, SearchRequest(query="revenue", published_from="2024-02-01", as_of="2024-01-31"))
    with pytest.raises(QueryError, match=r"published_from .* is after now"):
        platform.ask(ana, AskRequest(question="revenue?", published_from="2999-01-01"))
    with pytest.raises(QueryError, match="published_from: 'soon' is not a date"):
        platform.search(ana, SearchRequest(query="revenue", published_from="soon"))
    records = list(platform.audit_records(platform.principal("root", ["public"])))
    refused = [r for r in records if r["action"] in ("search", "ask") and r["outcome"] == "error"]
    assert len(refused) == 3
    assert refused[0]["filters"]["published_from"] == "2024-02-01"  # type: ignore[index]


def test_answers_and_their_audit_records_keep_the_bound(platform: Platform) -> None:
    answer = platform.ask(ana, AskRequest(question="How did revenue do in the quarter?", published_from="2024-01-01"))
    assert answer.citations
    assert {Path(c.source).name for c in answer.citations} <= {"edge.txt", "new.txt"}
    platform.search(ana, SearchRequest(query="revenue"))
    platform.search(ana, SearchRequest(query="revenue", published_from="2024-01-01T00:00:00"))
    records = [r for r in platform.audit_records(platform.principal("root", ["public"])) if r["outcome"] == "ok"]
    by_action = {r["action"]: r for r in records}
    for action in ("ask", "search"):
        filters = by_action[action]["filters"]
        assert isinstance(filters, dict)
        assert filters["published_from"] == "2024-01-01T00:00:00+00:00"
        assert filters["as_of"] is None and "applied_as_of" in filters  # beside the clocks
    searches = [r["filters"] for r in records if r["action"] == "search"]
    assert [f["published_from"] for f in searches] == [None, "2024-01-01T00:00:00+00:00"]  # type: ignore[index]


def test_lists_honour_it_too(platform: Platform) -> None:
    listed = platform.documents(ana, DocumentsRequest(published_from="2024-01-01"))
    assert {Path(d.source).name for d in listed} == {"edge.txt", "new.txt"}
