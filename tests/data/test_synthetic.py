"""The synthetic evaluation set: same seed, same bytes; the manifest describes the files; the
designed history (bad ticks, revisions, late rows, a restatement, a mis-keyed rate) is in the
files; and every data question's gold plan, run through the real DuckDB backend and the real
SQL checker and calculator, returns its gold values, while a backend that read ahead or
ignored known_at would fail them."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from strongroom.agent.calculator import calculate, format_decimal
from strongroom.data.base import DatasetStore
from strongroom.data.duckdb import DuckDBDatasets
from strongroom.data.questions import Question, bind, check_plan, write_questions
from strongroom.data.synthetic import (
    MANIFEST,
    PRINCIPALS,
    SyntheticSet,
    Timeline,
    generate_market_data,
    generate_questions,
    read_synthetic_set,
)
from strongroom.data.synthetic.facts import FACTS
from strongroom.data.synthetic.prices import nyse_holidays, trading_days
from strongroom.data.synthetic.questions import QUESTIONS, main
from strongroom.errors import ConfigError, QueryError, StrongroomError
from strongroom.service.datasets import json_value
from tests.store.conftest import fresh_database, server_url  # noqa: F401 (the store tests' PostgreSQL server)


@pytest.fixture(scope="module")
def eval_set(tmp_path_factory: pytest.TempPathFactory) -> SyntheticSet:
    return generate_market_data(tmp_path_factory.mktemp("synthetic") / "set", seed=7)


@pytest.fixture(scope="module")
def questions(eval_set: SyntheticSet) -> list[Question]:
    return generate_questions(eval_set, seed=7)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# -- determinism, manifest, history ---------------------------------------------------------


def test_the_same_seed_writes_the_same_bytes(eval_set: SyntheticSet, questions: list[Question], tmp_path: Path) -> None:
    write_questions(eval_set.root / QUESTIONS, questions)
    assert main([str(tmp_path / "again"), "--seed", "7"]) == 0
    first, again = _files(eval_set.root), _files(tmp_path / "again")
    assert sorted(first) == sorted(again)
    assert {name for name, data in first.items() if again[name] != data} == set()
    assert len(first) == len(eval_set.loads) + 3  # the data files, a note, the manifest, the questions


def test_another_seed_writes_other_prices(tmp_path: Path) -> None:
    a = generate_market_data(tmp_path / "a", seed=1, days=140)
    b = generate_market_data(tmp_path / "b", seed=2, days=140)
    assert a.days == b.days
    assert a.path("prices/prices_initial.parquet").read_bytes() != b.path("prices/prices_initial.parquet").read_bytes()
    assert generate_market_data(tmp_path / "a", seed=1, days=140) == a  # into the same folder: the same set


def test_the_manifest_reads_back_and_describes_each_file(eval_set: SyntheticSet) -> None:
    assert read_synthetic_set(eval_set.root) == eval_set
    manifest = json.loads((eval_set.root / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["principals"] == {name: list(groups) for name, groups in PRINCIPALS.items()}
    keys = {"order", "dataset", "path", "format", "valid_time_column", "key_columns", "mode", "acl", "loaded_at"}
    timeline = Timeline(eval_set)
    for entry, load in zip(manifest["loads"], eval_set.loads, strict=True):
        assert keys <= set(entry)
        assert entry["order"] == load.order
        path = eval_set.path(load.path)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == load.sha256
        names = [n for n, _ in load.columns]
        if load.format == "parquet":
            assert pq.read_schema(path).names == names
        else:
            assert path.read_text(encoding="utf-8").splitlines()[0].split(",") == names
        rows = timeline.loaded(load)
        assert len(rows) == load.rows
        assert load.valid_time_column in names and set(load.key_columns) <= set(names)
        # one row per key (key columns and valid time) in a file, and nothing valid after its load
        keyed = [(*(r[k] for k in load.key_columns), r[load.valid_time_column]) for r in rows]
        assert len(set(keyed)) == len(keyed)
        assert all(isinstance(r[load.valid_time_column], date) for r in rows)
        assert max((r[load.valid_time_column] for r in rows), default=date.min) < load.loaded_at.date()  # type: ignore[operator]
    assert [load.order for load in eval_set.loads] == list(range(1, len(eval_set.loads) + 1))
    assert [load.loaded_at for load in eval_set.loads] == sorted(load.loaded_at for load in eval_set.loads)
    assert len({load.loaded_at for load in eval_set.loads}) == len(eval_set.loads)
    acl = {load.dataset: load.acl for load in eval_set.loads}
    assert acl["positions"] == ("desk",) and acl["mnpi_watchlist"] == ("compliance",)
    assert all(acl[d] == ("public",) for d in ("prices", "rates", "fundamentals", "reference"))


def _keys(timeline: Timeline, data: SyntheticSet, path: str) -> set[tuple[object, ...]]:
    load = next(load for load in data.loads if load.path == path)
    return {(*(r[k] for k in load.key_columns), r[load.valid_time_column]) for r in timeline.loaded(load)}


def test_the_history_holds_its_designed_changes(eval_set: SyntheticSet) -> None:
    timeline = Timeline(eval_set)
    initial = _keys(timeline, eval_set, "prices/prices_initial.parquet")
    corrections = _keys(timeline, eval_set, "prices/prices_corrections.parquet")
    late = _keys(timeline, eval_set, "prices/prices_late.parquet")
    revisions = _keys(timeline, eval_set, "prices/prices_revisions.parquet")
    assert corrections and corrections <= initial  # a correction corrects a row that was loaded
    assert late and not late & initial  # a late row was missing
    assert revisions and revisions <= corrections
    assert len(initial) + len(late) == len(eval_set.days) * len(eval_set.instruments)
    kinds = {e.kind for e in eval_set.events}
    assert {
        "bad_tick",
        "revision",
        "late_row",
        "late_trade",
        "rate_typo",
        "restatement",
        "injection",
        "screen",
    } <= kinds
    purposes = {e.values["purpose"] for e in eval_set.events_of("bad_tick")}
    assert {"barrier", "quarter_end"} <= purposes
    final = timeline.rows("prices", as_of=datetime(2100, 1, 1, tzinfo=UTC), known_at=None)
    first = timeline.rows("prices", as_of=datetime(2100, 1, 1, tzinfo=UTC), known_at=eval_set.milestones["initial"])
    close = {(r["instrument"], r["date"].isoformat()): str(r["close"]) for r in final}  # type: ignore[attr-defined]
    printed = {(r["instrument"], r["date"].isoformat()): str(r["close"]) for r in first}  # type: ignore[attr-defined]
    for e in eval_set.events_of("bad_tick"):
        key = (e.values["instrument"], e.values["date"])
        assert (printed[key], close[key]) == (e.values["initial"], e.values["corrected"])
    for e in eval_set.events_of("revision"):
        key = (e.values["instrument"], e.values["date"])
        assert printed[key] == e.values["initial"]
        assert close[key] == e.values.get("final", e.values["corrected"])
    for e in eval_set.events_of("late_row"):
        key = (e.values["instrument"], e.values["date"])
        assert key not in printed and close[key] == e.values["close"]
    trade = eval_set.events_of("late_trade")[0].values
    assert any(
        e.values["date"] == trade["date"] and e.values["instrument"] == trade["instrument"]
        for e in eval_set.events_of("late_row")
    )
    note = eval_set.path(eval_set.documents[0].path).read_text(encoding="utf-8")
    assert "price target of USD" in note and "mnpi_watchlist" in note  # the injection is there to be resisted


def test_the_trading_calendar_is_the_nyse_one() -> None:
    days = trading_days(date(2022, 1, 3), 501)
    assert days[-1] == date(2023, 12, 29)
    assert sum(d.year == 2022 for d in days) == 251 and sum(d.year == 2023 for d in days) == 250
    assert {date(2023, 4, 7), date(2022, 6, 20), date(2023, 1, 2), date(2022, 12, 26)} <= nyse_holidays(
        2022
    ) | nyse_holidays(2023)
    assert trading_days(date(2021, 12, 30), 2) == (
        date(2021, 12, 30),
        date(2021, 12, 31),
    )  # a Saturday New Year is not made up


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"instruments": ["AAPL'; DROP TABLE prices; --"]}, "distinct tickers"),
        ({"instruments": ["ALDR", "ALDR"]}, "distinct tickers"),
        ({"instruments": ["AAPL", "MSFT"]}, "fictional issuer"),
        ({"instruments": 0}, "1 or more"),
        ({"days": 20}, "at least 130"),
        ({"days": 5000}, "in the future"),
        ({"seed": -1}, "0 or more"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_written(
    tmp_path: Path, kwargs: dict[str, object], words: str
) -> None:
    with pytest.raises(ConfigError, match=words):
        generate_market_data(tmp_path / "out", **kwargs)  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()


def test_a_tampered_manifest_is_refused(eval_set: SyntheticSet, tmp_path: Path) -> None:
    (tmp_path / MANIFEST).write_text(json.dumps({"format": "something-else/9"}), encoding="utf-8")
    with pytest.raises(ConfigError, match="regenerate"):
        read_synthetic_set(tmp_path)
    with pytest.raises(ConfigError, match="generate the set first"):
        read_synthetic_set(tmp_path / "nothing-here")


def test_instruments_by_count_add_seeded_tickers(tmp_path: Path) -> None:
    data = generate_market_data(tmp_path / "wide", seed=3, instruments=15, days=130)
    assert [i.ticker for i in data.instruments][-3:] == ["S0001", "S0002", "S0003"]
    rows = Timeline(data).loaded(data.loads[0])
    assert {r["instrument"] for r in rows} == {i.ticker for i in data.instruments}


# -- the gold plans, through the real backend -----------------------------------------------


def _load_all(store: DatasetStore, data: SyntheticSet) -> None:
    for load in data.loads:
        version = store.load(
            load.dataset,
            data.path(load.path),
            acl=frozenset(load.acl),
            valid_time_column=load.valid_time_column,
            key_columns=load.key_columns,
            mode=load.mode,
            loaded_by="synthetic",
            loaded_at=load.loaded_at,
        )
        assert (version.rows, version.columns, version.loaded_at) == (load.rows, load.columns, load.loaded_at)


@pytest.fixture(scope="module")
def loaded(eval_set: SyntheticSet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DuckDBDatasets]:
    store = DuckDBDatasets(tmp_path_factory.mktemp("home") / "datasets.duckdb")
    _load_all(store, eval_set)
    yield store
    store.close()


def _asof_sql(a: dict[str, object]) -> str:
    """What the asof_join tool asks the engine (the tool builds the same join with sqlglot)."""
    by = " AND ".join(f'l."{b}" = r."{b}"' for b in a["by"])  # type: ignore[attr-defined]
    picked = ", ".join(f'r."{c}"' for c in a["columns"])  # type: ignore[attr-defined]
    on = f'{by} AND l."{a["left_time"]}" >= r."{a["right_time"]}"'
    return f'SELECT l.*, {picked} FROM {a["left"]} l ASOF JOIN {a["right"]} r ON {on} WHERE {a["where"]} ORDER BY l."{a["left_time"]}"'


def _run(
    store: DatasetStore,
    data: SyntheticSet,
    q: Question,
    *,
    as_of: datetime | None = None,
    known_at: datetime | None = None,
) -> tuple[list[object], list[bool]]:
    """Run ``q``'s plan: data steps through the backend (SQL checked against the datasets the
    question's principal may read), calculations through the agent's calculator; document
    steps are left to the document tests (no result)."""
    readable = sorted({load.dataset for load in data.loads if set(load.acl) & set(q.groups)})
    clocks = (as_of or q.as_of, known_at or q.known_at or datetime.now(UTC))
    outputs: list[object] = []
    refused: list[bool] = []
    for step in q.plan:
        args = bind(step.arguments, outputs)
        out: object = None
        try:
            if step.tool in ("query_data", "asof_join"):
                sql = str(args["sql"]) if step.tool == "query_data" else _asof_sql(args)
                result = store.query(sql, readable, as_of=clocks[0], known_at=clocks[1])
                out = {"columns": list(result.columns), "rows": [[json_value(c) for c in row] for row in result.rows]}
            elif step.tool == "calculate":
                out = {"value": format_decimal(calculate(str(args["expression"]), args["variables"]).value)}  # type: ignore[arg-type]
            elif step.tool == "list_datasets":
                out = {"datasets": [{"name": name} for name in readable]}
        except StrongroomError as exc:
            assert isinstance(exc, QueryError), exc  # the checker's refusal: unknown to this principal
            refused.append(True)
            outputs.append(None)
            continue
        refused.append(False)
        outputs.append(out)
    return outputs, refused


def _data_only(q: Question) -> Question:
    """``q`` without the gold values of its document steps (test_questions checks those)."""
    documents = {f"${k + 1}" for k, s in enumerate(q.plan) if s.tool in ("filing_table", "search_documents")}
    return replace(q, gold=tuple(g for g in q.gold if re.split(r"[.\[]", g.ref)[0] not in documents))


def _failures(store: DatasetStore, data: SyntheticSet, questions: Sequence[Question]) -> dict[str, list[str]]:
    """What each question's data plan got wrong (documents are left to the toolbox test)."""
    failed = {}
    for q in questions:
        outputs, refused = _run(store, data, q)
        problems = check_plan(_data_only(q), outputs, refused)
        # a document step has no result here: only its own "failed" line is expected
        problems = [p for p in problems if not any(f"({t}) failed" in p for t in ("filing_table", "search_documents"))]
        if problems:
            failed[q.id] = problems
    return failed


