"""ASOF JOIN as a LATERAL subquery (for PostgreSQL): the forms it rewrites, the ones it refuses
with a message that says how to write them, and that the rewrite reads nothing the checked
query did not (the contract runs the joins on both engines: dataset_contract.py)."""

from __future__ import annotations

import pytest
import sqlglot
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlglot import exp

from strongroom.data.asof import asof_as_lateral
from strongroom.data.sql import check_select, rewrite
from strongroom.errors import QueryError

VIEWS = {"trades": "SELECT * FROM strongroom_data.trades", "prices": "SELECT * FROM strongroom_data.prices"}


def lateral(sql: str) -> str:
    return asof_as_lateral(sqlglot.parse_one(sql, read="duckdb")).sql("postgres")


def on_postgres(sql: str) -> str:
    return rewrite(check_select(sql, ["trades", "prices"]), VIEWS, max_rows=100, dialect="postgres")


@pytest.mark.parametrize(
    ("inequality", "order"),
    [
        ("t.day >= p.day", "p.day DESC"),
        ("t.day > p.day", "p.day DESC"),
        ("p.day <= t.day", "p.day DESC"),
        ("p.day < t.day", "p.day DESC"),
        ("t.day <= p.day", "p.day ASC"),
        ("p.day >= t.day", "p.day ASC"),
        ("t.day + INTERVAL 1 DAY > p.day", "p.day DESC"),
        ("t.day >= p.day + INTERVAL 2 DAY", "p.day + INTERVAL '2 DAY' DESC"),
    ],
)
def test_the_inequality_says_which_right_row_is_nearest(inequality: str, order: str) -> None:
    sql = lateral(f"SELECT t.qty, p.close FROM trades t ASOF JOIN prices p ON t.ticker = p.ticker AND {inequality}")
    assert sql.startswith("SELECT t.qty, p.close FROM trades AS t CROSS JOIN LATERAL (SELECT * FROM prices AS p WHERE ")
    assert sql.endswith(f"ORDER BY {order} LIMIT 1) AS p")
    assert "ASOF" not in sql


def test_asof_left_join_keeps_unmatched_rows_and_nested_joins_are_rewritten() -> None:
    sql = lateral(
        "WITH j AS (SELECT t.qty, p.close FROM trades t ASOF LEFT JOIN prices p ON t.ticker IS NOT DISTINCT FROM "
        "p.ticker AND t.day >= p.day) SELECT * FROM j WHERE qty IN (SELECT q.qty FROM trades q ASOF JOIN prices "
        "AS r ON r.day <= q.day)"
    )
    assert "LEFT JOIN LATERAL (SELECT * FROM prices AS p WHERE t.ticker IS NOT DISTINCT FROM p.ticker" in sql
    assert ") AS p ON TRUE" in sql
    assert "CROSS JOIN LATERAL (SELECT * FROM prices AS r WHERE r.day <= q.day ORDER BY r.day DESC LIMIT 1) AS r" in sql
    assert "ASOF" not in sql


def test_on_postgres_the_right_side_is_its_visible_rows() -> None:
    sql = on_postgres('SELECT l.*, r."close" FROM trades AS l ASOF JOIN prices AS r ON l."ticker" = r."ticker" '
                      'AND l."day" >= r."day" ORDER BY l."day"')  # fmt: skip
    assert "CROSS JOIN LATERAL (SELECT * FROM (SELECT * FROM strongroom_data.prices) AS r WHERE" in sql
    assert 'ORDER BY r."day" DESC LIMIT 1) AS r' in sql and "ASOF" not in sql
    assert on_postgres("SELECT * FROM trades t ASOF JOIN prices p ON t.day >= p.day") != lateral(
        "SELECT * FROM trades t ASOF JOIN prices p ON t.day >= p.day"
    )
    duck = rewrite(check_select("SELECT * FROM trades t ASOF JOIN prices p ON t.day >= p.day", ["trades", "prices"]),
                   VIEWS, max_rows=100)  # fmt: skip
    assert "ASOF JOIN" in duck  # DuckDB runs its own join


@pytest.mark.parametrize(
    ("on", "says"),
    [
        ("USING (ticker, day)", "needs ON here"),
        ("ON ticker = p.ticker AND t.day >= p.day", "name the table of column 'ticker'"),
        ("ON t.ticker = p.ticker", "one inequality"),
        ("ON t.day >= p.day AND t.day < p.day", "one inequality"),
        ("ON t.ticker = p.ticker AND t.day >= p.day OR t.qty > 1", "one inequality"),
        ("ON t.ticker = p.ticker AND t.day >= p.day AND t.qty > 1", "one inequality"),
        ("ON t.ticker <> p.ticker AND t.day >= p.day", "one inequality"),
        ("ON t.day >= t.day", "compares p's column with the other side's"),
        ("ON p.day + t.qty >= p.day", "compares p's column with the other side's"),
        ("ON t.day - p.day >= 0", "compares p's column with the other side's"),
    ],
)
def test_a_join_without_a_lateral_form_is_refused_saying_how(on: str, says: str) -> None:
    with pytest.raises(QueryError, match=says):
        lateral(f"SELECT * FROM trades t ASOF JOIN prices p {on}")


def test_only_inner_and_left_asof_joins_are_rewritten() -> None:
    for join in ("ASOF RIGHT JOIN", "ASOF FULL JOIN"):
        try:
            tree = sqlglot.parse_one(f"SELECT * FROM trades t {join} prices p ON t.day >= p.day", read="duckdb")
        except sqlglot.errors.ParseError:
            continue  # not even parsed
        with pytest.raises(QueryError, match="only ASOF JOIN and ASOF LEFT JOIN"):
            asof_as_lateral(tree)


NAMES = st.sampled_from(["t.day", "p.day", "t.ticker", "p.ticker", "t.qty", "p.close", "day", "x.day", "1"])
OPS = st.sampled_from(["=", ">=", ">", "<=", "<", "<>", "IS NOT DISTINCT FROM", "+"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(NAMES, OPS, NAMES), min_size=1, max_size=4), st.sampled_from(["AND", "OR"]))
def test_any_condition_is_refused_or_reads_only_the_two_views(parts: list[tuple[str, str, str]], glue: str) -> None:
    condition = f" {glue} ".join(" ".join(p) for p in parts)
    try:
        sql = on_postgres(f"SELECT t.qty FROM trades t ASOF JOIN prices p ON {condition}")
    except QueryError:
        return
    tree = sqlglot.parse_one(sql, read="postgres")
    assert {t.sql() for t in tree.find_all(exp.Table)} == {"strongroom_data.trades", "strongroom_data.prices"}
    assert "ASOF" not in sql and sql.count("LATERAL") == 1
