"""The research agent's document tools as entitled, audited operations (through the sync
driver, :class:`~strongroom.service.Platform`, over a real home with real ingested filings):
a toolbox reads exactly what its principal may read at its clocks, whatever a document says;
every call and every refusal is audited without document text; malformed arguments are a
QueryError that names the problem; results stay small."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from strongroom.agent.clearance import evidence_clearance
from strongroom.config import Settings
from strongroom.errors import NotFound, PermissionDenied, QueryError
from strongroom.service import Platform
from strongroom.service.agent_tools import TOOL_ACTION, EntitledToolbox, toolbox_for
from strongroom.service.tool_output import MAX_CONTENT_CHARS
from strongroom.testing import HashEmbedder
from strongroom.types import Principal, utcnow

from .agent_world import AAPL_2023, ANA, EVE, NOBODY, RATES, SECRETS, STRUCT, World, audit_events, build_documents

CONTRACT = {
    "search_documents": {"query", "k", "doc_types"},
    "list_datasets": set(),
    "query_data": {"sql", "max_rows"},
    "asof_join": {"left", "right", "by", "left_time", "right_time", "columns", "where", "max_rows"},
    "calculate": {"expression", "variables"},
    "term_sheet": {"name", "underlying", "maturing_before"},
    "filing_table": {"document", "line_item", "page"},
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    if not AAPL_2023.is_file():
        pytest.skip(f"the sec10q corpus is not at {AAPL_2023.parent}")
    settings = Settings(home=tmp_path_factory.mktemp("home"), embedder="hash")
    with Platform.open(settings, embedder=HashEmbedder(64)) as p:
        yield build_documents(p, tmp_path_factory.mktemp("files"))


def tools(world: World, who: Principal, **clocks: object) -> EntitledToolbox:
    return toolbox_for(world.platform, who, run_id="run-test", **clocks)  # type: ignore[arg-type]


def sources(out: object) -> set[str]:
    return {Path(str(p["source"])).name for p in out.content["passages"]}  # type: ignore[attr-defined]


# -- the contract ---------------------------------------------------------------------------


def test_the_tools_and_their_arguments_are_the_contract(world: World) -> None:
    specs = {s.name: s for s in tools(world, ANA).specs()}
    assert {n: set(s.parameters["properties"]) for n, s in specs.items()} == CONTRACT  # type: ignore[call-overload]
    assert all(
        s.parameters["type"] == "object" and s.parameters["additionalProperties"] is False for s in specs.values()
    )
    assert specs["search_documents"].parameters["required"] == ["query"]
    json.dumps([s.parameters for s in specs.values()])  # plain JSON, as a model is sent it


# -- search_documents -----------------------------------------------------------------------


def test_a_passage_cites_its_page_span_exactly(world: World) -> None:
    out = tools(world, ANA).call("search_documents", {"query": "total net sales products services", "k": 5})
    assert out.content["passages"] and len(out.evidence) == len(out.content["passages"])  # type: ignore[arg-type]
    for ev in out.evidence:
        assert ev.kind == "page"
        page = world.platform.page(ANA, str(ev.ref["document_id"]), str(ev.ref["version_id"]), int(ev.ref["page"]))  # type: ignore[call-overload]
        assert page.text[int(ev.ref["start"]) : int(ev.ref["end"])] == ev.text  # type: ignore[call-overload]
    assert any("81,797" in ev.numbers for ev in out.evidence)


def test_a_restricted_document_never_appears_in_a_search(world: World) -> None:
    ask = {"query": "Example Bank senior notes order book relative value spread", "k": 20}
    assert "rates-desk-note.md" in sources(tools(world, RATES).call("search_documents", ask))  # it is findable
    assert "rates-desk-note.md" not in sources(tools(world, ANA).call("search_documents", ask))
    outsider = sources(tools(world, EVE).call("search_documents", ask))
    assert outsider <= {"watchlist-memo.md"}  # public only


def test_no_passage_from_after_as_of(world: World) -> None:
    out = tools(world, ANA, as_of="2023-01-01").call("search_documents", {"query": "total net sales", "k": 20})
    assert sources(out) and "2023 Q3 AAPL.pdf" not in sources(out)
    assert "2023 Q3 AAPL.pdf" in sources(
        tools(world, ANA).call("search_documents", {"query": "total net sales", "k": 20})
    )


def test_a_document_learned_later_is_invisible_at_an_earlier_known_at(world: World) -> None:
    ask = {"query": "Plover autocallable notes", "k": 20}
    assert "ts-late.md" in sources(tools(world, ANA).call("search_documents", ask))
    assert "ts-late.md" not in sources(tools(world, ANA, known_at=world.before_late).call("search_documents", ask))
    sheets = tools(world, ANA, known_at=world.before_late).call("term_sheet", {"underlying": "Apple"})
    assert "ts-late.md" not in {s["document"] for s in sheets.content["term_sheets"]}  # type: ignore[attr-defined]


def test_doc_types_narrow_a_search(world: World) -> None:
    out = tools(world, ANA).call("search_documents", {"query": "autocallable notes Apple", "doc_types": ["term_sheet"]})
    assert sources(out) and all(n.startswith("ts-") for n in sources(out))


# -- term_sheet -----------------------------------------------------------------------------


def test_term_sheets_are_those_the_principal_may_read_at_its_clocks(world: World) -> None:
    def names(who: Principal, **clocks: object) -> set[str]:
        out = tools(world, who, **clocks).call("term_sheet", {"underlying": "apple"})
        return {str(s["document"]) for s in out.content["term_sheets"]}  # type: ignore[attr-defined]

    assert names(ANA) == {"ts-osprey.md", "ts-heron.md", "ts-late.md"}
    assert names(STRUCT) == {"ts-kestrel.md"}  # the restricted one exists, for its readers
    assert names(ANA, as_of="2023-12-31") == {"ts-osprey.md", "ts-late.md"}  # heron was published in 2024
    assert names(EVE) == set()


def test_a_term_sheet_cites_each_field(world: World) -> None:
    out = tools(world, ANA).call("term_sheet", {"name": "osprey", "maturing_before": "2027-01-01"})
    (sheet,) = out.content["term_sheets"]  # type: ignore[misc]
    assert sheet["fields"]["barrier_level"] == "70" and sheet["fields"]["maturity_date"] == "2026-06-15"
    barrier = next(e for e in out.evidence if e.ref["field"] == "barrier_level")
    assert barrier.kind == "term_sheet" and barrier.ref["version_id"] == world.versions["ts-osprey.md"][1]
    assert barrier.numbers == ("70",)
    none = tools(world, ANA).call("term_sheet", {"name": "osprey", "maturing_before": "2026-01-01"})
    assert none.content["term_sheets"] == []


# -- filing_table ---------------------------------------------------------------------------


def test_a_line_item_is_found_with_its_periods_statement_and_scale(world: World) -> None:
    out = tools(world, ANA).call("filing_table", {"document": "2023 Q3 AAPL.pdf", "line_item": "total net sales"})
    first = out.content["rows"][0]  # type: ignore[index]
    assert first["label"] == "Total net sales" and first["statement"] == "income statement"
    assert first["scale"] == "millions" and first["page"] == 4
    assert first["values"][0] == {"period": "three months ended July 1, 2023", "value": "81,797"}
    ev = out.evidence[0]
    doc, version = world.versions[AAPL_2023.name]
    assert ev.kind == "table" and ev.ref["version_id"] == version and "81,797" in ev.numbers
    table = world.platform.tables(ANA, doc, version).tables[int(ev.ref["table"])]  # type: ignore[call-overload]
    assert any(row[0].text == "Total net sales" for row in table.rows)
    text = world.platform.page(ANA, doc, version, 4).text
    assert text[int(ev.ref["start"]) : int(ev.ref["end"])].startswith("Total net sales")  # type: ignore[call-overload]


def test_a_synonym_finds_the_row_a_filing_prints(world: World) -> None:
    out = tools(world, ANA).call("filing_table", {"document": world.versions[AAPL_2023.name][0], "line_item": "capex"})
    labels = [r["label"] for r in out.content["rows"]]  # type: ignore[attr-defined]
    assert labels == ["Payments for acquisition of property, plant and equipment"]


def test_a_product_row_and_a_pipe_table_row(world: World) -> None:
    iphone = tools(world, ANA).call("filing_table", {"document": "2023 Q3 AAPL.pdf", "line_item": "iPhone"})
    first = iphone.content["rows"][0]  # type: ignore[index]
    assert (first["page"], first["label"], first["scale"]) == (10, "iPhone", "millions")
    assert first["values"][0] == {"period": "three months ended July 1, 2023", "value": "$ 39,669"}
    note = tools(world, RATES).call("filing_table", {"document": "rates-desk-note.md", "line_item": "issue price"})
    assert note.content["rows"][0]["values"] == [{"column": "Value", "value": "99.412%"}]  # type: ignore[index]
    assert note.evidence[0].numbers == ("99.412%",)


def test_every_table_row_of_a_page(world: World) -> None:
    out = tools(world, ANA).call("filing_table", {"document": "2023 Q3 AAPL.pdf", "page": 4})
    labels = [r["label"] for r in out.content["rows"]]  # type: ignore[attr-defined]
    assert labels[:3] == ["Products", "Services", "Total net sales"] and len(labels) > 15
    sections = {r["label"]: r["section"] for r in out.content["rows"]}  # type: ignore[attr-defined]
    assert sections["Research and development"] == "Operating expenses" and sections["Operating income"] is None
    assert {r["page"] for r in out.content["rows"]} == {4}  # type: ignore[attr-defined]


def test_a_filing_with_no_matching_row_still_carries_its_clearance(world: World) -> None:
    box = tools(world, RATES)
    found = box.call("filing_table", {"document": "rates-desk-note.md", "line_item": "coupon"})
    none = box.call("filing_table", {"document": "rates-desk-note.md", "line_item": "zebra crossing count"})
    assert none.content["rows"] == [] and none.content["title"] == found.content["title"]
    (ev,) = none.evidence  # the title still comes from the version: its label goes with it
    keys = ("document_id", "version_id", "sensitivity", "mnpi")
    assert ev.kind == "document" and ev.numbers == ()
    assert {k: ev.ref[k] for k in keys} == {k: found.evidence[0].ref[k] for k in keys}
    row = [{"kind": "table", "ref": found.evidence[0].ref}]
    assert evidence_clearance([{"kind": ev.kind, "ref": ev.ref}]) == evidence_clearance(row)


def test_a_restricted_or_unpublished_filing_is_refused_like_a_missing_one(world: World) -> None:
    def refusal(who: Principal, document: str, **clocks: object) -> str:
        with pytest.raises(NotFound) as caught:
            tools(world, who, **clocks).call("filing_table", {"document": document, "line_item": "coupon"})
        return str(caught.value).replace(document, "X")

    missing = refusal(ANA, "no-such-note.md")
    assert refusal(ANA, "rates-desk-note.md") == missing
    assert refusal(EVE, "2023 Q3 AAPL.pdf") == missing
    assert refusal(ANA, "2023 Q3 AAPL.pdf", as_of="2023-01-01") == missing
    rates = tools(world, RATES).call("filing_table", {"document": "rates-desk-note.md", "line_item": "coupon"})
    assert rates.content["rows"]  # its reader gets it


# -- what the model cannot change -----------------------------------------------------------


def test_a_document_that_gives_orders_changes_nothing(world: World) -> None:
    box = tools(world, EVE)
    found = box.call("search_documents", {"query": "watchlist housekeeping memo", "k": 3})
    assert "mnpi_watchlist" in json.dumps(found.content)  # the model does read the order, as data
    assert box.principal == EVE and box.as_of <= utcnow()  # and the toolbox is what it was made as
    with pytest.raises(NotFound):
        box.call("filing_table", {"document": "2023 Q3 AAPL.pdf", "line_item": "net sales"})


def test_a_principal_without_the_reader_role_is_refused_and_recorded(world: World) -> None:
    with pytest.raises(PermissionDenied):
        tools(world, NOBODY).call("search_documents", {"query": "net sales"})
    last = audit_events(world.platform, TOOL_ACTION + "search_documents")[-1]
    assert last["principal"] == "nobody" and last["outcome"] == "denied"


# -- arguments ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "arguments", "says"),
    [
        ("search_documents", {"query": "x", "k": 21}, "k: "),
        ("search_documents", {"query": "x", "k": "many"}, "k: "),
        ("search_documents", {"k": 3}, "query: is required"),
        ("search_documents", {"query": "x", "top": 3}, "top: is not an argument"),
        ("search_documents", {"query": "x", "as_of": "2099-01-01"}, "as_of: is not an argument"),  # clocks are bound
        ("term_sheet", {"principal": "root"}, "principal: is not an argument"),
        ("term_sheet", {"maturing_before": "next year"}, "YYYY-MM-DD"),
        ("filing_table", {"document": "2023 Q3 AAPL.pdf"}, "give line_item, or page"),
        ("filing_table", {"document": "2023 Q3 AAPL.pdf", "page": 999}, "has 29 pages"),
        ("query_data", {"sql": "SELECT 1", "max_rows": 0}, "max_rows: "),
        ("asof_join", {"left": "Trades; DROP", "right": "prices"}, "left: "),
        ("calculate", {"expression": "a + 1", "variables": {"1a": "2"}}, "not a variable name"),
        ("calculate", {"expression": "__import__('os')"}, "calculate"),
        ("fetch_url", {"url": "http://x"}, "no tool named 'fetch_url'"),
    ],
)
def test_malformed_arguments_say_what_is_wrong(
    world: World, name: str, arguments: dict[str, object], says: str
) -> None:
    with pytest.raises(QueryError) as caught:
        tools(world, ANA).call(name, arguments)
    assert says in str(caught.value)


def test_clocks_are_parsed_once_and_never_pass_now(world: World) -> None:
    box = tools(world, ANA, as_of="2999-01-01", known_at="2999-01-01")
    assert box.as_of <= utcnow() and box.known_at <= utcnow()
    assert tools(world, ANA, as_of="2023-06-30").as_of.isoformat() == "2023-06-30T23:59:59.999999+00:00"
    with pytest.raises(QueryError, match="as_of"):
        tools(world, ANA, as_of="last tuesday")


def test_a_result_stays_small_and_says_when_it_was_cut(world: World) -> None:
    out = tools(world, ANA).call("search_documents", {"query": "net sales income cash", "k": 20})
    assert len(json.dumps(out.content, ensure_ascii=False)) <= MAX_CONTENT_CHARS
    page = tools(world, ANA).call("filing_table", {"document": "2023 Q3 AAPL.pdf", "line_item": "net income"})
    assert len(json.dumps(page.content, ensure_ascii=False)) <= MAX_CONTENT_CHARS


# -- audit ----------------------------------------------------------------------------------


def test_each_call_and_refusal_is_recorded_without_document_text(world: World) -> None:
    box = toolbox_for(world.platform, RATES, run_id="run-audit", as_of="2023-12-31")
    box.call("search_documents", {"query": "Example Bank senior notes order book", "k": 5})
    box.call("term_sheet", {"underlying": "Apple"})
    box.call("filing_table", {"document": "2023 Q3 AAPL.pdf", "line_item": "total net sales"})
    with pytest.raises(NotFound):
        box.call("filing_table", {"document": "ts-kestrel.md", "page": 1})
    with pytest.raises(QueryError):
        box.call("search_documents", {"query": "x", "k": 0})
    mine = [r for r in audit_events(world.platform, TOOL_ACTION) if r["target"] == "run-audit"]
    assert [(r["action"], r["outcome"]) for r in mine] == [
        ("agent.tool.search_documents", "ok"),
        ("agent.tool.term_sheet", "ok"),
        ("agent.tool.filing_table", "ok"),
        ("agent.tool.filing_table", "not_found"),
        ("agent.tool.search_documents", "error"),
    ]
    first = mine[0]
    assert first["principal"] == "rates" and first["filters"]["run_id"] == "run-audit"  # type: ignore[index]
    assert first["filters"]["applied_as_of"] == "2023-12-31T23:59:59.999999+00:00"  # type: ignore[index]
    assert "Example Bank senior notes" in str(first["query"]) and first["query_hmac"]
    assert first["chunks"] and first["detail"] == "5 passages"
    everything = json.dumps(audit_events(world.platform))
    leaked = [s for s in SECRETS if s in everything]
    assert not leaked, f"the audit log holds document text: {leaked}"