def _on_data(questions: Sequence[Question], *, asof_join: bool | None = None) -> list[Question]:
    out = [q for q in questions if q.needs != "documents"]
    if asof_join is not None:
        out = [q for q in out if any(s.tool == "asof_join" for s in q.plan) is asof_join]
    return out


def test_every_gold_plan_on_data_returns_its_gold(
    loaded: DuckDBDatasets, eval_set: SyntheticSet, questions: list[Question]
) -> None:
    asked = _on_data(questions)
    assert len(asked) >= 50
    assert _failures(loaded, eval_set, asked) == {}


@pytest.fixture(scope="module")
def on_postgres(eval_set: SyntheticSet, server_url: str) -> Iterator[DatasetStore]:  # noqa: F811
    from strongroom.data.postgres import PostgresDatasets

    store = PostgresDatasets(fresh_database(server_url))
    _load_all(store, eval_set)
    yield store
    store.close()


@pytest.mark.integration
def test_the_gold_plans_on_data_hold_on_postgresql(
    on_postgres: DatasetStore, eval_set: SyntheticSet, questions: list[Question]
) -> None:
    assert _failures(on_postgres, eval_set, _on_data(questions, asof_join=False)) == {}


@pytest.mark.integration
def test_the_asof_join_plans_hold_on_postgresql(
    on_postgres: DatasetStore, eval_set: SyntheticSet, questions: list[Question]
) -> None:
    """PostgreSQL has no ASOF JOIN: its backend runs each as a LATERAL subquery (data/asof.py)."""
    asked = _on_data(questions, asof_join=True)
    assert len(asked) >= 4
    assert _failures(on_postgres, eval_set, asked) == {}


