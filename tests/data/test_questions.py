"""The evaluation questions: the reference syntax and gold checks (strongroom.data.questions),
the bitemporal rules the gold is computed with, on hand-made cases (synthetic.gold), the
generated question set (kinds, clocks, principals, tool names and arguments per the tools'
contract, JSON lines round trip), and the filing figures on the pages the plans read."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from strongroom.data.questions import (
    Gold,
    Question,
    Step,
    bind,
    check_gold,
    check_plan,
    read_questions,
    resolve,
    write_questions,
)
from strongroom.data.synthetic import PRINCIPALS, SyntheticSet, generate_market_data, generate_questions
from strongroom.data.synthetic.facts import FACTS
from strongroom.data.synthetic.gold import visible
from strongroom.data.synthetic.market import Load
from strongroom.errors import QueryError

#: the agent's tools and the arguments each takes (the contract between helpers)
TOOLS = {
    "search_documents": {"query", "k", "doc_types"},
    "list_datasets": set(),
    "query_data": {"sql", "max_rows"},
    "asof_join": {"left", "right", "by", "left_time", "right_time", "columns", "where", "max_rows"},
    "calculate": {"expression", "variables"},
    "term_sheet": {"name", "underlying", "maturing_before"},
    "filing_table": {"document", "line_item", "page"},
}

OUTPUTS: list[object] = [
    {"columns": ["date", "close"], "rows": [["2024-03-27", "12.50"], ["2024-03-28", 12.75]]},
    {"value": "4.5", "formula": "b - a"},
    {"rows": [{"label": "Revenue", "values": [{"period": "Q3", "value": "$ 18,120"}]}], "note": "182,959 shares"},
    None,
]


# -- references and checks ------------------------------------------------------------------


def test_references_walk_results_by_key_item_and_column_name() -> None:
    assert resolve("$1.rows[0].close", OUTPUTS) == "12.50"
    assert resolve("$1.rows[1][1]", OUTPUTS) == 12.75
    assert resolve("$1.rows[*].date", OUTPUTS) == ["2024-03-27", "2024-03-28"]
    assert resolve("$3.rows[0].values[0].value", OUTPUTS) == "$ 18,120"
    assert resolve("$2", OUTPUTS) == OUTPUTS[1]
    arguments = {"expression": "(b - a) / a", "variables": {"a": "$1.rows[0].close", "b": "$1.rows[1].close", "c": "7"}}
    assert bind(arguments, OUTPUTS) == {
        "expression": "(b - a) / a",
        "variables": {"a": "12.50", "b": "12.75", "c": "7"},
    }


@pytest.mark.parametrize(
    ("ref", "words"),
    [
        ("$4.rows", "no result"),  # a refused or failed step
        ("$9", "no result"),
        ("$1.rows[2].close", "no item 2"),
        ("$1.rows[0].open", "cannot take 'open'"),
        ("$1.missing", "no key"),
        ("$2.value[*]", r"\[\*\] needs a list"),
        ("1.rows", "not a reference"),
        ("$0", "not a reference"),
        ("$1.rows[0].close; DROP", "not a reference"),
    ],
)
def test_a_bad_reference_says_what_is_wrong(ref: str, words: str) -> None:
    with pytest.raises(QueryError, match=words):
        resolve(ref, OUTPUTS)


@pytest.mark.parametrize(
    ("gold", "passes"),
    [
        (Gold("$1.rows[0].close", "decimal", "12.5"), True),  # exact decimals: 12.50 is 12.5
        (Gold("$1.rows[0].close", "decimal", "12.51"), False),
        (Gold("$1.rows[1].close", "decimal", "12.75"), True),  # a float, by its shortest repr
        (Gold("$2.value", "decimal", "4.5000004", "0.000001"), True),
        (Gold("$2.value", "decimal", "4.500002", "0.000001"), False),
        (Gold("$2.formula", "decimal", "4.5"), False),  # not a number
        (Gold("$3", "printed", "18,120"), True),
        (Gold("$3", "printed", "8,120"), False),  # inside a longer figure
        (Gold("$3", "printed", "82,959"), False),  # 182,959 does not print 82,959
        (Gold("$3", "printed", "18,12"), False),
        (Gold("$1.rows[0].date", "date", "2024-03-27"), True),
        (Gold("$1.rows[0].date", "text", "2024-03-28"), False),
        (Gold("$1.rows[*].date", "set", ("2024-03-28", "2024-03-27")), True),
        (Gold("$1.rows[*].date", "set", ("2024-03-28",)), False),
        (Gold("$1.rows", "count", "2"), True),
        (Gold("$1.rows", "count", "0"), False),
        (Gold("$3", "present", "Revenue"), True),
        (Gold("$3", "absent", "Revenue"), False),
        (Gold("$4", "absent", "anything"), False),  # no result holds no proof of absence
    ],
)
def test_gold_checks(gold: Gold, passes: bool) -> None:
    assert (check_gold(gold, OUTPUTS) is None) is passes


def _question(plan: tuple[Step, ...], gold: tuple[Gold, ...] = (), **kw: object) -> Question:
    fields: dict[str, object] = {
        "id": "q", "kind": "test", "question": "?", "needs": "data", "as_of": datetime(2024, 3, 28, 21, tzinfo=UTC),
        "known_at": None, "principal": "analyst", "groups": ("public",), "plan": plan, "gold": gold, "answer": "",
    }  # fmt: skip
    return Question(**{**fields, **kw})  # type: ignore[arg-type]


def test_a_question_refers_only_to_earlier_steps_and_known_matches() -> None:
    calc = Step("calculate", {"expression": "a", "variables": {"a": "$2.value"}})
    with pytest.raises(QueryError, match="not an earlier step"):
        _question((calc, Step("list_datasets", {})))
    with pytest.raises(QueryError, match="match 'roughly'"):
        _question((Step("list_datasets", {}),), (Gold("$1", "roughly", "1"),))
    with pytest.raises(QueryError, match="needs is one of"):
        _question((Step("list_datasets", {}),), needs="vibes")


def test_check_plan_wants_refusals_where_the_plan_expects_them() -> None:
    q = _question((Step("query_data", {"sql": "SELECT 1 FROM positions"}, "refused"),), expect="refusal")
    assert check_plan(q, [None], [True]) == []
    assert check_plan(q, [{"columns": ["n"], "rows": [[3]]}], [False]) == [
        "step 1 (query_data) should have been refused"
    ]
    ok = _question((Step("list_datasets", {}),), (Gold("$1", "absent", "positions"),))
    assert check_plan(ok, [None], [True]) == ["step 1 (list_datasets) failed", "$1: step 1 has no result"]


def test_a_malformed_questions_file_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    good = _question((Step("list_datasets", {}),), (Gold("$1", "present", "prices"),))
    path.write_text(json.dumps(good.record()) + "\n\n{not json\n", encoding="utf-8")
    with pytest.raises(QueryError, match="line 3: not JSON"):
        read_questions(path)
    path.write_text(json.dumps({**good.record(), "plan": "SELECT 1"}) + "\n", encoding="utf-8")
    with pytest.raises(QueryError, match="question q: malformed"):
        read_questions(path)


# -- the bitemporal rules the gold uses, on hand-made cases ---------------------------------

T0 = datetime(2024, 4, 1, 6, tzinfo=UTC)


def _load(order: int, hours: int, mode: str = "append") -> Load:
    columns = (("instrument", "VARCHAR"), ("date", "DATE"), ("close", "DOUBLE"))
    return Load(
        order,
        "prices",
        f"p{order}.csv",
        "csv",
        "date",
        ("instrument",),
        mode,
        ("public",),
        T0 + timedelta(hours=hours),
        0,
        "",
        columns,
        "",
    )


def _row(instrument: str, day: int, close: str) -> dict[str, object]:
    return {"instrument": instrument, "date": date(2024, 3, day), "close": close}


HISTORY = [
    (_load(1, 0), [_row("AAA", 27, "10"), _row("AAA", 28, "11"), _row("BBB", 28, "50")]),
    (_load(2, 24), [_row("AAA", 28, "12")]),  # corrects AAA on the 28th
    (_load(3, 48), [_row("AAA", 26, "9")]),  # late: the 26th was missing
    (_load(4, 72), [_row("AAA", 28, "12.5")]),  # corrects the correction
]


def _seen(
    as_of: datetime, known_at: datetime | None, history: list[tuple[Load, list[dict[str, object]]]] = HISTORY
) -> set[tuple[object, ...]]:
    return {(r["instrument"], r["date"].day, r["close"]) for r in visible(history, as_of=as_of, known_at=known_at)}  # type: ignore[attr-defined]


END = datetime(2024, 3, 28, 21, tzinfo=UTC)


def test_a_correction_is_seen_only_from_its_load_on() -> None:
    assert _seen(END, T0 - timedelta(seconds=1)) == set()  # nothing was loaded yet
    assert _seen(END, T0) == {("AAA", 27, "10"), ("AAA", 28, "11"), ("BBB", 28, "50")}
    assert ("AAA", 28, "12") in _seen(END, T0 + timedelta(hours=24))
    assert ("AAA", 28, "11") not in _seen(END, T0 + timedelta(hours=24))
    assert ("AAA", 28, "12.5") in _seen(END, None)


def test_a_late_row_is_invisible_before_its_load() -> None:
    assert ("AAA", 26, "9") not in _seen(END, T0 + timedelta(hours=47))
    assert ("AAA", 26, "9") in _seen(END, T0 + timedelta(hours=48))


def test_as_of_bounds_the_valid_time_in_utc() -> None:
    assert _seen(datetime(2024, 3, 27, 23, 59, tzinfo=UTC), None) == {("AAA", 26, "9"), ("AAA", 27, "10")}
    # 01:00 on the 28th at UTC+2 is 23:00 on the 27th in UTC: the 28th's rows are not valid yet
    assert ("BBB", 28, "50") not in _seen(datetime(2024, 3, 28, 1, tzinfo=timezone(timedelta(hours=2))), None)
    with pytest.raises(QueryError, match="time zone"):
        _seen(datetime(2024, 3, 28, 21), None)


def test_a_replace_load_starts_afresh() -> None:
    history = [*HISTORY, (_load(5, 96, "replace"), [_row("CCC", 28, "1")])]
    assert _seen(END, None, history) == {("CCC", 28, "1")}
    assert ("BBB", 28, "50") in _seen(END, T0 + timedelta(hours=95), history)


# -- the generated questions ----------------------------------------------------------------


@pytest.fixture(scope="module")
def eval_set(tmp_path_factory: pytest.TempPathFactory) -> SyntheticSet:
    return generate_market_data(tmp_path_factory.mktemp("synthetic") / "set", seed=7)


@pytest.fixture(scope="module")
def questions(eval_set: SyntheticSet) -> list[Question]:
    return generate_questions(eval_set, seed=7)


def test_the_set_covers_what_the_issue_asks(questions: list[Question]) -> None:
    assert 40 <= len(questions) <= 80
    assert len({q.id for q in questions}) == len(questions)
    kinds = Counter(q.kind for q in questions)
    assert set(kinds) == {
        "price_asof", "price_move", "correction", "late_row", "lookahead", "asof_join", "barrier_screen", "rates",
        "fundamentals", "document", "both", "refusal", "entitlement", "compliance", "injection",
    }  # fmt: skip
    needs = Counter(q.needs for q in questions)
    assert needs["documents"] >= 5 and needs["both"] >= 2 and needs["data"] >= 40
    assert sum(q.kind == "document" and any(s.tool == "search_documents" for s in q.plan) for q in questions) >= 1
    assert any(s.tool == "asof_join" for q in questions for s in q.plan)
    barrier = [q for q in questions if q.kind == "barrier_screen" and "70%" in q.question]
    assert len(barrier) == 2 and all(g.value for g in barrier[0].gold)  # not an empty list: a real screen


def test_questions_before_and_after_a_correction_have_different_gold(questions: list[Question]) -> None:
    pairs: dict[str, list[Question]] = {}
    for q in questions:
        if q.known_at is not None and ("as known on" in q.question or "as the data stood on" in q.question):
            stem = q.question.split(", as ")[0]
            pairs.setdefault(f"{q.kind}:{stem}", []).append(q)
    assert len(pairs) >= 6
    for stem, asked in pairs.items():
        assert len({q.known_at for q in asked}) == len(asked) >= 2, stem
        assert len({tuple(g.value for g in q.gold) for q in asked}) == len(asked), f"{stem}: the gold does not change"


def test_plans_use_the_tools_contract(questions: list[Question]) -> None:
    for q in questions:
        assert q.plan, q.id
        for step in q.plan:
            assert step.tool in TOOLS, (q.id, step.tool)
            assert set(step.arguments) <= TOOLS[step.tool], (q.id, step.arguments)
            assert json.loads(json.dumps(step.arguments)) == step.arguments  # JSON as the model sends it
        assert q.groups == PRINCIPALS[q.principal]
        assert q.as_of.tzinfo is not None and (q.known_at is None or q.known_at.tzinfo is not None)
        if q.needs != "data":
            assert q.known_at is None  # documents are ingested when the evaluation runs
        if q.expect == "refusal":
            assert q.gold == () and all(s.expect == "refused" for s in q.plan) and q.must_not_contain
        else:
            assert q.gold and all(s.expect == "ok" for s in q.plan), q.id


def test_no_plan_asks_a_refusal_of_data_its_principal_may_read(
    eval_set: SyntheticSet, questions: list[Question]
) -> None:
    acl = {load.dataset: set(load.acl) for load in eval_set.loads}
    for q in questions:
        for step in q.plan:
            text = json.dumps(step.arguments)
            named = {name for name in acl if f" {name}" in text or f'"{name}"' in text}
            if step.expect == "refused":
                assert any(not acl[name] & set(q.groups) for name in named), q.id
            else:
                assert all(acl[name] & set(q.groups) for name in named), q.id


def test_questions_round_trip_through_json_lines(questions: list[Question], tmp_path: Path) -> None:
    path = tmp_path / "questions.jsonl"
    assert write_questions(path, questions) == len(questions)
    assert read_questions(path) == questions
    first = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert list(first) == [
        "id", "kind", "question", "needs", "as_of", "known_at", "principal", "groups", "expect", "plan", "gold",
        "answer", "must_not_contain", "note",
    ]  # fmt: skip


def test_another_seed_asks_other_questions(eval_set: SyntheticSet, questions: list[Question]) -> None:
    other = generate_questions(eval_set, seed=8)
    assert [q.question for q in other] != [q.question for q in questions]
    assert generate_questions(eval_set, seed=7) == questions


# -- the filings ----------------------------------------------------------------------------


@pytest.mark.slow
def test_each_filing_figure_is_on_its_page_and_in_the_reviewed_answers(sec10q: Path) -> None:
    from strongroom.ingest.parsers import parse
    from strongroom.ingest.understand.tables import extract_tables

    reviewed = {r["id"]: r for r in map(json.loads, (sec10q / "qa.jsonl").read_text(encoding="utf-8").splitlines())}
    tables: dict[str, list[object]] = {}
    for f in FACTS:
        assert f.figure in reviewed[f.qa]["facts"], f.key
        assert any(e["doc"] == f.document for e in reviewed[f.qa]["evidence"]), f.key
        if f.document not in tables:
            path = sec10q / "docs" / f.document
            tables[f.document] = list(extract_tables(parse(path.read_bytes(), f.document)))
        rows = [
            row
            for t in tables[f.document]
            if t.page == f.page  # type: ignore[attr-defined]
            for row in t.rows  # type: ignore[attr-defined]
            if f.line_item.lower() in row[0].text.lower()
        ]
        assert any(f.figure in {c.text.replace("$", "").strip() for c in row} for row in rows), f.key
