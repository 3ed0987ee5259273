"""Property tests of the application layer: no path leaks, and everything admitted is found.

A small reference model of the rules (documents, versions with publication and ingestion
times and ACLs, deletions, ACL changes, write entitlements) runs beside a real
:class:`~strongroom.service.Platform` over random histories. Each write is checked as it
happens (the model says whether it is allowed; a refused write changes nothing and is
audited); then random principals read at random clocks on every path of the application
layer (``search``, ``ask``, ``documents``, ``document``, ``page``, ``find_document``) and
must see exactly what the model admits: nothing they may not read, nothing deleted, nothing
not knowable at the (clamped) clocks, nothing superseded, and all the rest.

The same scope rules are then held equal across implementations: the catalog paths
(:func:`~strongroom.service.visibility.visible_documents`) against the index search mask
(:class:`~strongroom.store.scope.VersionTable`), and PostgreSQL against the embedded store.

Times are whole days from the start of a run (``t0``), so no query clock falls near the
moment a version was ingested through the platform (which uses the real clock).
"""

from __future__ import annotations

import itertools
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import event, example, given, note, settings
from hypothesis import strategies as st

from strongroom.service.visibility import visible_documents
from strongroom.store.base import Catalog
from strongroom.store.postgres import PostgresStore
from strongroom.store.scope import VersionTable
from strongroom.store.sqlite import SqliteStore
from strongroom.testing.builders import make_version
from strongroom.types import DocumentVersion, Scope, frozen_meta
from tests.service.rules_history import (
    EVERYONE_FAR,
    EVERYONE_NOW,
    Clock,
    History,
    Query,
    check_every_path,
    fresh_platform,
    query_st,
    start,
)
from tests.service.rules_model import (
    EMBEDDER,
    EVERY_ROLE,
    GROUPS,
    PROPERTIES,
    SCRATCH,
    Again,
    Delete,
    Ingest,
    Model,
    MVersion,
    Op,
    SetAcl,
    Who,
    Write,
    acl_st,
    doc_id,
    doc_st,
    op_st,
    source_of,
    write_st,
    written_pages,
)
from tests.store import conftest as store_fixtures

R, P, OPS, L = (frozenset({g}) for g in ("research", "public", "ops", "legal"))
#: every kind of write, refused and allowed, deleted bytes ingested again, a future version
EVERY_WRITE = [
    Ingest(Who(R, EVERY_ROLE), "alder", "amber", R, -10),
    Write("alder", "cobalt", R, 30, -1),  # published next month: its writers must read it too
    Ingest(Who(P, EVERY_ROLE), "alder", "indigo", None, -1),  # refused: may not read alder
    Ingest(Who(R, EVERY_ROLE), "alder", "indigo", P, -1),  # refused: another ACL
    Ingest(Who(R, EVERY_ROLE), "alder", "amber", P, -1),  # refused: the same bytes with another ACL
    Write("birch", "amber", OPS, -30, -30),
    Write("birch", "cobalt", L, -3, -3),
    SetAcl(Who(OPS, EVERY_ROLE), 1, P),  # refused: ops may not read birch's current version
    SetAcl(Who(L | OPS, EVERY_ROLE), 1, P | OPS),
    Delete(Who(R, frozenset({"reader", "ingester"})), 0),  # refused: not an admin
    Delete(Who(R, EVERY_ROLE), 0),
    Again(Who(R, EVERY_ROLE), 0, -2, deleted=True),
]
#: the two clocks: a version learned late, no fallback to an older readable version, the future
CLOCKS = [
    Write("alder", "amber", P, -400, -400),
    Write("alder", "cobalt", P, -30, -3),  # published a month ago, learned three days ago
    Write("alder", "indigo", R, -10, -10),  # the current one: public readers lose alder
    Ingest(Who(P | R, EVERY_ROLE), "alder", "amber", R, -5),  # ingested: not a "document" (its type)
    Ingest(Who(P | R, EVERY_ROLE), "birch", "amber", P, 1),  # published tomorrow
    Ingest(Who(P, EVERY_ROLE), "birch", "cobalt", None, -1),
    Write("birch", "indigo", R, 30, -1),  # to be published next month, for research only
    Ingest(Who(P, EVERY_ROLE), "birch", "indigo", None, -1),  # refused: may not read what is to come
    Write("cedar", "amber", P, -1, 30),  # learned next month
]


