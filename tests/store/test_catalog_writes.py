"""What the application layer's writes need from every catalog, on both backends (the embedded
store and real PostgreSQL + pgvector): an ACL change seen at once by searches (in this
process and another), live-only version lookups, and deleted bytes that may come back."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from strongroom.store.base import Catalog
from strongroom.store.postgres import PostgresStore
from strongroom.store.sqlite import SqliteStore
from strongroom.testing import HashEmbedder
from strongroom.testing.builders import make_version
from strongroom.types import Scope

DESK = Scope(frozenset({"desk"}))
CREDIT = Scope(frozenset({"credit"}))


@pytest.fixture(params=["sqlite", "postgres"])
def catalogs(request: pytest.FixtureRequest, embedder: HashEmbedder) -> Iterator[tuple[Catalog, Catalog]]:
    """Two connections to one store, as two processes would hold them."""
    if request.param == "sqlite":
        home = request.getfixturevalue("tmp_path") / "home"
        pair: tuple[Catalog, Catalog] = (
            SqliteStore(home, model_id=embedder.model_id, dim=embedder.dim),
            SqliteStore(home, model_id=embedder.model_id, dim=embedder.dim),
        )
    else:
        url = request.getfixturevalue("database_url")
        pair = (
            PostgresStore(url, model_id=embedder.model_id, dim=embedder.dim),
            PostgresStore(url, model_id=embedder.model_id, dim=embedder.dim),
        )
    yield pair
    for store in pair:
        store.close()


def _sources(store: Catalog, scope: Scope) -> set[str]:
    ids = [c for c, _ in store.keyword_search("coupon senior notes", scope, 10)]
    ids += [c for c, _ in store.vector_search(HashEmbedder(64).embed(["coupon senior notes"])[0], scope, 10)]
    return {v.source for _, v in store.fetch(ids)}


def test_an_acl_change_is_seen_at_once_here_and_by_another_connection(
    catalogs: tuple[Catalog, Catalog], embedder: HashEmbedder
) -> None:
    mine, theirs = catalogs
    new = make_version(embedder, "desk/note.md", ["The senior notes pay a coupon of 4.25%."], acl=["desk"])
    assert mine.write(new)
    assert _sources(theirs, DESK) == {"desk/note.md"} and _sources(theirs, CREDIT) == set()
    (_, version), *_ = theirs.fetch([new.chunks[0].id])
    assert version.acl == {"desk"}  # now cached by the other connection
    assert mine.set_acl(new.version.document_id, frozenset({"credit"})) == [new.version.id]
    for store in (mine, theirs):
        assert _sources(store, CREDIT) == {"desk/note.md"} and _sources(store, DESK) == set()
        (_, version), *_ = store.fetch([new.chunks[0].id])
        assert version.acl == {"credit"}  # no stale copy of the old ACL
        assert {v.acl for v in store.versions(new.version.document_id)} == {frozenset({"credit"})}


def test_deleted_bytes_may_be_ingested_again(catalogs: tuple[Catalog, Catalog], embedder: HashEmbedder) -> None:
    store, other = catalogs
    new = make_version(embedder, "desk/note.md", ["The senior notes pay a coupon of 4.25%."], acl=["desk"])
    assert store.write(new) and store.version(new.version.id) is not None
    assert store.delete_document(new.version.document_id) == [new.version.id]
    assert not store.has_version(new.version.id) and store.version(new.version.id) is None
    assert _sources(other, DESK) == set()
    assert store.write(new) is True  # the same bytes again: a live version once more
    assert store.has_version(new.version.id) and store.write(new) is False
    assert _sources(store, DESK) == {"desk/note.md"} == _sources(other, DESK)
    assert [v.id for v in store.versions(new.version.document_id)] == [new.version.id]
