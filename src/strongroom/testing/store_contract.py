"""The store contract: every backend's test subclasses :class:`StoreContract`, which checks
each protocol of :mod:`strongroom.store.base` (the index, writes and the embedding cache,
the catalog's reads, curation, jobs and lifecycle); a store that offers a pinned view also
passes :class:`PinnableContract`, and one that erases (:class:`~strongroom.store.base.Erasable`)
:class:`ErasableContract`.

A backend test supplies two fixtures, ``store`` (empty, ready) and ``embedder``::

    class TestSqliteStore(StoreContract):
        @pytest.fixture
        def store(self, tmp_path, embedder): return SqliteStore(tmp_path, model_id=..., dim=...)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from strongroom.embed import Embedder, Vectors, cache_key
from strongroom.governance.erasure import MARKER, Needles
from strongroom.retrieve import search
from strongroom.store.base import Catalog, Erasable, NewVersion, Pinnable, Reembed, Store
from strongroom.testing.builders import make_version
from strongroom.text import dense_text
from strongroom.types import Chunk, Scope

__all__ = ["ErasableContract", "PinnableContract", "StoreContract"]

PUBLIC = Scope(frozenset({"public"}))
T0 = datetime(2024, 1, 1, tzinfo=UTC)
T1 = datetime(2024, 6, 1, tzinfo=UTC)


class StoreContract:
    """Behaviour every backend must have, through the protocols only."""

    def test_write_is_idempotent(self, store: Store, embedder: Embedder) -> None:
        new = make_version(embedder, "a.txt", ["Revenue grew to 10,000 in the quarter."])
        assert store.write(new) is True
        assert store.write(new) is False
        hits = store.keyword_search("revenue", PUBLIC, 10)
        assert len(hits) == len(new.chunks)

    def test_fetch_returns_exact_page_spans(self, store: Store, embedder: Embedder) -> None:
        text = "# Results\nTotal net sales 82,959 81,434\n\nMargins were stable this quarter."
        new = make_version(embedder, "r.md", [text])
        store.write(new)
        ids = [c.id for c in new.chunks]
        fetched = store.fetch([*reversed(ids), "no-such-chunk"])
        assert [c.id for c, _ in fetched] == list(reversed(ids))
        for chunk, version in fetched:
            assert text[chunk.char_start : chunk.char_end] == chunk.text
            assert version.id == new.version.id

    def test_versions_of_chunks(self, store: Store, embedder: Embedder) -> None:
        a = make_version(embedder, "a.txt", ["Alpha revenue rose.", "Alpha margin fell."])
        b = make_version(embedder, "b.txt", ["Beta revenue rose."])
        store.write(a)
        store.write(b)
        ids = [c.id for c in (*a.chunks, *b.chunks)]
        found = store.versions_of([*ids, "no-such-chunk"])
        assert set(found) == set(ids)
        assert {found[c.id].id for c in a.chunks} == {a.version.id} and found[b.chunks[0].id] == b.version

    def test_keyword_and_vector_search_find_the_right_document(self, store: Store, embedder: Embedder) -> None:
        store.write(make_version(embedder, "sales.txt", ["Total net sales rose to 82,959 million."]))
        store.write(make_version(embedder, "weather.txt", ["Rain is expected over the mountains tomorrow."]))
        (best, _), *_ = store.keyword_search("net sales", PUBLIC, 5)
        assert store.fetch([best])[0][1].source == "sales.txt"
        (best, _), *_ = store.vector_search(embedder.embed(["net sales million"])[0], PUBLIC, 5)
        assert store.fetch([best])[0][1].source == "sales.txt"

    def test_acl_is_a_prefilter_that_fills_top_k(self, store: Store, embedder: Embedder) -> None:
        for i in range(30):
            store.write(make_version(embedder, f"open{i}.txt", [f"quarterly revenue report number {i}"]))
        for i in range(3):
            store.write(make_version(embedder, f"desk{i}.txt", [f"quarterly revenue desk note {i}"], acl=["desk"]))
        desk = Scope(frozenset({"desk"}))
        for results in (
            store.keyword_search("quarterly revenue", desk, 3),
            store.vector_search(embedder.embed(["quarterly revenue"])[0], desk, 3),
        ):
            assert len(results) == 3
            assert {v.source for _, v in store.fetch([c for c, _ in results])} == {
                "desk0.txt",
                "desk1.txt",
                "desk2.txt",
            }
        assert store.keyword_search("desk note", Scope(frozenset({"nobody"})), 5) == []

    def test_as_of_sees_the_version_current_then(self, store: Store, embedder: Embedder) -> None:
        store.write(make_version(embedder, "guide.txt", ["Guidance: revenue of 100."], published=T0))
        store.write(make_version(embedder, "guide.txt", ["Guidance: revenue of 200."], published=T1))

        def texts(scope: Scope) -> set[str]:
            ids = [c for c, _ in store.keyword_search("guidance revenue", scope, 10)]
            return {c.text for c, _ in store.fetch(ids)}

        assert texts(Scope(frozenset({"public"}), as_of=datetime(2024, 3, 1, tzinfo=UTC))) == {
            "Guidance: revenue of 100."
        }
        assert texts(PUBLIC) == {"Guidance: revenue of 200."}
        assert texts(Scope(frozenset({"public"}), as_of=datetime(2023, 1, 1, tzinfo=UTC))) == set()

    def test_two_clocks_publication_and_ingestion(self, store: Store, embedder: Embedder) -> None:
        late = make_version(embedder, "late.txt", ["Backfilled revenue note."], published=T0, ingested=T1)
        store.write(late)
        mid = datetime(2024, 3, 1, tzinfo=UTC)
        # a back-test: published by mid, whenever it was loaded
        assert len(store.keyword_search("backfilled revenue", Scope(frozenset({"public"}), as_of=mid), 5)) == 1
        # an audit replay: what the platform held at mid (it learned of the note only at T1)
        replay = Scope(frozenset({"public"}), as_of=mid, known_at=mid)
        assert store.keyword_search("backfilled revenue", replay, 5) == []
        assert store.keyword_search("backfilled revenue", Scope(frozenset({"public"}), known_at=mid), 5) == []
        assert len(store.keyword_search("backfilled revenue", PUBLIC, 5)) == 1

    def test_no_clock_can_pass_now(self, store: Store, embedder: Embedder) -> None:
        future = datetime(2030, 1, 1, tzinfo=UTC)
        store.write(make_version(embedder, "plan.txt", ["Guidance: revenue of 100."], published=T0))
        store.write(make_version(embedder, "plan.txt", ["Guidance: revenue of 900."], published=future, ingested=T1))
        far = datetime(2999, 1, 1, tzinfo=UTC)
        for scope in (PUBLIC, Scope(frozenset({"public"}), as_of=far, known_at=far)):
            ids = [c for c, _ in store.keyword_search("guidance revenue", scope, 10)]
            ids += [c for c, _ in store.vector_search(embedder.embed(["guidance revenue"])[0], scope, 10)]
            assert {c.text for c, _ in store.fetch(ids)} == {"Guidance: revenue of 100."}

    def test_filters_and_doc_types(self, store: Store, embedder: Embedder) -> None:
        store.write(
            make_version(embedder, "a.txt", ["bond coupon terms"], doc_type="term_sheet", meta={"desk": "rates"})
        )
        store.write(make_version(embedder, "b.txt", ["bond coupon research"], doc_type="research", meta={"desk": "fx"}))

        def sources(scope: Scope) -> set[str]:
            return {v.source for _, v in store.fetch([c for c, _ in store.keyword_search("bond coupon", scope, 10)])}

        assert sources(Scope(frozenset({"public"}), doc_types=frozenset({"term_sheet"}))) == {"a.txt"}
        assert sources(Scope(frozenset({"public"}), filters={"desk": "fx"})) == {"b.txt"}

    def test_published_from_filters_inside_the_search(self, store: Store, embedder: Embedder) -> None:
        # 20 old notes published before the bound, 3 after it: a bounded top-3 is the 3 new
        # ones, in both rankings (a filter after top-k would find none of them first)
        for i in range(20):
            store.write(make_version(embedder, f"old{i}.txt", [f"quarterly revenue report {i}"], published=T0))
        for i in range(3):
            store.write(make_version(embedder, f"new{i}.txt", [f"quarterly revenue note {i}"], published=T1))
        bound = Scope(frozenset({"public"}), published_from=datetime(2024, 3, 1, tzinfo=UTC))
        for results in (
            store.keyword_search("quarterly revenue report", bound, 3),
            store.vector_search(embedder.embed(["quarterly revenue report"])[0], bound, 3),
        ):
            assert {v.source for _, v in store.fetch([c for c, _ in results])} == {"new0.txt", "new1.txt", "new2.txt"}
        at_t1 = Scope(frozenset({"public"}), published_from=T1)  # the bound itself is inside
        assert len(store.keyword_search("quarterly revenue", at_t1, 30)) == 3
        assert len(store.keyword_search("quarterly revenue", Scope(frozenset({"public"}), published_from=T0), 30)) == 23

    def test_published_from_never_brings_back_a_superseded_version(self, store: Store, embedder: Embedder) -> None:
        store.write(make_version(embedder, "guide.txt", ["Guidance: revenue of 100."], published=T0))
        store.write(make_version(embedder, "guide.txt", ["Guidance: revenue of 200."], published=T1))

        def texts(scope: Scope) -> set[str]:
            ids = [c for c, _ in store.keyword_search("guidance revenue", scope, 10)]
            ids += [c for c, _ in store.vector_search(embedder.embed(["guidance revenue"])[0], scope, 10)]
            return {c.text for c, _ in store.fetch(ids)}

        mid = datetime(2024, 3, 1, tzinfo=UTC)
        assert texts(Scope(frozenset({"public"}), published_from=mid)) == {"Guidance: revenue of 200."}
        # current at mid is the T0 version, which is before the bound: nothing, not the T1 one
        assert texts(Scope(frozenset({"public"}), as_of=mid, published_from=datetime(2024, 2, 1, tzinfo=UTC))) == set()
        assert texts(Scope(frozenset({"public"}), as_of=mid, published_from=T0)) == {"Guidance: revenue of 100."}
        # after the current version: nothing, the older one stays superseded
        assert texts(Scope(frozenset({"public"}), published_from=datetime(2024, 7, 1, tzinfo=UTC))) == set()

    def test_hybrid_search_over_the_protocol(self, store: Store, embedder: Embedder) -> None:
        store.write(make_version(embedder, "sales.txt", ["Total net sales rose to 82,959 million."]))
        store.write(make_version(embedder, "other.txt", ["An unrelated paragraph about offices."]))
        hits = search(store, embedder, "total net sales", PUBLIC, k=1)
        assert [h.version.source for h in hits] == ["sales.txt"]
        assert hits[0].keyword_rank == 1

    def test_line_search_finds_the_table_row_within_entitlements(self, store: Store, embedder: Embedder) -> None:
        table = "Balance sheet\nCash 5,519 3,389\nInventories 4,779 5,159\nGoodwill 4,430 4,372"
        prose = "Inventory and inventories: we discuss inventory, inventory risk and inventory reserves at length."
        store.write(make_version(embedder, "bs.txt", [table]))
        store.write(make_version(embedder, "mdna.txt", [prose]))
        store.write(make_version(embedder, "secret.txt", ["Inventories 1 2"], acl=["board"]))
        (best, _), *rest = store.keyword_search("inventories", PUBLIC, 5, unit="line")
        assert store.fetch([best])[0][1].source == "bs.txt"
        assert all(store.fetch([c])[0][1].source != "secret.txt" for c, _ in rest)
        board = store.keyword_search("inventories", Scope(frozenset({"board"})), 5, unit="line")
        assert [store.fetch([c])[0][1].source for c, _ in board] == ["secret.txt"]

    # -- the catalog's parts (VersionCatalog, Writable.get_vectors, Curation, JobLog, Lifecycle)

    def test_the_catalog_reads_what_was_written(self, store: Catalog, embedder: Embedder) -> None:
        assert isinstance(store, Catalog)
        new = make_version(embedder, "q2.txt", ["Net sales were 81,797 million.", "Page two: cash 5,519."])
        assert not store.has_version(new.version.id) and store.version(new.version.id) is None
        store.write(new)
        assert store.has_version(new.version.id)
        assert store.version(new.version.id) == new.version
        assert store.versions() == [new.version] == store.versions(new.version.document_id)
        assert store.versions("no-such-document") == []
        assert store.page_text(new.version.id, 2) == "Page two: cash 5,519."
        assert store.page_text(new.version.id, 3) is None and store.page_text("nope", 1) is None
        assert store.counts()["versions"] == 1 and store.counts()["pages"] == 2

    def test_versions_are_listed_oldest_write_first(self, store: Catalog, embedder: Embedder) -> None:
        first = make_version(embedder, "n.txt", ["first"], published=T0)
        second = make_version(embedder, "n.txt", ["second"], published=T1)
        store.write(first)
        store.write(second)
        assert [v.id for v in store.versions(first.version.document_id)] == [first.version.id, second.version.id]

    def test_the_embedding_cache_returns_what_was_written(self, store: Catalog, embedder: Embedder) -> None:
        new = make_version(embedder, "c.txt", ["Operating income rose."])
        store.write(new)
        cached = store.get_vectors([*new.embed_keys, cache_key(embedder.model_id, "never embedded")])
        assert set(cached) == set(new.embed_keys)
        for key, vector in zip(new.embed_keys, new.vectors, strict=True):
            assert cached[key].tolist() == vector.tolist()

    def test_the_embedding_cache_forgets_a_deleted_documents_vectors(self, store: Catalog, embedder: Embedder) -> None:
        gone = make_version(embedder, "gone.txt", ["Goodwill impairment of 4,430.", "Page two: restructuring."])
        kept = make_version(embedder, "kept.txt", ["Goodwill unchanged."])
        store.write(gone)
        store.write(kept)
        assert store.get_vectors([]) == {}
        never = [cache_key(embedder.model_id, f"never embedded {i}") for i in range(1200)]  # many keys at once
        asked = [*never[:600], *gone.embed_keys, *never[600:], *kept.embed_keys]
        assert set(store.get_vectors(asked)) == {*gone.embed_keys, *kept.embed_keys}
        store.delete_document(gone.version.document_id)
        assert set(store.get_vectors(asked)) == set(kept.embed_keys)  # no vector of deleted text is kept

    def test_set_acl_changes_who_finds_the_document(self, store: Catalog, embedder: Embedder) -> None:
        new = make_version(embedder, "memo.txt", ["Coupon 4.25% senior notes."])
        store.write(new)
        assert store.set_acl(new.version.document_id, frozenset({"credit"})) == [new.version.id]
        assert store.keyword_search("coupon", PUBLIC, 5) == []
        assert store.keyword_search("coupon", Scope(frozenset({"credit"})), 5)
        assert store.set_acl("no-such-document", frozenset({"credit"})) == []

    def test_a_deleted_document_is_gone_from_every_read(self, store: Catalog, embedder: Embedder) -> None:
        new = make_version(embedder, "gone.txt", ["Goodwill impairment of 4,430."])
        kept = make_version(embedder, "kept.txt", ["Goodwill unchanged."])
        store.write(new)
        store.write(kept)
        chunk_ids = [c.id for c in new.chunks]
        assert store.delete_document(new.version.document_id) == [new.version.id]
        assert not store.has_version(new.version.id) and store.version(new.version.id) is None
        assert [v.id for v in store.versions()] == [kept.version.id]
        assert store.fetch(chunk_ids) == [] and store.page_text(new.version.id, 1) is None
        found = [c for c, _ in store.keyword_search("goodwill", PUBLIC, 5)]
        found += [c for c, _ in store.vector_search(embedder.embed(["goodwill impairment"])[0], PUBLIC, 5)]
        assert found and not set(found) & set(chunk_ids)
        assert store.delete_document(new.version.document_id) == []
        assert store.write(new)  # the same bytes may come back: the deleted row keeps its history elsewhere

    def test_many_documents_are_deleted_at_once(self, store: Catalog, embedder: Embedder) -> None:
        docs = [make_version(embedder, f"batch-{i}.txt", [f"Batch note {i} on credit spreads."]) for i in range(3)]
        for new in docs:
            store.write(new)
        gone = [d.version.document_id for d in docs[:2]]
        deleted = store.delete_documents([*gone, gone[0], "no-such-document"])
        assert deleted == {d.version.document_id: [d.version.id] for d in docs[:2]}
        assert [v.id for v in store.versions()] == [docs[2].version.id]
        assert store.fetch([c.id for d in docs[:2] for c in d.chunks]) == []
        assert store.page_text(docs[0].version.id, 1) is None
        assert set(store.get_vectors([k for d in docs for k in d.embed_keys])) == set(docs[2].embed_keys)
        found = [c for c, _ in store.keyword_search("batch spreads", PUBLIC, 10)]
        assert found and set(found) <= {c.id for c in docs[2].chunks}
        assert store.delete_documents(gone) == {}

    def test_jobs_are_recorded_and_updated(self, store: Catalog, embedder: Embedder) -> None:
        assert store.get_job("j1") is None
        store.record_job("j1", T0, "running", {"files": 2})
        store.record_job("j1", T0, "done", {"files": 2}, {"stored": 2})
        job = store.get_job("j1")
        assert job is not None
        assert (job["status"], job["request"], job["report"]) == ("done", {"files": 2}, {"stored": 2})

    def test_save_indexes_keeps_everything_searchable(self, store: Catalog, embedder: Embedder) -> None:
        store.write(make_version(embedder, "s.txt", ["Research and development 1,875."]))
        store.save_indexes()
        assert [v.source for _, v in store.fetch([c for c, _ in store.keyword_search("research", PUBLIC, 1)])] == [
            "s.txt"
        ]

    def test_a_store_reads_back_whole_what_it_holds(self, store: Catalog, embedder: Embedder) -> None:
        first = make_version(embedder, "a.txt", ["Revenue 1,234.", "Page two."], published=T0)
        gone = make_version(embedder, "b.txt", ["Deleted later."], published=T0)
        last = make_version(embedder, "c.txt", ["Costs were flat."], published=T1, acl=["credit"])
        for new in (first, gone, last):
            store.write(new)
        store.delete_document(gone.version.document_id)
        back = list(store.iter_versions())
        assert [n.version for n in back] == [first.version, last.version]
        for written, read in zip((first, last), back, strict=True):
            assert read.pages == written.pages and read.chunks == written.chunks
            assert read.embed_keys == written.embed_keys and read.vectors.tolist() == written.vectors.tolist()
        assert (store.model_id, store.dim) == (embedder.model_id, embedder.dim)


class PinnableContract:
    """For a store that also offers :class:`~strongroom.store.base.Pinnable` (the same two
    fixtures as :class:`StoreContract`)."""

    def test_a_pinned_view_answers_as_the_store_and_never_shows_deleted_text(
        self, store: Catalog, embedder: Embedder
    ) -> None:
        assert isinstance(store, Pinnable)
        gone = make_version(embedder, "a.txt", ["Revenue grew in the quarter."])
        store.write(gone)
        store.write(make_version(embedder, "b.txt", ["Revenue fell in the second quarter."]))
        vector = embedder.embed(["revenue quarter"])[0]
        unpinned = (store.keyword_search("revenue", PUBLIC, 5), store.vector_search(vector, PUBLIC, 5))
        with store.pinned(), store.pinned():  # nested: one view
            assert (store.keyword_search("revenue", PUBLIC, 5), store.vector_search(vector, PUBLIC, 5)) == unpinned
            assert store.delete_document(gone.version.document_id) == [gone.version.id]
            assert store.fetch([c.id for c in gone.chunks]) == []  # the view may rank them; their text is gone
        found = {c for c, _ in store.keyword_search("revenue", PUBLIC, 5)}
        found |= {c for c, _ in store.vector_search(vector, PUBLIC, 5)}
        assert found and not found & {c.id for c in gone.chunks}  # the pin does not outlive its block


class ErasableContract:
    """Erasing an identifier from every row a store keeps, through the protocols only."""

    NAME = "Jane Quixote"

    @staticmethod
    def _reembed(embedder: Embedder) -> Reembed:
        def reembed(chunks: Sequence[Chunk]) -> tuple[list[str], Vectors]:
            texts = [dense_text(c) for c in chunks]
            return [cache_key(embedder.model_id, t) for t in texts], embedder.embed(texts)

        return reembed

    def _seed(self, store: Catalog, embedder: Embedder) -> tuple[NewVersion, NewVersion, NewVersion]:
        named = make_version(
            embedder,
            "jane quixote letter.txt",
            [f"Dear {self.NAME}, your overdraft facility was renewed.\n\nRegards, the desk.", "JANE QUIXOTE signed."],
            meta={"customer": f"Ms {self.NAME}"},
        )
        other = make_version(embedder, "memo.txt", ["Overdraft facilities were renewed for the quarter."])
        held = make_version(embedder, "held.txt", [f"Litigation file of {self.NAME}."])
        for new in (named, other, held):
            store.write(new)
        return named, other, held

    def test_an_erased_identifier_is_in_no_row_and_no_index(self, store: Catalog, embedder: Embedder) -> None:
        assert isinstance(store, Erasable)
        named, other, held = self._seed(store, embedder)
        needles = Needles.of(self.NAME)
        before = store.find_text(needles)
        assert before["pages"] == 3 and before["chunks"] >= 3 and before["versions"] >= 2
        old_keys = list(named.embed_keys)
        count = store.erase_text(needles, self._reembed(embedder), keep=[held.version.document_id])
        assert count.held == (held.version.document_id,)
        assert named.version.id in count.versions and other.version.id not in count.versions
        store.reclaim()
        after = store.find_text(needles)
        assert after == {**{k: 0 for k in after}, "pages": 1, "chunks": after["chunks"]} and after["chunks"] >= 1
        v = store.version(named.version.id)
        assert v is not None and needles.count(v.title) == 0 and MARKER in v.metadata["customer"]
        page = store.page_text(named.version.id, 1)
        assert page is not None and page.startswith(f"Dear {MARKER}, your overdraft")
        assert MARKER in (store.page_text(named.version.id, 2) or "")
        # still found by what is left of it, with spans that agree with the scrubbed pages
        hits = store.keyword_search("overdraft renewed", PUBLIC, 10)
        fetched = store.fetch([c for c, _ in hits])
        assert {v.source for _, v in fetched} >= {"memo.txt"} and len(fetched) >= 2
        for chunk, version in fetched:
            text = store.page_text(version.id, chunk.page) or ""
            assert text[chunk.char_start : chunk.char_end] == chunk.text
            assert needles.count(chunk.text) == 0 or version.id == held.version.id
        assert not [c for c, _ in store.keyword_search("quixote", PUBLIC, 10) if c not in {x.id for x in held.chunks}]
        assert store.vector_search(embedder.embed(["overdraft facility"])[0], PUBLIC, 3)
        assert not store.get_vectors([k for k in old_keys if k not in set(held.embed_keys)])
        # the held document is untouched
        assert store.page_text(held.version.id, 1) == f"Litigation file of {self.NAME}."
        store.save_indexes()
        assert store.find_text(needles)["pages"] == 1

    def test_erasing_twice_changes_nothing_more(self, store: Catalog, embedder: Embedder) -> None:
        assert isinstance(store, Erasable)
        self._seed(store, embedder)
        needles = Needles.of(self.NAME)
        store.erase_text(needles, self._reembed(embedder))
        again = store.erase_text(needles, self._reembed(embedder))
        assert sum(again.places.values()) == 0 and again.versions == ()
        assert sum(store.find_text(needles).values()) == 0

    def test_an_erased_document_keeps_only_that_it_existed(self, store: Catalog, embedder: Embedder) -> None:
        assert isinstance(store, Erasable)
        named, other, _ = self._seed(store, embedder)
        ids = store.erase_document(named.version.document_id)
        assert ids == [named.version.id]
        store.reclaim()
        assert store.versions(named.version.document_id) == []
        found = store.find_text(Needles.of(self.NAME))
        assert found["versions"] == 0 and found["documents"] == 0 and found["pages"] == 1  # the held file's
        assert store.versions(other.version.document_id)
