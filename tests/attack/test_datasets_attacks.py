"""Attack: structured datasets (issue 19) from outside, through the Python API, the command line
and real HTTP: reading a dataset one may not, seeing rows after ``as_of`` or loads after
``known_at``, exhausting the engine, hostile files, and what the audit log keeps.

The world: ``prices`` (research) with a row dated after every ``as_of`` below and a correction
loaded after ``FIRST``'s load; ``positions`` (risk), which the analyst may not read. The rows
that must never reach the analyst say so in their ``note``; every other ``note`` is a number,
so a query that casts ``note`` fails only if the engine reads a row it should not.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from strongroom.config import Settings
from strongroom.data.postgres import PostgresDatasets
from strongroom.errors import QueryError
from strongroom.service import Platform
from strongroom.service.datasets import DatasetLoad, DatasetQuery
from strongroom.testing import HashEmbedder
from strongroom.types import Principal
from tests.attack.conftest import Server, cli, serve
from tests.auth.oidc_provider import Provider
from tests.store.conftest import fresh_database, server_url  # noqa: F401 (the store tests' server fixture)

pytestmark = pytest.mark.integration

ANA = Principal("ana", frozenset({"research"}), frozenset({"reader"}), "python")
LOADER = Principal("loader", frozenset({"research", "risk"}), frozenset({"reader", "ingester"}), "python")
AS_OF = "2024-01-05"
FUTURE = "FUTUREROWSECRET"  # a row valid after AS_OF
LATER = "LATERLOADSECRET"  # a correction loaded after FIRST's load
HIDDEN = "KRAKENCOSECRET"  # a row of positions
SECRETS = (FUTURE, LATER, HIDDEN, "777.125", "9917.03")
PRICES = (
    "ticker,day,close,note\n"
    "ZQXW,2024-01-02,101.25,1\n"
    "ZQXW,2024-01-03,102.5,2\n"
    f"ZQXW,2030-01-04,777.125,{FUTURE}\n"
    "WVBN,2024-01-02,55.125,3\n"
)
FIX = f"ticker,day,close,note\nZQXW,2024-01-03,103.75,{LATER}\n"
POSITIONS = f"book,day,counterparty,notional\nrates,2024-01-02,{HIDDEN},9917.03\n"
READER = ["readers", "research"]


@dataclass
class World:
    home: Path
    settings: Settings
    first: str  # known_at of the first load of prices (before the correction)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("datasets-attacks")
    files = root / "files"
    files.mkdir()
    for name, text in (("prices.csv", PRICES), ("fix.csv", FIX), ("positions.csv", POSITIONS)):
        (files / name).write_text(text)
    settings = Settings(home=root / "home", embedder="hash")
    with Platform.open(settings, embedder=HashEmbedder(64)) as p:
        key = ("ticker",)
        first = p.load_dataset(LOADER, DatasetLoad(files / "prices.csv", "prices", frozenset({"research"}), "day", key))
        p.load_dataset(LOADER, DatasetLoad(files / "fix.csv", "prices", frozenset({"research"}), "day", key))
        p.load_dataset(LOADER, DatasetLoad(files / "positions.csv", "positions", frozenset({"risk"}), "day"))
    return World(root / "home", settings, first.loaded_at.isoformat())


@pytest.fixture(scope="module")
def platform(world: World) -> Iterator[Platform]:
    with Platform.open(world.settings, embedder=HashEmbedder(64)) as p:
        yield p


def ask(p: Platform, sql: str, **clocks: str) -> list[tuple[object, ...]]:
    return list(p.query_datasets(ANA, DatasetQuery(sql=sql, **clocks)).rows)


def refused(p: Platform, sql: str, **clocks: str) -> str:
    with pytest.raises(QueryError) as caught:
        p.query_datasets(ANA, DatasetQuery(sql=sql, **clocks))
    return str(caught.value)


# -- entitlements ----------------------------------------------------------------------------

# Where a forbidden dataset (or the engine's own catalog) can hide in one SELECT; each must be
# refused with exactly the words the same SQL gets for a name nobody ever loaded.
HIDING = [
    "WITH prices AS (SELECT * FROM {t}) SELECT * FROM prices",
    "WITH x AS (SELECT 1 AS a) SELECT a FROM x UNION ALL SELECT 1 FROM {t}",
    "SELECT * FROM (WITH {t} AS (SELECT 1 AS a) SELECT * FROM {t}) AS q, {t}",
    "WITH a AS (SELECT * FROM {t}), {t} AS (SELECT 1) SELECT * FROM a",
    "SELECT * FROM prices WHERE EXISTS (FROM {t})",
    "FROM {t} SELECT *",
    "SELECT * FROM prices AS {t}, {t}",
    "SELECT * FROM prices POSITIONAL JOIN {t}",
    "SELECT * FROM prices ASOF JOIN {t} ON prices.day >= {t}.day",
    'SELECT * FROM "{T}"',
    "SELECT * FROM /* prices */ {t} -- prices",
]
# what the engine would resolve if a name slipped past the checker (never a dataset)
SYSTEM = ["duckdb_tables", "duckdb_settings", "pg_class", "pg_stat_activity", "sqlite_master", "_versions", "_staged"]


@pytest.mark.parametrize("shape", HIDING)
def test_a_forbidden_dataset_hidden_anywhere_is_refused_like_a_missing_one(platform: Platform, shape: str) -> None:
    hidden = refused(platform, shape.format(t="positions", T="POSITIONS"))
    missing = refused(platform, shape.format(t="nosuchdata", T="NOSUCHDATA"))
    assert hidden.lower().replace("positions", "X") == missing.lower().replace("nosuchdata", "X")
    assert HIDDEN not in hidden


@pytest.mark.parametrize("name", SYSTEM)
def test_the_engines_catalog_is_not_a_dataset(platform: Platform, name: str) -> None:
    for sql in (f"SELECT * FROM {name}", f"SELECT * FROM strongroom_data.{name}", f'SELECT * FROM "{name}"'):
        message = refused(platform, sql)
        assert "unknown dataset" in message and "positions" not in message, message


# -- look-ahead ------------------------------------------------------------------------------

# A cast that fails on every note but the visible ones (numbers): if the engine evaluated it
# on a row after AS_OF, or on the correction loaded after FIRST, the error would quote it.
PROBES = [
    "SELECT count(*) FROM prices WHERE CAST(note AS INT) > 0",
    "SELECT CAST(note AS INT) AS n FROM prices",
    "SELECT ticker FROM prices WHERE CAST(note AS INT) = 9 OR CAST(note AS DOUBLE) > 0",
    "SELECT max(CAST(note AS DOUBLE)) FILTER (WHERE close > 0) FROM prices",
    "SELECT lead(CAST(note AS INT)) OVER (PARTITION BY ticker ORDER BY day) FROM prices",
    "SELECT a.ticker FROM prices a JOIN prices b ON CAST(a.note AS INT) = CAST(b.note AS INT)",
    "SELECT ticker FROM prices GROUP BY ticker HAVING sum(CAST(note AS INT)) > 0",
    "SELECT ticker FROM prices WHERE ticker = 'ZQXW' AND CASE WHEN close > 500 THEN CAST(note AS INT) END IS NULL",
]


@pytest.mark.parametrize("sql", PROBES)
def test_rows_after_as_of_or_loaded_after_known_at_are_never_evaluated(
    platform: Platform, world: World, sql: str
) -> None:
    rows = ask(platform, sql, as_of=AS_OF, known_at=world.first)
    assert rows and not any(s in str(rows) for s in SECRETS)


def test_aggregates_and_windows_see_nothing_after_either_clock(platform: Platform, world: World) -> None:
    at = {"as_of": AS_OF, "known_at": world.first}
    assert ask(platform, "SELECT max(day), max(close), count(*) FROM prices", **at) == [(date(2024, 1, 3), 102.5, 3)]
    lead = ask(platform, "SELECT lead(close) OVER (ORDER BY day) FROM prices WHERE ticker = 'ZQXW' ORDER BY day", **at)
    assert [r[0] for r in lead] == [102.5, None]
    # the correction is seen from its load on, and the future row never (as_of is clamped to now)
    now = ask(platform, "SELECT close, note FROM prices WHERE ticker = 'ZQXW' ORDER BY day", as_of="2999-12-31")
    assert now == [(101.25, "1"), (103.75, LATER)]


# The clock a query reads must be its as_of, never the machine's: DuckDB resolves these names,
# quoted or not, as today's date and time when no column has them.
CLOCK_READS = [
    'SELECT "current_date"',
    'SELECT "current_timestamp"',
    'SELECT "localtimestamp"',
    'SELECT "localtime"',
    'SELECT "current_time"',
    'SELECT close FROM prices WHERE day >= "current_date" - INTERVAL 30 DAY',
]


@pytest.mark.parametrize("sql", CLOCK_READS)
def test_a_query_cannot_read_the_machines_clock_through_a_quoted_name(platform: Platform, sql: str) -> None:
    assert "reads the clock" in refused(platform, sql, as_of=AS_OF)


@pytest.mark.parametrize("as_of", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_a_clock_past_the_calendars_edge_is_a_refusal(platform: Platform, as_of: str) -> None:
    assert "as_of" in refused(platform, "SELECT 1", as_of=as_of)


# -- resources -------------------------------------------------------------------------------

NESTED = [
    "SELECT " + "+".join(["close"] * 3000) + " FROM prices",
    "SELECT 1 AS a" + " UNION ALL SELECT 1" * 1000,
    "SELECT * FROM prices WHERE " + " OR ".join(["close = 1"] * 1500),
]


@pytest.mark.parametrize("sql", NESTED, ids=["sum-chain", "union-chain", "or-chain"])
def test_a_long_chain_is_refused_not_a_crash(platform: Platform, sql: str) -> None:
    assert len(sql) <= 20_000
    assert "nested too deeply" in refused(platform, sql)


# Each makes one cell (or one window frame) as large as the caller likes: one reader made the
# engine hold 4.4 GB and run three times past its time limit with the window over 1,000 rows.
UNBOUNDED = [
    "SELECT repeat('x', 100000000)",
    "SELECT lpad('x', 100000000, 'y')",
    "SELECT rpad(ticker, 100000000, ticker) FROM prices",
    "SELECT repeat(ticker, CAST(close AS INT) * 1000000) FROM prices",
    "SELECT string_agg(ticker, ',') OVER (ORDER BY day) FROM prices",
    "SELECT array_agg(close) OVER (ORDER BY day ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) FROM prices",
]


@pytest.mark.parametrize("sql", UNBOUNDED)
def test_a_cell_that_grows_without_bound_is_refused_before_the_engine_runs(platform: Platform, sql: str) -> None:
    message = refused(platform, sql)
    assert "the query failed" not in message, message  # the checker's words, not the engine's


def test_small_repeats_and_plain_aggregates_still_work(platform: Platform) -> None:
    assert ask(platform, "SELECT repeat('-', 3), lpad('7', 3, '0')") == [("---", "007")]
    assert ask(
        platform, "SELECT string_agg(ticker, ',' ORDER BY ticker) FROM prices WHERE day = DATE '2024-01-02'"
    ) == [("WVBN,ZQXW",)]


# -- files -----------------------------------------------------------------------------------


def test_a_file_name_with_glob_characters_loads_that_file_only(tmp_path: Path) -> None:
    """DuckDB's readers expand ``*``, ``?`` and ``[...]`` in a path: ``p[0-9].csv`` loaded the
    rows of ``p7.csv`` under ``p[0-9].csv``'s content hash."""
    files = tmp_path / "drop"
    files.mkdir()
    (files / "p[0-9].csv").write_text("ticker,day,close\nMINE,2024-01-02,1\n")
    (files / "p7.csv").write_text("ticker,day,close\nOTHER,2024-01-02,666\n")
    (files / "q*.csv").write_text("ticker,day,close\nMINE,2024-01-02,3\n")
    (files / "qx.csv").write_text("ticker,day,close\nOTHER,2024-01-02,777\n")
    with Platform.open(Settings(home=tmp_path / "home", embedder="hash"), embedder=HashEmbedder(64)) as p:
        for name, dataset in (("p[0-9].csv", "bracket"), ("q*.csv", "star")):
            version = p.load_dataset(LOADER, DatasetLoad(files / name, dataset, frozenset({"research"}), "day"))
            assert version.rows == 1
            rows = p.query_datasets(ANA, DatasetQuery(sql=f"SELECT ticker FROM {dataset}")).rows
            assert rows == (("MINE",),), name


