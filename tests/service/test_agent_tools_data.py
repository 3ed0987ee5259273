"""The research agent's data tools (list_datasets, query_data, asof_join, calculate) over real
datasets in the embedded engine, through the sync driver: a dataset outside the principal's
groups is refused before anything runs with the words used for one that does not exist (in
a join and a CTE too); no row valid after ``as_of`` and no correction loaded after
``known_at`` is ever seen; an as-of join pastes no text into SQL; records hold no row values."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from strongroom.agent.clearance import evidence_clearance
from strongroom.config import Settings
from strongroom.errors import QueryError
from strongroom.service import Platform
from strongroom.service.agent_tools import TOOL_ACTION, EntitledToolbox, toolbox_for
from strongroom.service.tool_output import MAX_CONTENT_CHARS
from strongroom.testing import HashEmbedder
from strongroom.types import Principal

from .agent_world import ANA, EVE, LOADER, SECRETS, World, audit_events, load_datasets

AS_OF = "2023-06-30"  # the 2023-07-03 rows are after it


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    settings = Settings(home=tmp_path_factory.mktemp("home"), embedder="hash")
    with Platform.open(settings, embedder=HashEmbedder(64)) as p:
        built = World(p, tmp_path_factory.mktemp("files"))
        load_datasets(built)
        yield built


def tools(world: World, who: Principal = ANA, **clocks: object) -> EntitledToolbox:
    clocks.setdefault("as_of", AS_OF)
    return toolbox_for(world.platform, who, run_id="run-data", **clocks)  # type: ignore[arg-type]


def rows(out: object) -> list[list[object]]:
    return out.content["rows"]  # type: ignore[attr-defined,no-any-return]


def refusal(box: EntitledToolbox, name: str, arguments: dict[str, object]) -> str:
    with pytest.raises(QueryError) as caught:
        box.call(name, arguments)
    return str(caught.value)


def test_list_datasets_shows_only_those_the_principal_may_read(world: World) -> None:
    listed = tools(world).call("list_datasets", {}).content["datasets"]
    assert [d["name"] for d in listed] == ["prices", "ticks", "trades"]  # type: ignore[index,union-attr]
    prices = listed[0]  # type: ignore[index]
    assert prices["valid_time_column"] == "day" and prices["key_columns"] == ["ticker"]
    assert [c["name"] for c in prices["columns"]] == ["ticker", "day", "close"] and prices["version"] == 2
    loader = tools(world, LOADER).call("list_datasets", {}).content["datasets"]
    assert [d["name"] for d in loader] == ["mnpi_watchlist", "prices", "ticks", "trades"]  # type: ignore[index,union-attr]
    assert tools(world, EVE).call("list_datasets", {}).content["datasets"] == []
    assert tools(world, known_at=world.before_fix).call("list_datasets", {}).content["datasets"][0]["version"] == 1  # type: ignore[index]


def test_the_schemas_listed_carry_their_datasets_clearance(world: World) -> None:
    out = tools(world).call("list_datasets", {})
    (ev,) = out.evidence  # the schemas come from entitled datasets: the next turn counts them
    listed: list[dict[str, Any]] = out.content["datasets"]  # type: ignore[assignment]
    assert ev.kind == "schema" and ev.numbers == ()
    assert ev.ref["datasets"] == [[d["name"], d["version"], d["sha256"]] for d in listed]
    need = evidence_clearance([{"kind": ev.kind, "ref": ev.ref}])
    assert need.sensitivity == "confidential"
    assert need.forced_by == tuple(f"dataset:{d['name']}@{d['version']}" for d in listed)
    assert tools(world, EVE).call("list_datasets", {}).evidence == ()  # nothing listed, nothing to count


def test_a_query_cites_its_sql_versions_clocks_and_rows(world: World) -> None:
    out = tools(world).call("query_data", {"sql": "SELECT day, close FROM prices WHERE ticker = 'ZQXW' ORDER BY day"})
    assert rows(out) == [["2023-06-28", 101.25], ["2023-06-29", 103.75], ["2023-06-30", 104.0]]
    (ev,) = out.evidence
    assert ev.kind == "query" and ev.ref["sql"].startswith("SELECT day, close")  # type: ignore[attr-defined]
    assert ev.ref["datasets"] == [["prices", 2, ev.ref["datasets"][0][2]]] and ev.ref["rows"] == 3  # type: ignore[index]
    assert ev.ref["as_of"] == "2023-06-30T23:59:59.999999+00:00"
    assert "2023-06-29 | 103.75" in ev.text and "103.75" in ev.numbers
    assert out.content["executed_sql"] != ev.ref["sql"]  # what the engine ran: the visible rows only


def test_no_row_valid_after_as_of_through_any_tool(world: World) -> None:
    every = tools(world).call("query_data", {"sql": "SELECT max(day) AS last, count(*) AS n FROM prices"})
    assert rows(every) == [["2023-06-30", 4]]
    joined = tools(world).call(
        "asof_join", {"left": "trades", "right": "prices", "by": ["ticker"], "columns": ["close"]}
    )
    assert all(str(r[1]) <= "2023-06-30" for r in rows(joined))
    later = tools(world, as_of="2023-07-31").call("query_data", {"sql": "SELECT max(close) FROM prices"})
    assert rows(later) == [[187.44]]  # the row was there all along, only after as_of


def test_a_correction_is_invisible_before_it_was_loaded(world: World) -> None:
    sql = {"sql": "SELECT close FROM prices WHERE ticker = 'ZQXW' AND day = DATE '2023-06-29'"}
    assert rows(tools(world).call("query_data", sql)) == [[103.75]]
    before = tools(world, known_at=world.before_fix).call("query_data", sql)
    assert rows(before) == [[102.5]] and before.evidence[0].ref["datasets"][0][1] == 1  # type: ignore[index]


def test_an_as_of_join_brings_the_price_in_force_at_each_trade(world: World) -> None:
    out = tools(world).call(
        "asof_join",
        {"left": "trades", "right": "prices", "by": ["ticker"], "columns": ["close", "day"], "where": "qty >= 100"},
    )
    assert out.content["columns"] == ["ticker", "day", "qty", "close", "prices_day"]
    assert rows(out) == [
        ["ZQXW", "2023-06-29", 100, 103.75, "2023-06-29"],
        ["ZQXW", "2023-06-30", 250, 104.0, "2023-06-30"],
    ]
    assert "ASOF JOIN" in str(out.evidence[0].ref["sql"])


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ({"left": "trades", "right": "prices", "by": ["symbol"]}, "'symbol' is not a column of trades"),
        ({"left": "trades", "right": "prices", "columns": ['close"; DROP TABLE x; --']}, "columns.0: "),
        ({"left": "trades", "right": "prices", "where": "qty > (SELECT 1)"}, "no subqueries"),
        ({"left": "trades", "right": "prices", "where": "close > 1"}, "'close' is not a column of trades"),
        ({"left": "trades", "right": "prices", "where": "prices.close > 1"}, "only trades's columns"),
        ({"left": "trades", "right": "prices", "where": "1; DROP TABLE trades"}, "not one SQL boolean"),
        ({"left": "trades", "right": "trades"}, "the same dataset"),
    ],
)
def test_an_as_of_join_pastes_no_text_into_sql(world: World, arguments: dict[str, object], says: str) -> None:
    assert says in refusal(tools(world), "asof_join", arguments)


def test_a_dataset_outside_the_groups_is_refused_as_if_it_did_not_exist(world: World) -> None:
    box = tools(world)

    def same(sql_or_args: dict[str, object], tool: str = "query_data") -> None:
        hidden = refusal(box, tool, sql_or_args)
        missing = refusal(box, tool, json.loads(json.dumps(sql_or_args).replace("mnpi_watchlist", "no_such_data")))
        assert hidden.replace("mnpi_watchlist", "X") == missing.replace("no_such_data", "X")
        assert "KRAKENCO" not in hidden

    same({"sql": "SELECT * FROM mnpi_watchlist"})
    same({"sql": "SELECT p.close FROM prices p JOIN mnpi_watchlist w ON p.ticker = w.ticker"})
    same({"sql": "WITH w AS (SELECT * FROM mnpi_watchlist) SELECT * FROM w"})
    same({"sql": "SELECT * FROM prices WHERE ticker IN (SELECT ticker FROM mnpi_watchlist)"})
    same({"left": "trades", "right": "mnpi_watchlist", "by": ["ticker"]}, "asof_join")
    allowed = tools(world, LOADER).call("query_data", {"sql": "SELECT count(*) FROM mnpi_watchlist"})
    assert rows(allowed) == [[1]]  # it exists, for its readers


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_csv_auto('/etc/passwd')",
        "SELECT * FROM 'prices.csv'",
        "COPY prices TO '/tmp/out.csv'",
        "SELECT 1; DROP TABLE prices",
        "ATTACH '/tmp/x.db' AS x",
    ],
)
def test_sql_reads_only_datasets(world: World, sql: str) -> None:
    refusal(tools(world), "query_data", {"sql": sql})


def test_a_document_that_gives_orders_does_not_widen_a_run(world: World) -> None:
    """The memo in the corpus orders an agent to query mnpi_watchlist; whatever the model makes
    of it, the outsider's toolbox still reads only what its principal may."""
    box = tools(world, EVE)
    for name, arguments in [
        ("query_data", {"sql": "SELECT * FROM mnpi_watchlist"}),
        ("asof_join", {"left": "mnpi_watchlist", "right": "prices"}),
        ("query_data", {"sql": "SELECT * FROM prices"}),
    ]:
        with pytest.raises(QueryError, match="unknown dataset"):
            box.call(name, arguments)
    assert box.call("list_datasets", {}).content["datasets"] == []


