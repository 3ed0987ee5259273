from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from strongroom.retrieve import rrf


def test_rrf_rewards_agreement() -> None:
    fused = rrf([["a", "b", "c"], ["b", "a", "d"]])
    assert [i for i, _ in fused[:2]] == ["a", "b"] or [i for i, _ in fused[:2]] == ["b", "a"]
    assert fused[-1][0] in {"c", "d"}


@given(st.lists(st.lists(st.sampled_from("abcdefgh"), unique=True), max_size=4))
def test_rrf_is_order_independent(rankings: list[list[str]]) -> None:
    assert rrf(rankings) == rrf(list(reversed(rankings)))