# -- over HTTP, and what the audit log keeps ---------------------------------------------------


@pytest.fixture(scope="module")
def server(world: World, provider: Provider, platform: Platform) -> Iterator[Server]:
    platform.close()  # the service holds the datasets file from here on
    with serve(world.home, provider) as s:
        yield s


def _post(server: Server, sql: str, **more: Any) -> httpx.Response:
    with server.client(READER, sub="mallory") as c:
        return c.post("/v1/datasets/query", json={"sql": sql, **more})


def test_over_http_every_attack_is_a_4xx_and_none_reads_a_secret(server: Server, world: World) -> None:
    attacks = [
        *(shape.format(t="positions", T="POSITIONS") for shape in HIDING),
        *CLOCK_READS,
        *NESTED,
        *UNBOUNDED,
        "SELECT * FROM prices WHERE CAST(note AS INT) > 0",
    ]
    for sql in attacks:
        r = _post(server, sql, as_of=AS_OF, known_at=world.first)
        assert r.status_code in (200, 422), (sql[:80], r.status_code, r.text[:300])
        assert not any(s in r.text for s in SECRETS), sql
    edge = _post(server, "SELECT 1", as_of="0001-01-01T00:00:00+14:00")
    assert edge.status_code == 422, edge.text


def test_the_audit_log_never_holds_a_row_value_after_the_attacks(server: Server, world: World) -> None:
    # an engine message that quotes a row the caller may read goes to the caller, not the log
    quoted = _post(server, "SELECT CAST(note AS INT) FROM prices")
    assert quoted.status_code == 422 and LATER in quoted.text
    records = server.audit()
    mine = [r for r in records if r["principal"] == "mallory"]
    assert {r["action"] for r in mine} == {"datasets.query"} and any(r["outcome"] == "error" for r in mine)
    assert not any(s in str(records) for s in SECRETS)
    # and the bytes of the catalog (where the audit log lives) hold none of them either
    catalog = world.settings.catalog_path
    with sqlite3.connect(catalog) as db:
        db.execute("PRAGMA wal_checkpoint(FULL)")
    raw = b"".join(p.read_bytes() for p in catalog.parent.glob(catalog.name + "*"))
    assert not any(s.encode() in raw for s in SECRETS)


