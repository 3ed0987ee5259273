"""Erasure of an identifier from the application's own rows (:mod:`strongroom.service.erasure_rows`):
seeded through the platform's real operations (a conversation with feedback, an agent run with
a scripted model over real HTTP, a four-eyes proposal, a failed ingestion job, queued and dead
bus messages, a web session, a dataset with a correction), found in every place, erased, then
found nowhere: not by :func:`find_rows`, and not by a raw-bytes grep of the files (the catalog's
document and audit tables aside: the document store and the audit log erase themselves).
The same for the PostgreSQL datasets, job log and agent checkpoints."""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest
from psycopg.conninfo import conninfo_to_dict

from strongroom.api.web.sessions import SessionStore
from strongroom.auth import Caller
from strongroom.bus import open_bus
from strongroom.bus.base import Outcome
from strongroom.config import Settings
from strongroom.data.duckdb import DuckDBDatasets
from strongroom.data.postgres import PostgresDatasets
from strongroom.errors import QueryError
from strongroom.governance.erasure import Needles
from strongroom.llm.deployments import DeploymentSpec, save_deployment
from strongroom.llm.route_config import RouteStore
from strongroom.llm.routing import Target
from strongroom.service import AskRequest, IngestRequest, Platform
from strongroom.service.agent_local import LocalAgentRuns
from strongroom.service.agent_runs import AgentRunRequest
from strongroom.service.datasets import DatasetLoad, DatasetQuery
from strongroom.service.erasure_rows import CHECKPOINTS_PLACE, NOT_RESUMABLE, erase_rows, find_rows
from strongroom.service.worker import serve
from strongroom.store.row_text import Rows, sqlite_rows
from strongroom.testing import HashEmbedder
from strongroom.testing.chat import tool_call
from strongroom.testing.openai_server import FakeOpenAIServer, Reply
from strongroom.types import Principal
from tests.store.conftest import fresh_database, server_url  # noqa: F401 (the store tests' server fixture)

ROUTE = "research"
ANA = Principal("ana", frozenset({"research"}), frozenset({"reader", "ingester", "admin"}))
FILING = "Acme Corp quarterly report\n\nAcme total net sales were 81,797 million dollars in the quarter.\n"
#: the catalog's tables that belong to the document store and the audit log (erased elsewhere)
NOT_MINE = ("versions", "pages", "chunks", "documents", "audit", "embeddings", "fts", "keyword", "line")


def identifier(accented: bool = False) -> str:
    """A random customer name: in no fixture, so any match is one this test seeded. Accented:
    JSON columns hold it escaped (``\\u00eb``), msgpack blobs as UTF-8."""
    if accented:
        return f"Zo\u00eb{secrets.token_hex(3)} M\u00fcller{secrets.token_hex(2)}"
    return f"Zorbu{secrets.token_hex(3)} Quaxley{secrets.token_hex(2)}"


