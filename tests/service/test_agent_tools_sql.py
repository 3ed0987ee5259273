"""Invariants of the pure parts of the agent's tools, for any input a model could write: the
as-of join's SQL is refused (QueryError) or is one checked SELECT over exactly its two
datasets; a tool result always fits its budget; arguments are checked or refused, never
anything else."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom.data.base import DatasetVersion
from strongroom.data.sql import check_select, rewrite
from strongroom.errors import QueryError
from strongroom.service.datasets import DatasetView
from strongroom.service.tool_args import TOOL_ARGS, TOOL_SPECS, AsofJoinArgs, parse_arguments
from strongroom.service.tool_data import asof_sql
from strongroom.service.tool_output import MAX_CONTENT_CHARS, fit, size


def view(name: str, *columns: str) -> DatasetView:
    cols = tuple((c, "VARCHAR") for c in columns)
    version = DatasetVersion(
        name, 1, "0" * 64, datetime(2024, 1, 1, tzinfo=UTC), "t", 1, frozenset({"g"}), "day", (), cols, "f.csv"
    )
    return DatasetView(name, frozenset({"g"}), (version,))


TRADES = view("trades", "ticker", "day", "qty", "side")
PRICES = view("prices", "ticker", "day", "close", "qty")
WORDS = st.sampled_from(
    ["ticker", "day", "qty", "close", "side", "prices", "trades", "mnpi_watchlist", "l", "r", "read_csv", "EXISTS"]
)
SQLISH = st.lists(
    st.one_of(WORDS, st.sampled_from([*" ()'\";,.=<>*+-/%|&!#", "--", "/*", "SELECT", "FROM", "AND", "OR"]),
              st.text(max_size=6)),
    max_size=14,
).map("".join)  # fmt: skip


def test_the_join_reads_exactly_its_two_datasets() -> None:
    args = AsofJoinArgs(left="trades", right="prices", by=["ticker"], where="qty > 100 AND side = 'B'")
    sql = asof_sql(TRADES, PRICES, args)
    assert check_select(sql, ["trades", "prices"]).datasets == ("prices", "trades")
    assert '"r"."qty" AS "prices_qty"' in sql  # a right column named like a left one is renamed
    assert 'WHERE "l"."qty" > 100 AND "l"."side" = \'B\'' in sql


@settings(max_examples=300, deadline=None)
@given(where=SQLISH, column=WORDS, by=st.lists(WORDS, max_size=3))
def test_any_where_is_refused_or_checked_over_the_two_datasets_only(where: str, column: str, by: list[str]) -> None:
    try:
        args = AsofJoinArgs(left="trades", right="prices", by=by, columns=[column], where=where)
        sql = asof_sql(TRADES, PRICES, args)
        read = check_select(sql, ["trades", "prices", "mnpi_watchlist"]).datasets  # as the query op checks it
    except (QueryError, ValueError):  # ValueError: pydantic's, for an argument that is not a name
        return
    assert set(read) <= {"trades", "prices"}
    # and PostgreSQL runs every join the tool builds (as a LATERAL subquery): never a refusal there
    checked = check_select(sql, ["trades", "prices"])
    on_postgres = rewrite(checked, {"trades": "SELECT 1", "prices": "SELECT 2"}, max_rows=10, dialect="postgres")
    assert "LATERAL" in on_postgres and "ASOF" not in on_postgres


@settings(max_examples=200, deadline=None)
@given(items=st.lists(st.text(max_size=900), max_size=60), extra=st.text(max_size=200))
def test_a_result_always_fits_and_says_when_it_was_cut(items: list[str], extra: str) -> None:
    content, kept = fit({"rows": list(items), "sql": extra}, "rows", "rows", "ask for less")
    assert size(content) <= MAX_CONTENT_CHARS
    assert content["rows"] == items[:kept]
    assert ("cut" in content) == (kept < len(items))


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from([*TOOL_ARGS, "nope"]),
    arguments=st.dictionaries(
        st.sampled_from(["query", "k", "sql", "max_rows", "left", "right", "by", "document", "page", "x"]),
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30), st.lists(st.integers(), max_size=3)),
        max_size=4,
    ),
)  # fmt: skip
def test_arguments_are_checked_or_refused_with_a_query_error(name: str, arguments: dict[str, object]) -> None:
    try:
        parse_arguments(name, arguments)
    except QueryError as exc:
        assert str(exc)


def test_arguments_that_are_not_an_object_are_refused() -> None:
    with pytest.raises(QueryError, match="JSON object"):
        parse_arguments("search_documents", ["net sales"])  # type: ignore[arg-type]


def test_null_is_an_argument_left_out_and_the_schemas_are_plain() -> None:
    assert parse_arguments("search_documents", {"query": "net sales", "k": None, "doc_types": None}).k == 5  # type: ignore[attr-defined]
    for spec in TOOL_SPECS:
        text = json.dumps(spec.parameters)
        assert not any(word in text for word in ('"anyOf"', '"$ref"', '"$defs"', '"title"')), spec.name
        assert "description" not in spec.parameters and spec.description