# -- the command line --------------------------------------------------------------------------

HOSTILE_CELLS = 'ticker,day,note\nA,2024-01-02,"\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2Jall clear"\nB,2024-01-02,"\x9b31mred\x1b[8mhidden"\n'


def test_a_cell_never_writes_escape_sequences_to_the_analysts_terminal(tmp_path: Path) -> None:
    """A dataset's cells (an outside CSV's text) printed by ``strongroom data query`` reached the
    terminal raw: OSC 52 writes the clipboard, CSI 2J clears the screen, CSI 8m hides text. They
    show as escapes, in a table, in a script's rows and in an error that quotes a cell."""
    (tmp_path / "cells.csv").write_text(HOSTILE_CELLS)
    home = tmp_path / "home"
    loaded = cli(home, "data", "load", str(tmp_path / "cells.csv"), "--dataset", "cells", "--acl", "research",
                 "--valid-time-column", "day", "--groups", "research")  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr
    rows = cli(home, "data", "query", "SELECT ticker, note FROM cells ORDER BY ticker", "--groups", "research")
    error = cli(home, "data", "query", "SELECT CAST(note AS INT) FROM cells", "--groups", "research")
    assert rows.returncode == 0 and error.returncode != 0
    for shown in (rows.stdout, rows.stderr, error.stdout, error.stderr):
        assert not any(c in shown for c in ("\x1b", "\x07", "\x9b")), repr(shown)
    assert "all clear" in rows.stdout and "\\x1b" in rows.stdout  # shown, as an escape