@PROPERTIES
@example(EVERY_WRITE, [Query(R, Clock("none"), Clock("none")), Query(OPS | L, Clock("date", -20), Clock("iso", -2))])
@example(
    CLOCKS,
    [
        Query(P, Clock("iso", -20), Clock("none")),
        Query(P, Clock("none"), Clock("datetime", -5)),
        Query(P, Clock("far"), Clock("far")),
        Query(R, Clock("date", -5), Clock("datetime", -1 / 24)),
        Query(R, Clock("none"), Clock("none"), narrow="document"),  # alder's current is not one
    ],
)
@given(ops=st.lists(op_st, min_size=4, max_size=12), queries=st.lists(query_st, min_size=2, max_size=3))
def test_no_path_leaks_and_everything_admitted_is_found(ops: list[Op], queries: list[Query]) -> None:
    """(a) 0 leaks and (b) everything admitted is found, on every read path, after a random
    history; (c) each write the model refuses is refused, changes nothing and is audited,
    and each one it allows happens (checked as the history runs)."""
    note(f"history: {ops!r}\nqueries: {queries!r}")  # this hypothesis prints no arguments
    with fresh_platform() as (platform, files):
        history = History(platform, files, start())
        for op in ops:
            history.run(op)
        for query in [*queries, EVERYONE_NOW, EVERYONE_FAR]:
            check_every_path(platform, history.model, query, history.t0)


# -- the scope rules agree across implementations --------------------------------------------

EPOCH = 1_700_000_000.0
#: the throwaway PostgreSQL + pgvector of the store tests (module scope), as a fixture here
postgres_url = store_fixtures.server_url


@dataclass(frozen=True)
class Row:
    doc: int
    published: int  # days after EPOCH
    ingested: int
    acl: frozenset[str]
    doc_type: str
    desk: str
    deleted: bool


FEW_GROUPS = ("public", "research", "ops")
row_st = st.builds(
    Row,
    st.integers(0, 3),
    st.integers(0, 5),  # few days: ties in publication and ingestion are common
    st.integers(0, 5),
    st.frozensets(st.sampled_from(FEW_GROUPS), min_size=1, max_size=2),
    st.sampled_from(["report", "memo"]),
    st.sampled_from(["rates", "fx"]),
    st.booleans(),
)
instant_st = st.none() | st.integers(-1, 7).map(lambda d: datetime.fromtimestamp(EPOCH + d * 86400 + 3600, UTC))


def table_of(rows: list[Row], versions: list[DocumentVersion]) -> VersionTable:
    acl_sets = list(dict.fromkeys(v.acl for v in versions))
    return VersionTable(
        seqs=np.arange(len(rows), dtype=np.int64),
        doc=np.array([r.doc for r in rows], dtype=np.int64),
        published=np.array([v.published_at.timestamp() for v in versions], dtype=np.float64),
        ingested=np.array([v.ingested_at.timestamp() for v in versions], dtype=np.float64),
        deleted=np.array([r.deleted for r in rows], dtype=bool),
        acl_set=np.array([acl_sets.index(v.acl) for v in versions], dtype=np.int64),
        acl_sets=acl_sets,
        doc_types=[v.doc_type for v in versions],
        metadata=[dict(v.metadata) for v in versions],
    )


@dataclass(frozen=True)
class Lens:
    """The clocks and filters of a scope (the groups: every subset of FEW_GROUPS)."""

    as_of: datetime | None
    known_at: datetime | None
    doc_types: frozenset[str]
    filters: dict[str, str]
    published_from: datetime | None = None


lens_st = st.builds(
    Lens,
    instant_st,
    instant_st,
    st.sampled_from([frozenset(), frozenset(), frozenset({"report"}), frozenset({"report", "memo"})]),
    st.sampled_from([{}, {}, {"desk": "rates"}]),
    # on a day a version is published, so the bound itself is tested (it is inside)
    st.none() | st.integers(-1, 7).map(lambda d: datetime.fromtimestamp(EPOCH + d * 86400, UTC)),
)
GROUP_SETS = [frozenset(c) for n in range(len(FEW_GROUPS) + 1) for c in itertools.combinations(FEW_GROUPS, n)]


