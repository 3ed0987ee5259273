"""The model registry's pure rules: stage moves, the release gate (same evaluation set, k,
clocks and groups only, runs without their subject compared with nothing, regressions beyond the tolerance refused, a candidate without production's evaluation
refused) and its invariants under Hypothesis: improving a candidate's metrics never turns an
acceptance into a refusal, and a tighter tolerance never accepts what a looser one refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from strongroom.governance.registry import (
    Evidence,
    ModelEntry,
    StageChange,
    allowed,
    gate,
    in_force,
    parse_ref,
    retired_bindings,
    tracked,
)

T0 = datetime(2026, 3, 1, tzinfo=UTC)
SET_A = "a" * 64
SET_B = "b" * 64


GROUPS = ("public", "research")


def ev(
    metrics: dict[str, float | None],
    sha: str = SET_A,
    seq: int = 1,
    at: datetime = T0,
    *,
    embedder: str = "hash-64",
    as_of: str | None = None,
    known_at: str | None = None,
    groups: tuple[str, ...] | None = GROUPS,
) -> Evidence:
    return Evidence(
        "qa.jsonl", sha, {"k": 5, "n": 20, **metrics}, at, seq, embedder, as_of=as_of, known_at=known_at, groups=groups
    )


PROD = [ev({"doc_recall_at_5": 0.8, "mrr": 0.6, "search_ms_p50": 3.0})]


def test_the_stage_moves() -> None:
    assert allowed("candidate", "validated") and allowed("validated", "production")
    assert allowed("production", "retired") and allowed("retired", "validated")
    assert not allowed("candidate", "production")  # never straight to production
    assert not allowed("retired", "production")  # a retired version is validated again first
    assert not allowed("production", "production") and not allowed("production", "candidate")
    assert not allowed("nonsense", "validated")


def test_refs_are_checked() -> None:
    assert parse_ref("minilm@2") == ("minilm", "2")
    for bad in ("minilm", "@2", "minilm@", "a b@1", "x@-1", "../x@1", "x@1@2"):
        with pytest.raises(ValueError, match="NAME@VERSION"):
            parse_ref(bad)


def test_tracked_metrics_are_quality_not_counts_or_latency() -> None:
    assert all(map(tracked, ["doc_recall_at_5", "page_hit_at_10", "mrr", "ndcg_at_10", "accuracy", "f1"]))
    assert not any(map(tracked, ["k", "n", "n_with_pages", "search_ms_p50", "search_ms_p95"]))


def test_a_regression_beyond_the_tolerance_is_refused_and_within_it_accepted() -> None:
    worse = gate([ev({"doc_recall_at_5": 0.78, "mrr": 0.6})], PROD, 0.01)
    assert not worse.accepted and any("doc_recall_at_5" in r for r in worse.reasons)
    assert [d.metric for d in worse.compared if d.regressed] == ["doc_recall_at_5"]
    assert gate([ev({"doc_recall_at_5": 0.795, "mrr": 0.6})], PROD, 0.01).accepted
    assert gate([ev({"doc_recall_at_5": 0.78, "mrr": 0.6})], PROD, 0.05).accepted
    slower = gate([ev({"doc_recall_at_5": 0.8, "mrr": 0.6, "search_ms_p50": 900.0})], PROD, 0.0)
    assert slower.accepted  # latency is a benchmark's business, not the gate's


def test_evidence_on_another_evaluation_set_does_not_count() -> None:
    result = gate([ev({"doc_recall_at_5": 0.99, "mrr": 0.99}, sha=SET_B)], PROD, 0.01)
    assert not result.accepted and "no evaluation on production's set" in result.reasons[0]
    other_k = Evidence("qa.jsonl", SET_A, {"k": 10, "doc_recall_at_10": 1.0, "mrr": 1.0}, T0, 2, groups=GROUPS)
    assert not gate([other_k], PROD, 0.01).accepted  # same questions, another k: not comparable


def test_a_run_under_other_clocks_or_groups_is_not_comparable() -> None:
    """A candidate that is better only because it saw other documents is not measured: a run
    as of another day, known at another time, or by an evaluator in other groups counts for
    nothing against production's, however good its figures."""
    perfect: dict[str, float | None] = {"doc_recall_at_5": 1.0, "mrr": 1.0}
    for other in (
        ev(perfect, as_of="2024-01-01T23:59:59.999999+00:00"),
        ev(perfect, known_at="2024-06-01T00:00:00+00:00"),
        ev(perfect, groups=("public",)),
        ev(perfect, groups=("public", "research", "trading")),
    ):
        refused = gate([other], PROD, 0.01)
        assert not refused.accepted and "under the same clocks and groups" in refused.reasons[0]
        assert refused.compared == ()
    as_then = [ev({"doc_recall_at_5": 0.5, "mrr": 0.5}, as_of="2024-01-01T23:59:59.999999+00:00", seq=2)]
    assert not gate([ev({"doc_recall_at_5": 0.4, "mrr": 0.5}, as_of=as_then[0].as_of)], as_then, 0.01).accepted
    assert gate([ev({"doc_recall_at_5": 0.5, "mrr": 0.5}, as_of=as_then[0].as_of)], as_then, 0.01).accepted


def test_a_run_without_its_subject_counts_on_neither_side() -> None:
    old = ev({"doc_recall_at_5": 1.0, "mrr": 1.0}, groups=None)  # recorded before runs named their subject
    assert not gate([old], PROD, 0.01).accepted
    refused = gate([ev({"doc_recall_at_5": 1.0, "mrr": 1.0})], [old], 0.01)
    assert not refused.accepted and "do not name their subject" in refused.reasons[0]
    assert gate([ev({"doc_recall_at_5": 0.8, "mrr": 0.6})], [old, *PROD], 0.01).accepted  # the named run is the bar