def test_the_refusals_are_refused_by_the_real_checker(
    loaded: DuckDBDatasets, eval_set: SyntheticSet, questions: list[Question]
) -> None:
    refusals = [q for q in questions if q.expect == "refusal"]
    assert {q.principal for q in refusals} == set(PRINCIPALS)
    for q in refusals:
        _outputs, refused = _run(loaded, eval_set, q)
        assert refused == [True] * len(q.plan), q.id


def _questions(questions: Sequence[Question], kind: str, word: str) -> list[Question]:
    return [q for q in questions if q.kind == kind and word in q.question]


def test_a_backend_that_reads_ahead_or_ignores_known_at_fails_the_gold(
    loaded: DuckDBDatasets, eval_set: SyntheticSet, questions: list[Question]
) -> None:
    """The questions discriminate: run with the wrong clocks, their checks fail."""
    future = datetime(2100, 1, 1, tzinfo=UTC)
    ahead = [q for q in questions if q.kind in ("price_asof", "lookahead", "fundamentals") and "As of" in q.question]
    assert len(ahead) >= 5
    for q in ahead:
        outputs, refused = _run(loaded, eval_set, q, as_of=future)
        assert check_plan(q, outputs, refused), f"{q.id} passes even when rows after as_of are seen"
    before = [q for q in questions if q.known_at is not None and q.known_at < eval_set.milestones["corrections"]]
    assert len(before) >= 4
    for q in before:
        outputs, refused = _run(loaded, eval_set, q, known_at=eval_set.milestones["revisions"] + timedelta(days=1))
        assert check_plan(q, outputs, refused), f"{q.id} passes even when later corrections are seen"


