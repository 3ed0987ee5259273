"""The SQL checker and rewrite: what is refused and why, what a rewrite produces, and (with
Hypothesis) that whatever the SQL, an accepted query reads no dataset outside ``allowed``."""

from __future__ import annotations

import re
from collections.abc import Iterator

import duckdb
import pytest
import sqlglot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlglot import exp

from strongroom.data.sql import MAX_SQL_CHARS, CheckedSelect, check_select, rewrite
from strongroom.errors import QueryError

ALLOWED = ("prices", "rates")
FORBIDDEN = ("secret", "desk_pnl")
VIEWS = {name: f"SELECT marker FROM strongroom_data.{name}" for name in ALLOWED}

# None: accepted (a comment that hides a statement is only a comment)
ATTACKS: dict[str, str | None] = {
    "SELECT * FROM read_csv_auto('/etc/passwd')": "table functions are not allowed",
    "SELECT * FROM read_parquet('s3://bucket/x.parquet')": "table functions are not allowed",
    "SELECT * FROM glob('/*')": "table functions are not allowed",
    "SELECT * FROM range(100000000)": "table functions are not allowed",
    "SELECT * FROM duckdb_settings()": "table functions are not allowed",
    "SELECT * FROM 'prices.csv'": "unknown dataset 'prices.csv'",
    "SELECT * FROM '/etc/passwd'": "unknown dataset '/etc/passwd'",
    "COPY prices TO '/tmp/out.csv'": "only SELECT queries are allowed, not COPY",
    "COPY (SELECT * FROM prices) TO '/tmp/out.csv'": "only SELECT queries are allowed",
    "ATTACH '/tmp/other.duckdb' AS other": "only SELECT queries are allowed, not ATTACH",
    "INSTALL httpfs": "only SELECT queries are allowed",
    "LOAD httpfs": "only SELECT queries are allowed",
    "PRAGMA database_list": "only SELECT queries are allowed, not PRAGMA",
    "SET enable_external_access = true": "only SELECT queries are allowed, not SET",
    "RESET lock_configuration": "only SELECT queries are allowed",
    "CALL pragma_version()": "only SELECT queries are allowed",
    "DROP TABLE prices": "only SELECT queries are allowed, not DROP",
    "DELETE FROM prices": "only SELECT queries are allowed, not DELETE",
    "INSERT INTO prices SELECT * FROM prices": "only SELECT queries are allowed, not INSERT",
    "UPDATE prices SET close = 0": "only SELECT queries are allowed, not UPDATE",
    "CREATE TABLE x AS SELECT * FROM prices": "only SELECT queries are allowed, not CREATE",
    "SELECT 1; DROP TABLE prices": "2 statements",
    "SELECT * FROM prices; SELECT * FROM secret": "2 statements",
    "SELECT * INTO copy FROM prices": "'Into' is not allowed",
    "SELECT * FROM prices FOR UPDATE": "'Lock' is not allowed",
    "SELECT pg_read_file('/etc/passwd')": "function 'pg_read_file' is not allowed",
    "SELECT * FROM prices WHERE pg_sleep(10) IS NULL": "function 'pg_sleep' is not allowed",
    "SELECT getenv('HOME')": "function 'getenv' is not allowed",
    "SELECT current_setting('enable_external_access')": "function 'current_setting' is not allowed",
    "SELECT query('SELECT * FROM secret')": "function 'query' is not allowed",
    "SELECT * FROM query_table('secret')": "table functions are not allowed",
    "SELECT now()": "function 'now' is not allowed",
    "SELECT current_date": "reads the clock",
    "SELECT * FROM information_schema.tables": "name a dataset without a schema",
    "SELECT * FROM pg_catalog.pg_class": "name a dataset without a schema",
    "SELECT * FROM strongroom_data.prices": "name a dataset without a schema",
    "SELECT * FROM main.secret": "name a dataset without a schema",
    "SELECT * FROM duckdb_tables": "unknown dataset 'duckdb_tables'",
    "SELECT * FROM pg_class": "unknown dataset 'pg_class'",
    "SELECT * FROM secret": "unknown dataset 'secret'",
    'SELECT * FROM "SECRET"': "unknown dataset 'secret'",
    "SELECT * FROM prices WHERE close > (SELECT max(pnl) FROM desk_pnl)": "unknown dataset 'desk_pnl'",
    "SELECT * FROM prices p JOIN secret s ON p.ticker = s.ticker": "unknown dataset 'secret'",
    "SELECT * FROM prices UNION ALL SELECT * FROM secret": "unknown dataset 'secret'",
    "WITH prices AS (SELECT * FROM secret) SELECT * FROM prices": "unknown dataset 'secret'",
    "WITH x AS (SELECT 1) SELECT * FROM (WITH secret AS (SELECT 1) SELECT * FROM secret) t, secret": "unknown dataset 'secret'",
    "WITH a AS (SELECT * FROM b), b AS (SELECT * FROM secret) SELECT * FROM a": "unknown dataset 'b'",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT * FROM r": "recursive WITH",
    "SELECT * FROM prices /* ; DROP TABLE prices */ WHERE ticker = 'x' -- ; SELECT * FROM secret": None,
    "SELECT * FROM prices, LATERAL (SELECT * FROM secret)": "'Lateral' is not allowed",
    "SELECT * FROM unnest([1, 2])": "'unnest' is not allowed",
    "SELECT * FROM prices TABLESAMPLE 10%": "sample is not allowed",
    "SELECT $1": "'Placeholder' is not allowed",
    "SELECT 'pg_authid'::regclass": "CAST to 'regclass' is not allowed",
    "SELECT CAST(ticker AS JSON) FROM prices": "CAST to 'JSON' is not allowed",
    "SELECT CAST(ticker AS BLOB) FROM prices": "CAST to 'VARBINARY' is not allowed",
    "SELECT * FROM prices LIMIT 10%": "not allowed",
    "": "empty",
    "   ;  ": "0 statements",
    "SELEC * FROM prices": "not valid SQL",
    "SELECT * FROM prices WHERE": "not valid SQL",
    "SELECT " + "(" * 5000 + "1" + ")" * 5000: "nested too deeply",
    "SELECT 1" + " " * MAX_SQL_CHARS: "characters, over",
}