def model_admits(live: list[DocumentVersion], scope: Scope, now: float) -> dict[str, tuple[str, list[str]]]:
    """Per document: the current version and the history the scope admits, written plainly:
    knowable at the clamped clocks, latest by (published, ingested, write order) per document,
    then the groups, the document type, the filters and published-from on that one (never a
    fallback)."""
    bound_p = min(scope.as_of.timestamp() if scope.as_of else now, now)
    bound_i = min(scope.known_at.timestamp() if scope.known_at else now, now)
    out: dict[str, tuple[str, list[str]]] = {}
    for d in {v.document_id for v in live}:
        knowable = [
            (v.published_at, v.ingested_at, i, v)
            for i, v in enumerate(live)
            if v.document_id == d and v.published_at.timestamp() <= bound_p and v.ingested_at.timestamp() <= bound_i
        ]
        if not knowable:
            continue
        knowable.sort(key=lambda item: item[:3], reverse=True)
        current = knowable[0][3]
        if not scope.groups & current.acl or (scope.doc_types and current.doc_type not in scope.doc_types):
            continue
        if scope.published_from is not None and current.published_at < scope.published_from:
            continue
        if all(current.metadata.get(k) == value for k, value in scope.filters.items()):
            out[d] = (current.id, [v.id for *_, v in knowable if scope.groups & v.acl])
    return out


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(row_st, max_size=16), lenses=st.lists(lens_st, min_size=1, max_size=4), now_day=st.integers(2, 6))
def test_catalog_paths_and_the_index_mask_admit_the_same_versions(
    rows: list[Row], lenses: list[Lens], now_day: int
) -> None:
    """``visible_documents`` (lists, versions, pages) and ``VersionTable`` (the index search
    mask) admit the same current versions as the model, on random version tables with ties,
    deletions, future versions, document types, metadata filters and published-from bounds,
    for every set of groups."""
    note(f"rows: {rows!r}\nlenses: {lenses!r}")
    versions = [
        DocumentVersion(
            id=f"v{i}", document_id=f"d{r.doc}", source=f"d{r.doc}", title="", media_type="text/plain",
            doc_type=r.doc_type, acl=r.acl, published_at=datetime.fromtimestamp(EPOCH + r.published * 86400, UTC),
            ingested_at=datetime.fromtimestamp(EPOCH + r.ingested * 86400, UTC), size=1, pages=1,
            metadata=frozen_meta({"desk": r.desk}),
        )
        for i, r in enumerate(rows)
    ]  # fmt: skip
    now = EPOCH + now_day * 86400 + 1800
    live = [v for v, r in zip(versions, rows, strict=True) if not r.deleted]
    table = table_of(rows, versions)
    for lens in lenses:
        for groups in GROUP_SETS:
            scope = Scope(
                groups, lens.as_of, lens.doc_types, frozen_meta(lens.filters), lens.known_at, lens.published_from
            )
            expected = model_admits(live, scope, now)
            by_index = {versions[i].id for i in np.flatnonzero(table.version_mask(scope, now))}
            by_catalog = visible_documents(live, scope, now)
            assert by_index == {c for c, _ in expected.values()}, f"the index mask, {scope}"
            got = {d: (s.current.id, [v.id for v in s.history]) for d, s in by_catalog.items()}
            assert got == expected, f"the catalog paths, {scope}"


@dataclass(frozen=True)
class StoreAcl:
    doc: str
    acl: frozenset[str]


@dataclass(frozen=True)
class StoreDelete:
    doc: str


StoreOp = Write | StoreAcl | StoreDelete
store_op_st: st.SearchStrategy[StoreOp] = st.one_of(
    write_st, write_st, write_st, st.builds(StoreAcl, doc_st, acl_st), st.builds(StoreDelete, doc_st)
)