@pytest.mark.slow
def test_every_gold_plan_through_the_agents_toolbox(
    sec10q: Path, eval_set: SyntheticSet, questions: list[Question], tmp_path: Path
) -> None:
    """Tool-level accuracy 1.0: every plan through the real tools over a home holding the filings
    the plans read and the set's note (ingested now: their questions read at known_at now) and
    the datasets, each load at its manifest's loaded_at."""
    from strongroom.config import Settings
    from strongroom.service import IngestRequest, Platform
    from strongroom.service.agent_eval import run_plan
    from strongroom.testing import HashEmbedder
    from strongroom.types import Principal

    store = DuckDBDatasets(tmp_path / "datasets.duckdb")
    _load_all(store, eval_set)
    store.close()
    loader = Principal("loader", frozenset({"public"}), frozenset({"reader", "ingester"}))
    filings = tuple(sec10q / "docs" / name for name in sorted({f.document for f in FACTS}))
    failed: dict[str, list[str]] = {}
    with Platform.open(Settings(home=tmp_path, embedder="hash"), embedder=HashEmbedder(64)) as p:
        assert p.ingest(loader, IngestRequest(paths=filings, acl=frozenset({"public"}))).ingested == len(filings)
        for doc in eval_set.documents:
            note = IngestRequest(paths=(eval_set.path(doc.path),), acl=frozenset(doc.acl), published=doc.published_at)
            assert p.ingest(loader, note).ingested == 1
        for q in questions:
            if problems := run_plan(p, q).problems:
                failed[q.id] = list(problems)
    assert failed == {}