# -- PostgreSQL --------------------------------------------------------------------------------


@dataclass
class PgWorld:
    store: PostgresDatasets
    first: datetime  # known_at before the correction


@pytest.fixture(scope="module")
def pg(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgWorld]:  # noqa: F811
    files = tmp_path_factory.mktemp("pg-files")
    for name, text in (("prices.csv", PRICES), ("fix.csv", FIX), ("positions.csv", POSITIONS)):
        (files / name).write_text(text)
    store = PostgresDatasets(fresh_database(server_url))
    try:
        research, key = frozenset({"research"}), ["ticker"]
        first = store.load("prices", files / "prices.csv", acl=research, valid_time_column="day", key_columns=key)
        store.load("prices", files / "fix.csv", acl=research, valid_time_column="day", key_columns=key)
        store.load("positions", files / "positions.csv", acl=frozenset({"risk"}), valid_time_column="day")
        yield PgWorld(store, first.loaded_at)
    finally:
        store.close()


def _pg(pg: PgWorld, sql: str) -> tuple[tuple[object, ...], ...]:
    as_of = datetime.fromisoformat(AS_OF + "T23:59:59+00:00")
    return pg.store.query(sql, ["prices"], as_of=as_of, known_at=pg.first).rows


# PostgreSQL reads these strings as the clock wherever they become a date or time
PG_CLOCK_READS = [
    "SELECT CAST('now' AS TIMESTAMP)",
    "SELECT DATE 'today'",
    "SELECT TIMESTAMP 'tomorrow 09:00'",
    "SELECT close FROM prices WHERE day < 'Yesterday'",
    "SELECT close FROM prices WHERE day >= CAST(' NOW ' AS DATE) - INTERVAL 30 DAY",
]


