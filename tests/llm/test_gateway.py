"""The gateway against real scripted servers: failover, retries, breakers, mid-stream rules."""

from __future__ import annotations

import asyncio
import email.utils
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from strongroom.errors import (
    NoDeploymentAvailable,
    StreamInterrupted,
    UnknownRoute,
)
from strongroom.llm.breaker import BreakerPolicy, BreakerState
from strongroom.llm.gateway import Deployment, Gateway
from strongroom.llm.limits import Limits
from strongroom.llm.openai_compat import OpenAICompatible, _retry_after
from strongroom.llm.protocol import ChatModel, aclose
from strongroom.llm.routing import Route, StaticRoutes, Target
from strongroom.llm.types import ChatRequest, ChatResult, Delta
from strongroom.testing import ScriptedChatModel
from strongroom.testing.chat_contract import ChatModelFactory, Refusal, Script, ToolCallingContract
from strongroom.testing.openai_server import FakeOpenAIServer, Reply
from tests.llm.conftest import FakeClock
from tests.llm.helpers import ask, function, gateway, http, scripted_entry, server_reply

pytestmark = pytest.mark.integration

ANSWER = "The bank's capital ratio is 14%."


def chat(gw: Gateway, **kw: object) -> ChatResult:
    async def main() -> ChatResult:
        try:
            return await gw.chat(ask(**kw))  # type: ignore[arg-type]
        finally:
            await gw.aclose()

    return asyncio.run(main())


def stream_text(gw: Gateway, got: list[Delta], **kw: object) -> None:
    """Stream into ``got`` (what the caller saw, even if it then fails)."""

    async def main() -> None:
        try:
            async with gw.stream(ask(**kw)) as s:  # type: ignore[arg-type]
                async for delta in s:
                    got.append(delta)
        finally:
            await gw.aclose()

    asyncio.run(main())


def _one_deployment(model: ChatModel, limits: Limits | None = None) -> Gateway:
    """A gateway whose route ``default`` (the name a bare ChatRequest asks for) has one
    deployment, capped at two calls in flight."""
    route = Route("default", 1, (Target("scripted", 1),))
    deployment = Deployment("scripted", model, max_concurrency=2)
    return Gateway(StaticRoutes([route]), [deployment], limits=limits or Limits())


class TestGateway(ToolCallingContract):
    """The gateway is a ChatModel too; it refuses what its own limits refuse (here, any prompt)."""

    @pytest.fixture
    def chat_model(self) -> ChatModelFactory:
        def make(*script: Script) -> ChatModel:
            if any(isinstance(entry, Refusal) for entry in script):
                return _one_deployment(ScriptedChatModel(), Limits(max_prompt_tokens=1))
            replies = [scripted_entry(entry) for entry in script]
            return _one_deployment(ScriptedChatModel(replies[:-1], default=replies[-1]))

        return make


class TestGatewayOverHTTP(ToolCallingContract):
    """The gateway in front of an OpenAI-compatible deployment over real HTTP (tool calls
    stream in fragments); it refuses what its own limits refuse (here, any prompt)."""

    @pytest.fixture
    def chat_model(self, make_server: Callable[..., FakeOpenAIServer]) -> ChatModelFactory:
        def make(*script: Script) -> ChatModel:
            server = make_server(server_reply(script[-1]))
            server.script(*map(server_reply, script[:-1]))
            backend = OpenAICompatible(server.url, "contract", max_connections=2)
            refuses = any(isinstance(entry, Refusal) for entry in script)
            return _one_deployment(backend, Limits(max_prompt_tokens=1) if refuses else None)

        return make


def test_a_stream_closed_early_closes_the_deployments_stream() -> None:
    model = ScriptedChatModel(default="one two three four")
    gw = _one_deployment(model)

    async def main() -> tuple[int, int]:
        stream = gw.stream(ChatRequest.of("hi"))
        await anext(stream)
        streaming = model.open_streams
        await aclose(stream)
        return streaming, model.open_streams

    assert asyncio.run(main()) == (1, 0) and len(model.requests) == 1


def test_answers_from_the_first_deployment_and_records_the_route_version(server: FakeOpenAIServer) -> None:
    result = chat(gateway([("a", 1)], [http("a", server)]), request_id="req-1", user="alice")
    assert result.text == ANSWER
    assert (result.model, result.deployment, result.route_version) == ("chat", "a", 1)
    assert result.finish_reason == "stop" and not result.failovers and result.attempts == 1
    assert result.usage.completion_tokens == 6 and not result.usage.estimated
    assert result.request_id == "req-1" and result.first_token_s is not None


def test_a_retryable_error_is_retried_on_the_same_deployment(server: FakeOpenAIServer) -> None:
    server.script(Reply.error(500))
    result = chat(gateway([("a", 1)], [http("a", server)]))
    assert result.deployment == "a" and result.attempts == 2 and not result.failovers
    assert len(server.requests) == 2