class Model:
    """The scripted model: search for the customer (its name in a tool call's arguments, so in
    the checkpoints), then answer naming them."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, body: dict[str, Any]) -> Reply:
        if not any(m["role"] == "tool" for m in body["messages"]):
            return Reply.calls(tool_call("search_documents", {"query": f"{self.name} account net sales"}))
        return Reply.stream(f"Nothing about {self.name} was found; Acme's net sales were 81,797 million [1].")


@dataclass
class Seeded:
    settings: Settings
    name: str
    run_id: str
    bus_url: str


def seed(home: Path, files: Path, model_url: str, name: str, **settings: Any) -> Seeded:
    """Put ``name`` everywhere the application keeps rows, through its own operations."""
    config = Settings(home=home, embedder="hash", route_groups={ROUTE: ["research"]}, four_eyes=True, **settings)
    save_deployment(
        home, "fake", DeploymentSpec(backend="openai-compatible", url=model_url, model="fake", clearance="restricted")
    )
    RouteStore(home).set_route(ROUTE, [Target("fake", 100)])
    (files / "acme.md").write_text(FILING)
    bad = files / f"{name} statement.pdf"
    bad.write_bytes(b"%PDF-1.4 not really a pdf")
    prices = files / "prices.csv"
    prices.write_text(f"ticker,day,holder\nACME,2023-06-29,{name}\nACME,2023-06-30,nobody\n")
    fix = files / f"{name} fix.csv"  # the version record keeps the file's name
    fix.write_text(f"ticker,day,holder\nACME,2023-06-29,{name.upper()} (corrected)\n")
    bus_url = f"sqlite://{home / 'bus.sqlite3'}"
    with Platform.open(config, embedder=HashEmbedder(64)) as p:
        assert p.ingest(ANA, IngestRequest(paths=(files / "acme.md",), acl=frozenset({"research"}))).ingested == 1
        turn = p.converse(ANA, None, AskRequest(question=f"What were net sales for {name}?"))
        p.feedback(ANA, turn.conversation_id, turn.id, "down", f"this is about {name.lower()}, not Acme")
        with pytest.raises(Exception, match="four-eyes"):
            p.set_acl(ANA, p.find_document(ANA, "acme.md").document_id, ["research"], reason=f"asked by {name}")
        load = DatasetLoad(prices, "holders", frozenset({"research"}), "day", ("ticker",))
        p.load_dataset(ANA, load)
        p.load_dataset(ANA, DatasetLoad(fix, "holders", frozenset({"research"}), "day", ("ticker",)))
        p.queue(ANA, IngestRequest(paths=(bad,), acl=frozenset({"research"})), bus_url, "strongroom:ingest")
        with LocalAgentRuns(p) as agent:
            run = agent.ask(ANA, AgentRunRequest(f"Find {name}'s holdings", route=ROUTE))
            assert run.status == "answered", run
            # the run's process dies: it is left interrupted, resumable from its checkpoints
            assert agent.runs.store.transition(run.id, ("answered",), status="interrupted") is not None
    assert serve(config, bus_url, "w0", until_idle=True)["dead"] == 1  # not a PDF: the job log keeps its request
    bus = open_bus(bus_url, stream="strongroom:ingest")
    try:
        bus.publish_raw(json.dumps({"poison": f"for {name}"}))
        delivery = bus.receive("w1", 1.0)
        assert delivery is not None
        bus.settle(delivery, Outcome.dead(f"could not parse {name}'s file"))
        bus.publish_raw(json.dumps({"later": f"a job about {name}"}))
    finally:
        bus.close()
    sessions = SessionStore(home / "web_sessions.sqlite3")
    sessions.create(Caller(Principal(name, frozenset({"research"})), frozenset({"reader"}), "oidc"))
    sessions.create(Caller(Principal("bob", frozenset({"research"})), frozenset({"reader"}), "oidc"))
    sessions.close()
    return Seeded(config, name, run.id, bus_url)


PLACES = (
    "conversations",
    "conversations.turns",
    "conversations.feedback",
    "agent_runs",
    "agent_runs.events",
    CHECKPOINTS_PLACE,
    "proposals",
    "jobs",
    "web_sessions",
    "bus.messages",
    "bus.dead_letters",
    "datasets.holders",
    "datasets.versions",
)


def occurrences(data: bytes, needles: Needles) -> int:
    return needles.count_bytes(data) + needles.count(data.decode("utf-8", "replace"))


def files_holding(home: Path, needles: Needles) -> dict[str, int]:
    """Every file under ``home`` whose bytes hold the identifier (any case), the catalog aside."""
    found = {}
    for path in sorted(home.rglob("*")):
        if path.is_file() and not path.name.startswith("catalog.sqlite3"):
            if n := occurrences(path.read_bytes(), needles):
                found[str(path.relative_to(home))] = n
    return found


def catalog_holding(catalog: Path, needles: Needles) -> dict[str, int]:
    """The catalog's own tables (every row, as text) that hold the identifier, its free pages
    and write-ahead log: the document and audit tables aside."""
    found = {}
    db = sqlite3.connect(catalog)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            if any(table.startswith(prefix) for prefix in NOT_MINE):
                continue
            rows = db.execute(f'SELECT * FROM "{table}"').fetchall()
            if n := occurrences(repr(rows).encode() + json.dumps(rows, default=str).encode(), needles):
                found[table] = n
        (free,) = db.execute("PRAGMA freelist_count").fetchone()
    finally:
        db.close()
    found["free pages"] = free
    wal = catalog.with_name(catalog.name + "-wal")
    found["wal bytes"] = wal.stat().st_size if wal.exists() else 0
    return {k: v for k, v in found.items() if v}


@pytest.fixture
def model_url(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    name = identifier(accented=getattr(request, "param", False))
    with FakeOpenAIServer(Model(name)) as server:
        yield server.url, name


@pytest.mark.parametrize("model_url", [False, True], ids=["ascii", "accented"], indirect=True)
def test_an_identifier_seeded_everywhere_is_found_erased_and_then_found_nowhere(
    tmp_path: Path, model_url: tuple[str, str]
) -> None:
    url, name = model_url
    home, files = tmp_path / "home", tmp_path / "files"
    files.mkdir()
    seeded = seed(home, files, url, name)
    settings = seeded.settings
    needles = Needles.of(name)
    sessions = SessionStore(home / "web_sessions.sqlite3")
    # the service is running while the erasure runs: its connections keep each file's
    # write-ahead log, which holds the pages it wrote last, name included
    with Platform.open(settings, embedder=HashEmbedder(64)) as p, LocalAgentRuns(p) as agent:
        p.converse(ANA, None, AskRequest(question=f"And {name}'s net sales in 2022?"))
        assert agent.ask(ANA, AgentRunRequest(f"Find {name} again", route=ROUTE)).status == "answered"
        assert files_holding(home, needles)  # the grep can fail: the identifier is in the files now
        assert catalog_holding(settings.catalog_path, needles)

        found = find_rows(settings, [name.lower()])
        assert {p for p in PLACES if found.get(p, 0) == 0} == set(), found
        assert (found["conversations.turns"], found[CHECKPOINTS_PLACE]) == (2, 2)
        assert found == find_rows(settings, [name.upper()])  # case-insensitive, and finding changes nothing

        erased = erase_rows(settings, [name.lower()])
        assert {p: erased[p] for p in PLACES} == {p: found[p] for p in PLACES}
        after = find_rows(settings, [name])
        assert set(after.values()) == {0}, after
        assert files_holding(home, needles) == {}
        assert catalog_holding(settings.catalog_path, needles) == {}

        threads = p.conversations(ANA)
        assert len(threads) == 2 and all("[erased]" in t.title for t in threads)
        turn = p.conversation(ANA, threads[-1].id).turns[0]
        assert "[erased]" in turn.question and turn.answer["claims"]  # the answer JSON still reads back
        run = agent.get(ANA, seeded.run_id)
        assert (run.status, run.reason) == ("error", NOT_RESUMABLE)
        assert "[erased]" in run.question
        with pytest.raises(QueryError, match="only an interrupted run can be resumed"):
            agent.resume(ANA, seeded.run_id)
        rows = p.query_datasets(ANA, DatasetQuery(sql="SELECT ticker, holder FROM holders")).rows
        assert ("ACME", "[erased] (corrected)") in {(r[0], r[1]) for r in rows}
        proposal = p.approvals.store.list()[0]
        assert proposal.status == "failed" and "[erased]" in proposal.reason
        assert sessions.lookup("nobody's") is None  # the store still works after its file was vacuumed
    sessions.close()
    db = sqlite3.connect(home / "web_sessions.sqlite3")
    assert [r[0] for r in db.execute("SELECT name FROM web_sessions")] == ["bob"]  # only its session went
    db.close()
    assert erase_rows(settings, [name]) == after  # erasing again finds nothing, changes nothing


def test_other_text_is_left_as_it_was(tmp_path: Path, model_url: tuple[str, str]) -> None:
    url, name = model_url
    home, files = tmp_path / "home", tmp_path / "files"
    files.mkdir()
    seeded = seed(home, files, url, name)
    before = find_rows(seeded.settings, ["acme total net sales"])
    assert erase_rows(seeded.settings, [identifier()]) == find_rows(seeded.settings, [identifier()])
    assert find_rows(seeded.settings, ["acme total net sales"]) == before
    assert find_rows(seeded.settings, [name])["conversations.turns"] == 1


def test_bad_needles_are_refused_and_nothing_changes(tmp_path: Path, model_url: tuple[str, str]) -> None:
    url, name = model_url
    home, files = tmp_path / "home", tmp_path / "files"
    files.mkdir()
    seeded = seed(home, files, url, name)
    before = find_rows(seeded.settings, [name])
    for bad in ("ab", "[erased]", "x" * 500):
        with pytest.raises(Exception, match="identifier"):
            erase_rows(seeded.settings, [bad])
    assert find_rows(seeded.settings, [name]) == before


def test_a_home_with_nothing_in_it_has_nothing_to_erase(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "empty", embedder="hash")
    assert set(erase_rows(settings, ["jane quixote"]).values()) <= {0}
    assert not (tmp_path / "empty" / "datasets.duckdb").exists()  # nothing is created to be searched
    with pytest.raises(QueryError, match="no identifier"):
        erase_rows(settings, [])


def test_a_bus_file_outside_the_home_is_searched_when_named(tmp_path: Path) -> None:
    name = identifier()
    settings = Settings(home=tmp_path / "home", embedder="hash")
    url = f"sqlite://{tmp_path / 'elsewhere' / 'bus.sqlite3'}"
    bus = open_bus(url, stream="strongroom:ingest")
    try:
        bus.publish_raw(json.dumps({"path": f"/in/{name}.pdf"}))
        bus.publish_raw(json.dumps({"path": "/in/other.pdf"}))
    finally:
        bus.close()
    assert find_rows(settings, [name]).get("bus.messages", 0) == 0  # not under the home, not named
    assert find_rows(settings, [name], bus_urls=[url])["bus.messages"] == 1
    assert erase_rows(settings, [name], bus_urls=[url])["bus.messages"] == 1
    assert files_holding(tmp_path / "elsewhere", Needles.of(name)) == {}
    bus = open_bus(url, stream="strongroom:ingest")
    try:
        assert bus.backlog().outstanding == 1  # the other job is still queued
    finally:
        bus.close()


# -- PostgreSQL: the datasets, the job log and the agent's checkpoints ---------------------------


def test_postgres_datasets_job_log_and_checkpoints(
    tmp_path: Path,
    model_url: tuple[str, str],
    server_url: str,  # noqa: F811 (the fixture)
) -> None:
    url, name = model_url
    database = conninfo_to_dict(fresh_database(server_url))
    where = f"host={database['host']}&port={database.get('port', 5432)}"  # a socket folder: in the query
    store_url = f"postgresql://{database['user']}@/{database['dbname']}?{where}"
    home, files = tmp_path / "home", tmp_path / "files"
    files.mkdir()
    seeded = seed(home, files, url, name, store_url=store_url)
    settings = seeded.settings
    needles = Needles.of(name)

    found = find_rows(settings, [name])
    for place in ("jobs", CHECKPOINTS_PLACE, "datasets.holders", "conversations.turns"):
        assert found.get(place, 0) > 0, (place, found)
    erased = erase_rows(settings, [name])
    assert erased["datasets.holders"] == found["datasets.holders"]
    after = find_rows(settings, [name])
    assert set(after.values()) == {0}, after
    assert files_holding(home, needles) == {}

    import psycopg

    with psycopg.connect(store_url) as db:
        tables = db.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
            "AND table_schema NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
        holding = {}
        for schema, table in tables:
            if table.startswith(("versions", "pages", "chunks", "documents", "audit", "bm25", "line", "postings")):
                continue
            text = db.execute(f'SELECT coalesce(string_agg(t::text, chr(10)), \'\') FROM "{schema}"."{table}" t')
            (value,) = text.fetchone() or ("",)
            if n := occurrences(str(value).encode(), needles):
                holding[f"{schema}.{table}"] = n
        blobs = db.execute("SELECT blob FROM checkpoint_blobs UNION ALL SELECT blob FROM checkpoint_writes").fetchall()
        holding.update({"checkpoint blobs": sum(occurrences(bytes(b), needles) for (b,) in blobs if b)})
    assert {k: v for k, v in holding.items() if v} == {}
    datasets = PostgresDatasets(store_url)
    try:
        holders = {r[0] for r in datasets._run_engine("SELECT holder FROM strongroom_data.holders")}
    finally:
        datasets.close()
    assert "[erased]" in holders and "nobody" in holders


def test_the_duckdb_file_keeps_no_old_value_and_still_works(tmp_path: Path, model_url: tuple[str, str]) -> None:
    url, name = model_url
    home, files = tmp_path / "home", tmp_path / "files"
    files.mkdir()
    seeded = seed(home, files, url, name)
    path = home / "datasets.duckdb"
    assert occurrences(path.read_bytes(), Needles.of(name))
    erase_rows(seeded.settings, [name])
    assert occurrences(path.read_bytes(), Needles.of(name)) == 0
    db = duckdb.connect(str(path), read_only=True)
    try:
        versions = db.execute("SELECT count(*) FROM strongroom_data._versions").fetchone()
        rows = db.execute("SELECT count(*) FROM strongroom_data.holders").fetchone()
    finally:
        db.close()
    assert versions == (2,) and rows == (3,)


def test_tables_longer_than_a_batch_are_read_to_their_end(tmp_path: Path) -> None:
    """Rows are read a batch at a time (5,000 in SQLite, 10,000 in DuckDB): the identifier in
    the first, a boundary and the last row of much longer tables is found and erased."""
    name = identifier()
    needles = Needles.of(name)
    at = {1, 5_000, 5_001, 10_000, 10_001, 24_999}
    path = tmp_path / "rows.sqlite3"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE notes (body TEXT, meta TEXT)")
    db.executemany(
        "INSERT INTO notes VALUES (?, ?)",
        [(f"note {i} {name if i in at else 'x'}", json.dumps({"i": i})) for i in range(1, 25_000)],
    )
    db.commit()
    db.close()
    spec = [Rows("notes", "notes", text=("body",), json=("meta",))]
    assert sqlite_rows(path, spec, needles.scrub, apply=False) == {"notes": len(at)}
    assert sqlite_rows(path, spec, needles.scrub, apply=True) == {"notes": len(at)}
    assert sqlite_rows(path, spec, needles.scrub, apply=False) == {"notes": 0}
    assert occurrences(path.read_bytes(), needles) == 0

    csv = tmp_path / "long.csv"
    csv.write_text("k,day,who\n" + "".join(f"{i},2023-01-01,{name if i in at else 'x'}\n" for i in range(25_000)))
    datasets = DuckDBDatasets(tmp_path / "datasets.duckdb")
    try:
        datasets.load("long", csv, acl=frozenset({"x"}), valid_time_column="day", key_columns=["k"])
        assert datasets.scrub_text(needles.scrub, apply=True) == {"datasets.long": len(at)}
        assert datasets.scrub_text(needles.scrub, apply=False) == {}
    finally:
        datasets.close()


def test_an_erasure_stopped_before_the_duckdb_file_was_rewritten_is_finished_by_the_next(
    tmp_path: Path, model_url: tuple[str, str]
) -> None:
    url, name = model_url
    home, files = tmp_path / "home", tmp_path / "files"
    files.mkdir()
    seeded = seed(home, files, url, name)
    path = home / "datasets.duckdb"
    db = duckdb.connect(str(path))  # the update made, the process gone before the rewrite
    try:
        db.execute("UPDATE strongroom_data.holders SET holder = 'gone'")
        db.execute("UPDATE strongroom_data._versions SET source_name = 'gone.csv'")
        db.execute("CHECKPOINT")
    finally:
        db.close()
    assert find_rows(seeded.settings, [name]).get("datasets.holders", 0) == 0  # no row shows it
    assert occurrences(path.read_bytes(), Needles.of(name))  # the freed blocks still do
    erase_rows(seeded.settings, [name])
    assert occurrences(path.read_bytes(), Needles.of(name)) == 0


def test_an_identifier_with_sql_and_pattern_characters_matches_only_itself(tmp_path: Path) -> None:
    """Needles never reach SQL and are matched literally: ``%``, ``_``, quotes and regex
    characters in an identifier match those characters, nothing else."""
    hostile = "100%_O'Brien\"; DROP TABLE notes;--(.*)"
    path = tmp_path / "rows.sqlite3"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE notes (body TEXT)")
    near = "100xyO'Brien\"; DROP TABLE notes;--(abc)"  # what a LIKE or regex pattern would match
    db.executemany("INSERT INTO notes VALUES (?)", [(f"re: {hostile.upper()}",), (near,)])
    db.commit()
    db.close()
    spec = [Rows("notes", "notes", text=("body",))]
    needles = Needles.of(hostile)
    assert sqlite_rows(path, spec, needles.scrub, apply=True) == {"notes": 1}
    db = sqlite3.connect(path)
    try:
        assert [r[0] for r in db.execute("SELECT body FROM notes ORDER BY rowid")] == ["re: [erased]", near]
    finally:
        db.close()