@pytest.mark.parametrize(("sql", "message"), ATTACKS.items(), ids=[s[:60] for s in ATTACKS])
def test_attacks_are_refused_with_a_reason(sql: str, message: str | None) -> None:
    if message is None:
        assert check_select(sql, ALLOWED).datasets == ("prices",)
        return
    with pytest.raises(QueryError, match=re.escape(message)):
        check_select(sql, ALLOWED)


def test_a_forbidden_dataset_and_a_missing_one_get_the_same_answer() -> None:
    answers = set()
    for name in ("secret", "no_such_dataset"):
        with pytest.raises(QueryError) as info:
            check_select(f"SELECT count(*) FROM {name}", ["prices"])
        answers.add(str(info.value).replace(name, "X"))
    assert answers == {"unknown dataset 'X'; these are yours: prices"}


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT close FROM prices WHERE ticker = 'ACME' AND date <= DATE '2024-03-28' ORDER BY date DESC LIMIT 1",
        "WITH last AS (SELECT ticker, max(date) AS d FROM prices GROUP BY ticker) SELECT * FROM last",
        "SELECT ticker, avg(close) FILTER (WHERE close > 0), stddev_samp(close), median(close) FROM prices GROUP BY 1",
        "SELECT ticker, close / lag(close) OVER (PARTITION BY ticker ORDER BY date) - 1 AS ret FROM prices",
        "SELECT * FROM prices QUALIFY row_number() OVER (PARTITION BY ticker ORDER BY date DESC) = 1",
        "SELECT p.ticker, r.rate FROM prices p JOIN rates r ON p.date = r.date WHERE r.tenor = '10y'",
        "SELECT date_trunc('month', date) AS m, extract(year FROM date), date_part('dow', date) FROM prices",
        "SELECT CASE WHEN close > 10 THEN 'high' ELSE 'low' END, CAST(close AS DECIMAL(18, 2)) FROM prices",
        "SELECT upper(ticker) || '-' || lower(ticker), coalesce(close, 0), round(close, 2) FROM prices",
        "SELECT ticker FROM prices UNION SELECT ticker FROM rates EXCEPT SELECT 'X'",
        "SELECT * FROM (VALUES (1, 'a'), (2, 'b')) AS t(n, s)",
        "SELECT date + INTERVAL 1 DAY, date - INTERVAL '1 month' FROM prices",
        "SELECT ticker FROM prices WHERE ticker LIKE 'A\\_%' ESCAPE '\\'",
        "SELECT CAST(close AS BIGINT), CAST(date AS TIMESTAMP), TRY_CAST(ticker AS DOUBLE), close::VARCHAR FROM prices",
        'SELECT "Prices".close FROM "Prices"',
        "FROM prices",
    ],
)
def test_ordinary_analysis_is_accepted(sql: str) -> None:
    checked = check_select(sql, ALLOWED)
    assert set(checked.datasets) <= set(ALLOWED) and checked.sql == sql


def test_rewrite_reads_each_dataset_through_its_view_under_its_own_name() -> None:
    checked = check_select("SELECT p.close FROM prices AS p JOIN rates ON p.date = rates.date", ALLOWED)
    sql = rewrite(checked, VIEWS, max_rows=5)
    assert sql == (
        "SELECT p.close FROM (SELECT marker FROM strongroom_data.prices) AS p JOIN "
        "(SELECT marker FROM strongroom_data.rates) AS rates ON p.date = rates.date LIMIT 6"
    )
    # the checked tree is left as it was
    assert rewrite(checked, VIEWS, max_rows=1).endswith("LIMIT 2")


