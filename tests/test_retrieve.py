from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from strongroom.retrieve import diversify, rrf


def test_rrf_rewards_agreement() -> None:
    fused = rrf([["a", "b", "c"], ["b", "a", "d"]])
    assert [i for i, _ in fused[:2]] == ["a", "b"] or [i for i, _ in fused[:2]] == ["b", "a"]
    assert fused[-1][0] in {"c", "d"}


@given(st.lists(st.lists(st.sampled_from("abcdefgh"), unique=True), max_size=4))
def test_rrf_is_order_independent(rankings: list[list[str]]) -> None:
    assert rrf(rankings) == rrf(list(reversed(rankings)))


@given(
    st.lists(st.tuples(st.sampled_from("abcdefghij"), st.floats(min_value=0.01, max_value=1.0)), unique_by=lambda t: t[0]),
    st.integers(min_value=0, max_value=12),
    st.floats(min_value=0.1, max_value=1.0),
)
def test_diversify_picks_k_from_the_input(ranked: list[tuple[str, float]], k: int, penalty: float) -> None:
    ranked = sorted(ranked, key=lambda t: -t[1])
    groups = {item: "g" + str(ord(item) % 3) for item, _ in ranked}
    chosen = diversify(ranked, groups, k, penalty)
    assert len(chosen) == min(k, len(ranked))
    assert set(chosen) <= set(ranked)
    assert diversify(ranked, groups, k, 1.0) == ranked[:k]


def test_diversify_spreads_across_documents() -> None:
    ranked = [("a1", 1.0), ("a2", 0.9), ("a3", 0.8), ("b1", 0.6)]
    groups = {"a1": "A", "a2": "A", "a3": "A", "b1": "B"}
    assert [i for i, _ in diversify(ranked, groups, 2, 0.5)] == ["a1", "b1"]


def test_weighted_rrf_needs_one_weight_per_ranking() -> None:
    with pytest.raises(ValueError, match="one weight"):
        rrf([["a"]], weights=[1.0, 2.0])
    assert rrf([["a"], ["b"]], weights=[1.0, 3.0])[0][0] == "b"