@pytest.mark.integration
@settings(PROPERTIES, max_examples=25)
@given(ops=st.lists(store_op_st, min_size=3, max_size=12), queries=st.lists(query_st, min_size=1, max_size=4))
def test_postgres_and_the_embedded_store_agree_on_both_clocks(
    postgres_url: str, ops: list[StoreOp], queries: list[Query]
) -> None:
    """The same history written to PostgreSQL and to the embedded store: both admit exactly
    the model's versions (with their ACLs as they are now) at random (as_of, known_at), in the
    index search and on the catalog paths, after deletions and ACL changes; and so does a
    second connection to each (another process, a replica) that kept reading meanwhile."""
    note(f"history: {ops!r}\nqueries: {queries!r}")
    url = store_fixtures.fresh_database(postgres_url)
    with tempfile.TemporaryDirectory(prefix="sr-props-", dir=SCRATCH) as tmp:
        pg = PostgresStore(url, model_id=EMBEDDER.model_id, dim=EMBEDDER.dim)
        lite = SqliteStore(Path(tmp), model_id=EMBEDDER.model_id, dim=EMBEDDER.dim)
        replicas = [
            PostgresStore(url, model_id=EMBEDDER.model_id, dim=EMBEDDER.dim),
            SqliteStore(Path(tmp), model_id=EMBEDDER.model_id, dim=EMBEDDER.dim),
        ]
        everyone = Scope(frozenset(GROUPS))
        try:
            t0, model = start(), Model()
            for seq, op in enumerate(ops):
                if isinstance(op, Write):
                    pages = written_pages(op.doc, op.variant)
                    published, ingested = t0 + timedelta(days=op.published), t0 + timedelta(days=op.ingested)
                    new = make_version(
                        EMBEDDER, source_of(op.doc), pages, acl=sorted(op.acl), published=published, ingested=ingested
                    )
                    stored = model.live_id(new.version.id) is None
                    assert pg.write(new) is stored and lite.write(new) is stored
                    if stored:
                        model.add(MVersion(new.version.id, op.doc, op.variant, pages, op.acl, published, ingested, seq))
                elif isinstance(op, StoreAcl):
                    changed = {v.id for v in model.live(op.doc)}
                    assert (
                        set(pg.set_acl(doc_id(op.doc), op.acl)) == set(lite.set_acl(doc_id(op.doc), op.acl)) == changed
                    )
                    for v in model.live(op.doc):
                        v.acl = op.acl
                else:
                    gone = {v.id for v in model.live(op.doc)}
                    assert set(pg.delete_document(doc_id(op.doc))) == set(lite.delete_document(doc_id(op.doc))) == gone
                    for v in model.live(op.doc):
                        v.deleted = True
                for replica in replicas:  # reads between writes: what they cache must not go stale
                    replica.versions_of([c for c, _ in replica.keyword_search("harbor ledger", everyone, 1000)])

            def catalog(store: Catalog) -> list[tuple[object, ...]]:
                return [(v.id, sorted(v.acl), v.published_at, v.ingested_at) for v in store.versions()]

            assert catalog(pg) == catalog(lite) == catalog(replicas[0]) == catalog(replicas[1])
            vector = EMBEDDER.embed(["harbor ledger"])[0]
            for query in [*queries, EVERYONE_NOW, EVERYONE_FAR]:
                as_of, known_at = query.as_of.instant(t0), query.known_at.instant(t0)
                groups = query.groups_in(model)
                scope = Scope(groups, as_of=as_of, known_at=known_at)
                expected = model.view(groups, as_of, known_at)
                currents = {seen.current.id: seen.current.acl for seen in expected.values()}
                event(f"postgres: visible documents: {len(expected)}")
                for store in (pg, lite, *replicas):
                    what = f"{type(store).__name__} {query}"
                    found = [c for c, _ in store.keyword_search("harbor ledger", scope, 1000)]
                    assert {v.id: v.acl for v in store.versions_of(found).values()} == currents, what
                    near = [c for c, _ in store.vector_search(vector, scope, 1000)]
                    assert {v.id: v.acl for v in store.versions_of(near).values()} == currents, what
                    assert {v.id: v.acl for _, v in store.fetch(found)} == currents, what
                    seen = visible_documents(store.versions(), scope)
                    assert {d: [v.id for v in s.history] for d, s in seen.items()} == {
                        d: [v.id for v in s.history] for d, s in expected.items()
                    }, what
        finally:
            for store in (pg, lite, *replicas):
                store.close()