def test_a_candidate_with_no_evidence_is_refused_even_without_production() -> None:
    assert not gate([], [], 0.01).accepted
    assert gate([ev({"mrr": 0.1})], [], 0.01).accepted  # nothing to regress against


def test_a_metric_missing_on_the_candidate_is_a_regression() -> None:
    assert not gate([ev({"mrr": 0.9})], PROD, 0.01).accepted
    assert not gate([ev({"doc_recall_at_5": None, "mrr": 0.9})], PROD, 0.01).accepted


def test_the_newest_evaluation_on_a_set_counts() -> None:
    old_good = ev({"doc_recall_at_5": 0.9, "mrr": 0.9}, seq=3, at=T0)
    new_bad = ev({"doc_recall_at_5": 0.1, "mrr": 0.1}, seq=9, at=T0 + timedelta(days=1))
    assert not gate([new_bad, old_good], PROD, 0.01).accepted
    assert gate([old_good], PROD, 0.01).accepted
    reattached = ev({"doc_recall_at_5": 0.9, "mrr": 0.9}, seq=3, at=T0 + timedelta(days=2))
    assert not gate([new_bad, reattached], PROD, 0.01).accepted  # an older run attached later does not hide it


def test_every_production_set_must_be_met() -> None:
    prod = [*PROD, ev({"mrr": 0.5}, sha=SET_B, seq=2)]
    assert not gate([ev({"doc_recall_at_5": 0.9, "mrr": 0.9})], prod, 0.01).accepted
    both = [ev({"doc_recall_at_5": 0.9, "mrr": 0.9}), ev({"mrr": 0.5}, sha=SET_B, seq=4)]
    assert gate(both, prod, 0.01).accepted


def test_bad_values_are_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        ev({"mrr": float("nan")})
    with pytest.raises(ValueError, match="SHA-256"):
        ev({"mrr": 0.5}, sha="not-a-hash")
    with pytest.raises(ValueError, match="tolerance"):
        gate([ev({"mrr": 0.5})], PROD, -0.1)


def test_the_entry_in_force_at_a_time() -> None:
    def entry(version: str, *changes: tuple[str, int]) -> ModelEntry:
        history = tuple(StageChange(s, T0 + timedelta(days=d), "x") for s, d in changes)  # type: ignore[arg-type]
        return ModelEntry("chat", version, "chat", "ana", "high", history=history)

    v1 = entry("1", ("candidate", 0), ("validated", 1), ("production", 2), ("retired", 10))
    v2 = entry("2", ("candidate", 5), ("validated", 6), ("production", 10))
    assert in_force([v1, v2], T0 + timedelta(days=1)) == []
    assert in_force([v1, v2], T0 + timedelta(days=3)) == [v1]
    assert in_force([v1, v2], T0 + timedelta(days=10, hours=1)) == [v2]
    assert v1.stage_at(T0 - timedelta(days=1)) is None


METRICS = ["doc_recall_at_5", "mrr", "page_hit_at_5"]
values = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
metric_maps = st.fixed_dictionaries({m: values for m in METRICS})


@given(prod=metric_maps, cand=metric_maps, bumps=st.fixed_dictionaries({m: values for m in METRICS}),
       tol=st.floats(min_value=0.0, max_value=0.2))  # fmt: skip
def test_improving_metrics_never_turns_acceptance_into_refusal(
    prod: dict[str, float], cand: dict[str, float], bumps: dict[str, float], tol: float
) -> None:
    base = gate([ev(dict(cand))], [ev(dict(prod))], tol)
    better = {m: min(1.0, cand[m] + bumps[m]) for m in METRICS}
    improved = gate([ev(dict(better))], [ev(dict(prod))], tol)
    if base.accepted:
        assert improved.accepted
    if not improved.accepted:
        assert not base.accepted


@given(prod=metric_maps, cand=metric_maps, tol=st.floats(min_value=0.0, max_value=0.2),
       more=st.floats(min_value=0.0, max_value=0.2))  # fmt: skip
def test_a_looser_tolerance_never_refuses_what_a_tighter_one_accepted(
    prod: dict[str, float], cand: dict[str, float], tol: float, more: float
) -> None:
    if gate([ev(dict(cand))], [ev(dict(prod))], tol).accepted:
        assert gate([ev(dict(cand))], [ev(dict(prod))], tol + more).accepted


@given(prod=metric_maps, cand=metric_maps, tol=st.floats(min_value=0.0, max_value=0.2))
def test_refused_exactly_when_some_metric_drops_beyond_the_tolerance(
    prod: dict[str, float], cand: dict[str, float], tol: float
) -> None:
    expected = all(cand[m] >= prod[m] - tol for m in METRICS)
    assert gate([ev(dict(cand))], [ev(dict(prod))], tol).accepted is expected


def test_deployments_serving_only_retired_models_are_left_out() -> None:
    def e(version: str, stage: str, binding: str, kind: str = "chat") -> ModelEntry:
        return ModelEntry("m", version, kind, "o", "low", binding, stage=stage)  # type: ignore[arg-type]

    assert retired_bindings([e("1", "retired", "old"), e("2", "production", "new")]) == {"old"}
    assert retired_bindings([e("1", "retired", "a"), e("2", "validated", "a")]) == frozenset()  # a serves v2 now
    assert retired_bindings([e("1", "retired", "a"), e("2", "candidate", "a")]) == {"a"}  # a candidate is not enough
    assert retired_bindings([e("1", "retired", "minilm", "embedder"), e("2", "retired", "")]) == frozenset()
