"""Pure routing decisions: the champion/challenger split, failover order, backoff."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from strongroom.llm.routing import RetryPolicy, Route, Target, draw_for, failover_order

SPLIT = Route("chat", 3, (Target("champion", 90), Target("challenger", 10), Target("extractive", 0)))


def test_split_follows_the_weights() -> None:
    firsts = Counter(failover_order(SPLIT, draw_for("chat", f"req-{i}"))[0] for i in range(2000))
    assert set(firsts) == {"champion", "challenger"}
    assert 1700 <= firsts["champion"] <= 1900  # 90% of 2000, give or take sampling noise


def test_same_request_id_always_lands_on_the_same_side() -> None:
    for i in range(50):
        rid = f"req-{i}"
        assert len({failover_order(SPLIT, draw_for("chat", rid)) for _ in range(5)}) == 1


def test_fallback_only_targets_are_never_first() -> None:
    assert failover_order(SPLIT, 0.0) == ("champion", "challenger", "extractive")
    assert failover_order(SPLIT, 0.95) == ("challenger", "champion", "extractive")
    fallback_only = Route("r", 1, (Target("a"), Target("b")))
    assert failover_order(fallback_only, 0.7) == ("a", "b")


@given(st.lists(st.floats(min_value=0, max_value=100), min_size=1, max_size=6), st.floats(0, 0.999999))
def test_order_is_a_permutation_of_the_route(weights: list[float], draw: float) -> None:
    route = Route("r", 1, tuple(Target(f"d{i}", w) for i, w in enumerate(weights)))
    order = failover_order(route, draw)
    assert sorted(order) == sorted(t.deployment for t in route.targets)


def test_route_rules() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Route("r", 1, ())
    with pytest.raises(ValueError, match="twice"):
        Route("r", 1, (Target("a"), Target("a")))
    with pytest.raises(ValueError, match=">= 0"):
        Route("r", 1, (Target("a", -1),))


def test_backoff_is_bounded_jittered_and_honours_short_retry_after() -> None:
    policy = RetryPolicy(attempts=5, base_s=0.1, max_s=0.5)
    rng = random.Random(1)
    delays = [policy.delay(n, rng) for n in range(6)]
    assert all(d is not None and 0 < d <= 0.5 for d in delays)
    assert 0.05 <= delays[0] <= 0.1  # jitter within [half, full] of 0.1
    assert policy.delay(0, rng, retry_after=0.2) == 0.2
    assert policy.delay(0, rng, retry_after=5) is None  # too long: fail over instead