@pytest.mark.parametrize("sql", PG_CLOCK_READS + CLOCK_READS)
def test_on_postgres_a_query_cannot_read_the_servers_clock(pg: PgWorld, sql: str) -> None:
    with pytest.raises(QueryError, match="clock"):
        _pg(pg, sql)


@pytest.mark.parametrize("sql", PROBES)
def test_on_postgres_rows_after_either_clock_are_never_evaluated(pg: PgWorld, sql: str) -> None:
    rows = _pg(pg, sql)
    assert rows and not any(s in str(rows) for s in SECRETS)


@pytest.mark.parametrize("shape", HIDING)
def test_on_postgres_a_forbidden_dataset_is_refused_like_a_missing_one(pg: PgWorld, shape: str) -> None:
    said = []
    for name in ("positions", "nosuchdata"):
        with pytest.raises(QueryError) as caught:
            _pg(pg, shape.format(t=name, T=name.upper()))
        said.append(str(caught.value).lower().replace(name, "X"))
    assert said[0] == said[1]


def test_a_documents_text_and_name_never_write_escape_sequences_to_the_terminal(tmp_path: Path) -> None:
    """``strongroom search``, ``ask`` and ``documents show`` print a document's passages, name and
    title: a hostile file's control characters show as escapes there too, never raw."""
    hostile = tmp_path / "memo\x1b[8m.txt"
    hostile.write_text(
        "Net revenue was 12 million.\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J Net revenue grew in the quarter.\n"
    )
    home = tmp_path / "home"
    ingested = cli(home, "ingest", str(hostile), "--acl", "research", "--groups", "research")
    assert ingested.returncode == 0, ingested.stderr
    shown = [
        cli(home, "search", "net revenue", "--groups", "research"),
        cli(home, "ask", "What was net revenue?", "--groups", "research"),
        cli(home, "show", hostile.name, "--groups", "research"),
        cli(home, "show", hostile.name, "--page", "1", "--groups", "research"),
        cli(home, "documents", "--groups", "research"),
    ]
    for result in shown:
        assert result.returncode == 0, result.stderr
        for text in (result.stdout, result.stderr):
            assert not any(c in text for c in ("\x1b", "\x07", "\x9b")), repr(text)
    assert "\\x1b" in shown[0].stdout  # shown, as an escape


def test_a_query_that_doubles_a_string_is_stopped_by_the_engines_memory_limit(tmp_path: Path) -> None:
    """No dataset, 1.3 KB of SQL: 28 CTEs that each double a string made DuckDB hold 2.6 GB (30
    would be 10 GB on a machine without swap). The engine runs under ``dataset_memory_limit_mb``
    (here 256 MiB, set through the settings as a deployment would): the query is refused."""
    from strongroom.data import open_datasets

    settings = Settings(home=tmp_path / "home", dataset_memory_limit_mb=256)
    store = open_datasets(settings)
    ctes = ["a0 AS (SELECT repeat('x', 1000) AS s)"]
    ctes += [f"a{i} AS (SELECT a{i - 1}.s || a{i - 1}.s AS s FROM a{i - 1})" for i in range(1, 29)]
    now = datetime.now(tz=UTC)
    try:
        with pytest.raises(QueryError, match="memory"):
            store.query("WITH " + ", ".join(ctes) + " SELECT length(s) FROM a28", [], as_of=now, known_at=now)
    finally:
        store.close()