def test_fails_over_to_the_next_deployment(make_server: Callable[..., FakeOpenAIServer]) -> None:
    down = make_server(Reply.error(503))
    up = make_server(Reply.stream(ANSWER))
    result = chat(gateway([("a", 1), ("b", 0)], [http("a", down), http("b", up)]))
    assert result.text == ANSWER and result.deployment == "b"
    assert [(f.deployment, f.error) for f in result.failovers] == [("a", "BackendUnavailable")]
    assert len(down.requests) == 2  # tried, retried once, then left
    assert result.attempts == 3


@pytest.mark.parametrize("reply", [Reply.error(401, "bad key"), Reply(malformed_after=0)])
def test_non_retryable_errors_fail_over_without_retrying(
    make_server: Callable[..., FakeOpenAIServer], reply: Reply
) -> None:
    bad = make_server(reply)
    result = chat(gateway([("a", 1), ("b", 0)], [http("a", bad), function("b", "fallback")]))
    assert result.deployment == "b" and result.text == "fallback"
    assert len(bad.requests) == 1


def test_a_long_retry_after_fails_over_at_once(make_server: Callable[..., FakeOpenAIServer]) -> None:
    limited = make_server(Reply.rate_limited(retry_after=30))
    result = chat(gateway([("a", 1), ("b", 0)], [http("a", limited), function("b", "ok")]))
    assert result.deployment == "b" and result.failovers[0].error == "RateLimited"
    assert len(limited.requests) == 1


def test_a_retry_after_given_as_an_http_date_is_honoured(make_server: Callable[..., FakeOpenAIServer]) -> None:
    later = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    limited = make_server(Reply(status=429, message="slow down", headers=(("retry-after", later),)))
    result = chat(gateway([("a", 1), ("b", 0)], [http("a", limited), function("b", "ok")]))
    assert result.deployment == "b" and result.failovers[0].error == "RateLimited"
    assert len(limited.requests) == 1  # 30 s away is past the backoff cap: no retry, fail over at once
    assert _retry_after(later) == pytest.approx(30, abs=2)
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # already past
    assert _retry_after("soon") is None and _retry_after("-3") == 0.0