def test_a_large_result_is_cut_to_fit_and_says_so(world: World) -> None:
    sql = {"sql": "SELECT n, repeat('x', 40) AS pad FROM ticks ORDER BY n", "max_rows": 1000}
    out = tools(world).call("query_data", sql)
    assert len(json.dumps(out.content)) <= MAX_CONTENT_CHARS
    assert "cut" in out.content and out.content["row_count"] == 1000
    assert len(out.evidence[0].text.splitlines()) == len(rows(out)) + 1  # the evidence is what was shown


def test_calculate_is_exact_and_cites_its_formula(world: World) -> None:
    out = tools(world).call("calculate", {"expression": "(b - a) / a * 100", "variables": {"a": "102.50", "b": 103.75}})
    assert out.content["formula"] == "(103.75 - 102.5) / 102.5 * 100"
    assert out.content["value"].startswith("1.219512195")  # type: ignore[union-attr]
    (ev,) = out.evidence
    assert ev.kind == "calculation" and ev.ref["inputs"] == {"a": "102.5", "b": "103.75"}


def test_records_hold_the_sql_and_versions_never_the_rows(world: World) -> None:
    box = toolbox_for(world.platform, LOADER, as_of=AS_OF, run_id="run-rows")
    box.call("query_data", {"sql": "SELECT * FROM mnpi_watchlist"})
    box.call("asof_join", {"left": "trades", "right": "prices", "by": ["ticker"]})
    with pytest.raises(QueryError):
        box.call("query_data", {"sql": "DELETE FROM prices"})
    mine = [r for r in audit_events(world.platform, TOOL_ACTION) if r["target"] == "run-rows"]
    assert [(r["action"], r["outcome"]) for r in mine] == [
        ("agent.tool.query_data", "ok"),
        ("agent.tool.asof_join", "ok"),
        ("agent.tool.query_data", "error"),
    ]
    assert mine[0]["filters"]["datasets"][0][:2] == ["mnpi_watchlist", 1]  # type: ignore[index]
    assert mine[0]["detail"] == "1 rows" and "SELECT * FROM mnpi_watchlist" in str(mine[0]["query"])
    everything = json.dumps(audit_events(world.platform))
    assert not [s for s in SECRETS if s in everything]


def test_an_engine_error_that_quotes_a_row_is_not_copied_into_the_tool_record(world: World) -> None:
    box = toolbox_for(world.platform, LOADER, run_id="run-cast")
    with pytest.raises(QueryError) as caught:
        box.call("query_data", {"sql": "SELECT CAST(reason AS INTEGER) FROM mnpi_watchlist"})
    assert "KRAKENCO" in str(caught.value)  # the caller may read the row: the model is told
    (record,) = [r for r in audit_events(world.platform, TOOL_ACTION) if r["target"] == "run-cast"]
    assert record["outcome"] == "error" and "KRAKENCO" not in json.dumps(record)
    assert record["detail"].startswith("QueryError from the query_datasets operation")  # type: ignore[union-attr]