@pytest.mark.parametrize(
    ("sql", "limit"),
    [
        ("SELECT * FROM prices", "LIMIT 11"),
        ("SELECT * FROM prices LIMIT 3", "LIMIT 3"),
        ("SELECT * FROM prices LIMIT 3 OFFSET 4", "LIMIT 3 OFFSET 4"),
        ("SELECT * FROM prices LIMIT 500", "LIMIT 11"),
        ("SELECT * FROM prices ORDER BY 1 LIMIT 1 + 1000", "limited LIMIT 11"),
        ("SELECT 1 UNION ALL SELECT 2 LIMIT 100", "SELECT 2 LIMIT 11"),
    ],
)
def test_rewrite_caps_the_rows_at_max_rows_plus_one(sql: str, limit: str) -> None:
    assert rewrite(check_select(sql, ALLOWED), VIEWS, max_rows=10).endswith(limit)


def test_rewrite_transpiles_to_postgresql() -> None:
    checked = check_select(
        "SELECT ticker, close::INT, date_trunc('month', date) FROM prices WHERE ticker ILIKE 'a%'", ALLOWED
    )
    sql = rewrite(checked, VIEWS, max_rows=10, dialect="postgres")
    assert "CAST(close AS INT)" in sql and "ILIKE" in sql and sql.endswith("LIMIT 11")
    with pytest.raises(QueryError, match="cannot run on postgres"):
        rewrite(check_select("SELECT * EXCLUDE (close) FROM prices", ALLOWED), VIEWS, max_rows=1, dialect="postgres")


# -- properties ----------------------------------------------------------------------------

NAMES = (*ALLOWED, *FORBIDDEN, "cte_a", "cte_b")


@st.composite
def table_names(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from([*ALLOWED * 6, *FORBIDDEN, "cte_a", "cte_b", *FORBIDDEN]))
    style = draw(st.sampled_from(["plain", "quoted", "upper", "quoted_upper"]))
    if style == "quoted":
        return f'"{name}"'
    if style == "upper":
        return name.upper()
    return f'"{name.upper()}"' if style == "quoted_upper" else name


@st.composite
def selects(draw: st.DrawFn, depth: int = 0) -> str:
    source: str = draw(table_names())
    if depth < 2 and draw(st.booleans()):
        source = f"({draw(selects(depth + 1))})"
    alias = draw(st.sampled_from(["", " AS t", " x"]))
    sql = f"SELECT marker FROM {source}{alias}"
    if depth < 2 and draw(st.booleans()):
        sql += f" WHERE marker IN ({draw(selects(depth + 1))})"
    if depth < 2 and draw(st.booleans()):
        sql += f" UNION ALL {draw(selects(depth + 1))}"
    return sql


@st.composite
def queries(draw: st.DrawFn) -> str:
    body = draw(selects())
    ctes = draw(
        st.lists(
            st.tuples(st.sampled_from(["cte_a", "cte_b", *FORBIDDEN, *FORBIDDEN, *ALLOWED]), selects(1)),
            max_size=2,
            unique_by=lambda cte: cte[0],
        )
    )
    if ctes:
        body = "WITH " + ", ".join(f"{name} AS ({sql})" for name, sql in ctes) + " " + body
    return body


@pytest.fixture(scope="module")
def engine() -> Iterator[duckdb.DuckDBPyConnection]:
    """Every name exists in the engine: the datasets' tables (schema strongroom_data) and bait
    tables (in main) a query would read if a reference escaped the rewrite."""
    db = duckdb.connect()
    db.execute("CREATE SCHEMA strongroom_data")
    for name in NAMES:
        for schema in ("strongroom_data", "main"):
            db.execute(f"CREATE TABLE {schema}.{name} AS SELECT '{schema}.{name}' AS marker")
    yield db
    db.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(queries())
def test_an_accepted_query_reads_only_allowed_datasets(engine: duckdb.DuckDBPyConnection, sql: str) -> None:
    try:
        checked = check_select(sql, ALLOWED)
    except QueryError as exc:
        assert "unknown dataset" in str(exc)
        return
    assert set(checked.datasets) <= set(ALLOWED)
    executed = rewrite(checked, VIEWS, max_rows=1000)
    tables = [t for t in sqlglot.parse_one(executed, read="duckdb").find_all(exp.Table)]
    assert all(t.db == "strongroom_data" and t.name in ALLOWED for t in tables if t.db)
    markers = {row[0] for row in engine.execute(executed).fetchall()}
    assert markers <= {f"strongroom_data.{name}" for name in ALLOWED}, executed


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=200) | st.lists(st.sampled_from([*NAMES, "SELECT", "FROM", "WITH", "AS", "(", ")", ",", ";", "*", "'", '"', "read_csv", "UNION", "--", "/*", "*/", "\n", "x"]), max_size=30).map(" ".join))  # fmt: skip
def test_whatever_the_text_the_checker_answers_or_refuses(sql: str) -> None:
    try:
        checked = check_select(sql, ALLOWED)
    except QueryError:
        return
    assert isinstance(checked, CheckedSelect) and set(checked.datasets) <= set(ALLOWED)
    rewrite(checked, VIEWS, max_rows=10)