def test_connection_refused_and_timeouts_fail_over(make_server: Callable[..., FakeOpenAIServer]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = Deployment("dead", OpenAICompatible(f"http://127.0.0.1:{port}/v1", "m", name="dead"))
    slow = make_server(Reply(first_token_delay=5))
    deployments = [dead, http("slow", slow, first_token_s=0.1), function("last", "extractive answer")]
    result = chat(gateway([("dead", 1), ("slow", 0), ("last", 0)], deployments))
    assert result.deployment == "last" and result.text == "extractive answer"
    assert [f.error for f in result.failovers] == ["BackendUnavailable", "BackendTimeout"]


def test_when_everything_fails_the_error_lists_each_deployment(
    make_server: Callable[..., FakeOpenAIServer],
) -> None:
    a, b = make_server(Reply.error(500)), make_server(Reply.error(429))
    with pytest.raises(NoDeploymentAvailable, match=r"route 'chat' v1") as info:
        chat(gateway([("a", 1), ("b", 0)], [http("a", a), http("b", b)]))
    assert [name for name, _ in info.value.attempts] == ["a", "b"]
    assert "RateLimited" in info.value.attempts[1][1]


def test_unknown_route_and_unconfigured_deployment(server: FakeOpenAIServer) -> None:
    gw = gateway([("ghost", 1), ("a", 0)], [http("a", server)])
    with pytest.raises(UnknownRoute, match="known routes: chat"):
        chat(gw, model="nope")
    result = chat(gw)
    assert result.deployment == "a" and "not configured" in result.failovers[0].message


def test_champion_challenger_split_is_weighted_and_sticky() -> None:
    gw = gateway([("champion", 80), ("challenger", 20)], [function("champion", "A"), function("challenger", "B")])

    async def main() -> list[ChatResult]:
        return [await gw.chat(ask(request_id=f"req-{i % 200}")) for i in range(400)]

    results = asyncio.run(main())
    by_id: dict[str, set[str]] = {}
    for r in results:
        by_id.setdefault(r.request_id or "", set()).add(r.deployment)
    assert all(len(d) == 1 for d in by_id.values())  # a request id always gets the same side
    challenger = sum(1 for d in by_id.values() if d == {"challenger"})
    assert 20 <= challenger <= 60  # ~20% of 200 ids
    assert all(r.route_version == 1 and not r.failovers for r in results)


# -- mid-stream failures ----------------------------------------------------------------


def test_no_failover_after_text_reached_the_caller(make_server: Callable[..., FakeOpenAIServer]) -> None:
    a = make_server(Reply.stream(ANSWER, drop_after=3))
    b = make_server(Reply.stream(ANSWER))
    got: list[Delta] = []
    with pytest.raises(StreamInterrupted, match="does not fail over mid-answer") as info:
        stream_text(gateway([("a", 1), ("b", 0)], [http("a", a), http("b", b)]), got)
    sent = "".join(d.text for d in got)
    assert sent == "The bank's capital " == info.value.sent_text
    assert len(b.requests) == 0 and len(a.requests) == 1  # neither failed over nor retried


def test_allowed_mid_stream_failover_continues_without_repeating(
    make_server: Callable[..., FakeOpenAIServer],
) -> None:
    a = make_server(Reply.stream(ANSWER, drop_after=3))
    b = make_server(Reply.stream(ANSWER))
    got: list[Delta] = []
    gw = gateway([("a", 1), ("b", 0)], [http("a", a), http("b", b)])
    stream_text(gw, got, allow_mid_stream_failover=True, temperature=0.0)
    texts = [d.text for d in got if d.text]
    assert "".join(texts) == ANSWER  # every character exactly once, in order
    assert texts[:3] == ["The ", "bank's ", "capital "]
    assert got[-1].finish_reason == "stop" and got[-1].usage is not None
    assert len(b.requests) == 1


def test_a_fallback_that_answers_differently_cannot_continue(
    make_server: Callable[..., FakeOpenAIServer],
) -> None:
    a = make_server(Reply.stream(ANSWER, drop_after=3))
    b = make_server(Reply.stream("The bank's leverage ratio is 5%."))
    c = make_server(Reply.stream(ANSWER))
    got: list[Delta] = []
    gw = gateway([("a", 1), ("b", 0), ("c", 0)], [http("a", a), http("b", b), http("c", c)])
    stream_text(gw, got, allow_mid_stream_failover=True)
    assert "".join(d.text for d in got) == ANSWER  # b diverged and was skipped; c continued


def test_a_divergent_last_fallback_ends_with_a_clear_error(
    make_server: Callable[..., FakeOpenAIServer],
) -> None:
    a = make_server(Reply.stream(ANSWER, drop_after=3))
    got: list[Delta] = []
    gw = gateway([("a", 1), ("b", 0)], [http("a", a), function("b", "Something else entirely.")])
    with pytest.raises(StreamInterrupted, match="no fallback could continue") as info:
        stream_text(gw, got, allow_mid_stream_failover=True)
    assert "".join(d.text for d in got) == "The bank's capital " == info.value.sent_text
    assert "ContinuationMismatch" in str(info.value)


# -- circuit breaker --------------------------------------------------------------------


def test_breaker_opens_after_repeated_failures_and_recovers(
    make_server: Callable[..., FakeOpenAIServer], clock: FakeClock
) -> None:
    a = make_server(Reply.error(500))
    policy = BreakerPolicy(failure_threshold=2, cooldown_s=30)
    gw = gateway([("a", 1), ("b", 0)], [http("a", a, breaker=policy), function("b", "fallback")], clock=clock)

    async def main() -> list[ChatResult]:
        results = [await gw.chat(ask())]  # two failed attempts: the breaker opens
        assert gw.breaker("a").state is BreakerState.OPEN
        results.append(await gw.chat(ask()))  # a is skipped: no request reaches it
        assert len(a.requests) == 2
        clock.advance(31)
        a.default = Reply.stream(ANSWER)  # a has recovered
        results.append(await gw.chat(ask()))  # the half-open probe goes to a and succeeds
        assert gw.breaker("a").state is BreakerState.CLOSED
        await gw.aclose()
        return results

    first, skipped, recovered = asyncio.run(main())
    assert first.deployment == "b" and skipped.deployment == "b" and recovered.deployment == "a"
    assert skipped.failovers[0].error == "DeploymentBusy" and "circuit open" in skipped.failovers[0].message
    assert len(a.requests) == 3


def test_a_failed_probe_opens_the_breaker_again(make_server: Callable[..., FakeOpenAIServer], clock: FakeClock) -> None:
    a = make_server(Reply.error(500))
    policy = BreakerPolicy(failure_threshold=1, cooldown_s=10)
    gw = gateway([("a", 1), ("b", 0)], [http("a", a, breaker=policy), function("b", "fallback")], clock=clock)

    async def main() -> None:
        await gw.chat(ask())
        assert gw.breaker("a").state is BreakerState.OPEN and len(a.requests) == 1
        clock.advance(11)
        await gw.chat(ask())  # one probe, fails, no retry while open
        assert gw.breaker("a").state is BreakerState.OPEN and len(a.requests) == 2
        await gw.chat(ask())  # cool-down restarted: skipped
        assert len(a.requests) == 2
        await gw.aclose()

    asyncio.run(main())
