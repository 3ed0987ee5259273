"""Prometheus metrics per route and deployment, in a registry the test owns."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from strongroom.errors import BudgetExceeded
from strongroom.llm.breaker import BreakerPolicy
from strongroom.llm.limits import Budget, Limits, Rate
from strongroom.llm.metrics import GatewayMetrics
from strongroom.testing.openai_server import FakeOpenAIServer, Reply
from tests.llm.helpers import ask, function, gateway, http

pytestmark = pytest.mark.integration


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    v = registry.get_sample_value(name, labels)
    return 0.0 if v is None else v


def test_requests_errors_failovers_latency_tokens_and_breaker(
    make_server: Callable[..., FakeOpenAIServer],
) -> None:
    down = make_server(Reply.error(500))
    up = make_server(Reply.stream("Capital ratio is 14%."))
    registry = CollectorRegistry()
    metrics = GatewayMetrics(registry)
    limits = Limits(principal_budgets={"eve": Budget(requests=Rate(1))})
    deployments = [http("a", down, breaker=BreakerPolicy(failure_threshold=2)), http("b", up)]
    gw = gateway([("a", 1), ("b", 0)], deployments, metrics=metrics, limits=limits)

    async def main() -> None:
        await gw.chat(ask())
        await gw.chat(ask(user="eve"))
        with pytest.raises(BudgetExceeded):
            await gw.chat(ask(user="eve"))
        await gw.aclose()

    asyncio.run(main())
    r = registry
    assert value(r, "strongroom_llm_requests_total", route="chat", deployment="a") == 2
    assert value(r, "strongroom_llm_requests_total", route="chat", deployment="b") == 2
    assert value(r, "strongroom_llm_errors_total", route="chat", deployment="a", error="BackendUnavailable") == 2
    assert value(r, "strongroom_llm_errors_total", route="chat", deployment="-", error="BudgetExceeded") == 1
    assert value(r, "strongroom_llm_failovers_total", route="chat", deployment="a") == 2  # failed, then skipped
    assert value(r, "strongroom_llm_breaker_state", deployment="a") == 2  # open
    assert value(r, "strongroom_llm_breaker_state", deployment="b") == 0
    assert value(r, "strongroom_llm_time_to_first_token_seconds_count", route="chat", deployment="b") == 2
    assert value(r, "strongroom_llm_tokens_total", route="chat", deployment="b", kind="completion") == 8
    assert value(r, "strongroom_llm_tokens_per_second_count", route="chat", deployment="b") == 2
    assert b"strongroom_llm_requests_total" in generate_latest(registry)


def test_two_gateways_do_not_share_counters() -> None:
    one, two = CollectorRegistry(), CollectorRegistry()
    for registry in (one, two):
        gw = gateway([("a", 1)], [function("a", "ok")], metrics=GatewayMetrics(registry))
        asyncio.run(gw.chat(ask()))
    assert value(one, "strongroom_llm_requests_total", route="chat", deployment="a") == 1
    assert value(two, "strongroom_llm_requests_total", route="chat", deployment="a") == 1


def test_a_stream_that_calls_a_tool_before_its_text_counts_one_first_token() -> None:
    """A tool call, then text: the time to the first token is the call's, recorded once."""
    from collections.abc import AsyncIterator

    from strongroom.llm.gateway import Deployment
    from strongroom.llm.types import ChatRequest, Delta, ToolCall, ToolSpec

    class CallsThenTalks:
        supports_tools = True

        async def stream(self, request: ChatRequest) -> AsyncIterator[Delta]:
            yield Delta("", tool_calls=(ToolCall("call_1", "lookup", "{}"),))
            yield Delta("Looking it up.")
            yield Delta("", finish_reason="tool_calls")

    registry = CollectorRegistry()
    gw = gateway([("m", 1)], [Deployment("m", CallsThenTalks())], metrics=GatewayMetrics(registry))
    tool = ToolSpec("lookup", "Look up a figure", {"type": "object", "properties": {}})

    async def main() -> None:
        await gw.chat(ask(tools=(tool,)))
        await gw.aclose()

    asyncio.run(main())
    assert value(registry, "strongroom_llm_time_to_first_token_seconds_count", route="chat", deployment="m") == 1
