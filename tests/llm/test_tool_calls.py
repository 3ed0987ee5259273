"""Tool calling: the wire format both ways, the OpenAI-compatible backend over real HTTP
against the scripted server, and the gateway passing tools and calls through."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

import pytest

from strongroom.errors import (
    BackendUnavailable,
    BadBackendResponse,
    NoDeploymentAvailable,
    PromptTooLarge,
    StreamInterrupted,
)
from strongroom.llm.gateway import Deployment, Gateway
from strongroom.llm.limits import Limits
from strongroom.llm.openai_compat import OpenAICompatible, Timeouts
from strongroom.llm.protocol import complete_with_tools
from strongroom.llm.sse import parse_event
from strongroom.llm.tool_calls import ToolCallAssembler, ToolCallPiece, ToolChunk, parse_pieces
from strongroom.llm.types import ChatMessage, ChatRequest, ChatResult, Delta, ToolCall, ToolSpec, Usage
from strongroom.testing import ScriptedChatModel, ScriptedReply, tool_call
from strongroom.testing.openai_server import FakeOpenAIServer, Reply
from tests.llm.helpers import function, gateway, http

pytestmark = pytest.mark.integration

SQL = ToolSpec(
    "query_dataset",
    "Run a read-only SQL query over an entitled dataset",
    {"type": "object", "properties": {"sql": {"type": "string"}}, "required": ["sql"]},
)
SEARCH = ToolSpec("search_documents", "Search the documents you may read", {"type": "object", "properties": {}})
#: document text in a tool argument: it must never reach a log line
SECRET_ARGS = '{"sql": "select * from loans where borrower = \'Osprey Holdings Confidential\'"}'
SECRET = "Osprey Holdings Confidential"


def ask(*messages: ChatMessage, **kw: Any) -> ChatRequest:
    kw.setdefault("tools", (SQL, SEARCH))
    return ChatRequest(messages or (ChatMessage("user", "What was the CET1 ratio in Q3?"),), **kw)


def backend(server: FakeOpenAIServer, **kw: Any) -> OpenAICompatible:
    return OpenAICompatible(server.url, "tool-model", timeouts=Timeouts(first_token=5), **kw)


def run_backend(server: FakeOpenAIServer, request: ChatRequest) -> list[Delta]:
    async def main() -> list[Delta]:
        async with backend(server) as b:
            return [d async for d in b.stream(request)]

    return asyncio.run(main())


def calls_of(deltas: list[Delta]) -> list[ToolCall]:
    return [c for d in deltas for c in d.tool_calls]


# -- the wire format, pure ----------------------------------------------------------------


def test_fragments_join_by_index_even_interleaved_and_without_indices() -> None:
    a = ToolCallAssembler()
    a.feed((ToolCallPiece(1, "call_b", "search_documents", '{"q"'), ToolCallPiece(0, "call_a", "query_dataset", "")))
    a.feed((ToolCallPiece(0, None, None, '{"sql": "sel'), ToolCallPiece(1, None, None, ': "x"}')))
    a.feed((ToolCallPiece(0, "call_a", "query_dataset", 'ect 1"}'),))  # a server repeating id and name
    assert a.calls() == (
        ToolCall("call_a", "query_dataset", '{"sql": "select 1"}'),
        ToolCall("call_b", "search_documents", '{"q": "x"}'),
    )
    b = ToolCallAssembler()  # no index: continue the latest call unless a new id starts one
    b.feed((ToolCallPiece(None, "c1", "query_dataset", "{"), ToolCallPiece(None, None, None, "}")))
    b.feed((ToolCallPiece(None, "c2", "search_documents", "{}"),))
    assert [(c.id, c.arguments) for c in b.calls()] == [("c1", "{}"), ("c2", "{}")]


def test_a_call_without_a_name_is_a_bad_response_and_one_without_an_id_gets_one() -> None:
    a = ToolCallAssembler()
    a.feed((ToolCallPiece(0, "call_a", None, "{}"),))
    with pytest.raises(BadBackendResponse, match="no function name"):
        a.calls()
    b = ToolCallAssembler()
    b.feed((ToolCallPiece(0, None, "query_dataset", "{}"),))
    (call,) = b.calls()
    assert call.id.startswith("call_") and len(call.id) > 10


@pytest.mark.parametrize(
    "raw",
    [
        {"index": 0},
        [{"index": "0", "function": {"name": "x"}}],
        [{"index": -1}],
        [{"id": 7}],
        [{"function": "query_dataset"}],
        [{"function": {"name": 3}}],
        [{"function": {"arguments": 3.5}}],
        ["call"],
    ],
)
def test_malformed_fragments_are_bad_responses_that_quote_nothing(raw: object) -> None:
    with pytest.raises(BadBackendResponse) as bad:
        parse_pieces(raw)
    assert "query_dataset" not in str(bad.value)


def test_arguments_sent_as_an_object_become_json_text() -> None:
    (piece,) = parse_pieces([{"index": 0, "function": {"name": "q", "arguments": {"sql": "select 1"}}}])
    assert piece.arguments == '{"sql":"select 1"}'


def test_a_chunk_with_empty_content_and_tool_calls_is_not_taken_for_plain_text() -> None:
    data = json.dumps(
        {"choices": [{"delta": {"content": "", "tool_calls": [{"index": 0, "id": "c", "function": {"name": "q"}}]}}]}
    )
    got = parse_event(data)
    assert isinstance(got, ToolChunk) and got.pieces == (ToolCallPiece(0, "c", "q", ""),)
    text_and_call = json.dumps(
        {"choices": [{"delta": {"content": "Hm. ", "tool_calls": [{"index": 0, "function": {"arguments": "{"}}]}}]}
    )
    got = parse_event(text_and_call)
    assert isinstance(got, ToolChunk) and got.delta.text == "Hm. "


# -- the OpenAI-compatible backend over HTTP ----------------------------------------------


def test_tools_and_tool_messages_go_out_in_openais_shape(server: FakeOpenAIServer) -> None:
    call = ToolCall("call_1", "query_dataset", '{"sql": "select 1"}')
    request = ask(
        ChatMessage("system", "Use the tools."),
        ChatMessage("user", "What was the CET1 ratio?"),
        ChatMessage("assistant", "", tool_calls=(call,)),
        ChatMessage("tool", '{"rows": [[14.2]]}', tool_call_id="call_1"),
        tool_choice="required",
    )
    run_backend(server, request)
    run_backend(server, ask(tool_choice="query_dataset"))
    run_backend(server, ChatRequest.of("no tools"))
    first, named, plain = server.requests
    assert first["tools"] == [
        {
            "type": "function",
            "function": {"name": SQL.name, "description": SQL.description, "parameters": SQL.parameters},
        },
        {
            "type": "function",
            "function": {"name": SEARCH.name, "description": SEARCH.description, "parameters": SEARCH.parameters},
        },
    ]
    assert first["tool_choice"] == "required"
    assert first["messages"][2] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "query_dataset", "arguments": '{"sql": "select 1"}'}}],
    }  # fmt: skip
    assert first["messages"][3] == {"role": "tool", "content": '{"rows": [[14.2]]}', "tool_call_id": "call_1"}
    assert named["tool_choice"] == {"type": "function", "function": {"name": "query_dataset"}}
    assert "tools" not in plain and "tool_choice" not in plain
    assert plain["messages"] == [{"role": "user", "content": "no tools"}]


@pytest.mark.parametrize("split", [None, 1, 7])
@pytest.mark.parametrize("interleave", [False, True])
def test_parallel_calls_reassemble_however_they_are_split(
    make_server: Callable[..., FakeOpenAIServer], split: int | None, interleave: bool
) -> None:
    calls = (
        tool_call("query_dataset", {"sql": "select \"ratio\" from capital where q = 'Q3' -- ü €"}, id="call_a"),
        tool_call("search_documents", "{}", id="call_b"),
        tool_call("query_dataset", '{"sql": "select 2"}', id="call_c"),
    )
    server = make_server(Reply.calls(*calls, text="Checking. ", split=split, interleave=interleave))
    deltas = run_backend(server, ask())
    assert calls_of(deltas) == list(calls)
    assert all(not d.tool_calls for d in deltas[:-1])  # whole, once, with the last delta
    assert deltas[-1].finish_reason == "tool_calls"
    assert "".join(d.text for d in deltas) == "Checking. "
    assert deltas[-1].usage is not None and deltas[-1].usage.completion_tokens >= 3


def test_a_server_that_says_stop_and_sends_no_ids_still_gives_whole_calls(
    make_server: Callable[..., FakeOpenAIServer],
) -> None:
    server = make_server(Reply.calls(tool_call("query_dataset", "{}"), finish_reason="stop", send_ids=False))
    deltas = run_backend(server, ask())
    (call,) = calls_of(deltas)
    assert call.name == "query_dataset" and call.id.startswith("call_")
    assert deltas[-1].finish_reason == "tool_calls"


def test_malformed_arguments_and_unknown_tools_pass_through_as_text(
    make_server: Callable[..., FakeOpenAIServer],
) -> None:
    server = make_server(Reply.calls(tool_call("drop_table", '{"sql": "sel', id="c1"), split=2))
    assert calls_of(run_backend(server, ask())) == [ToolCall("c1", "drop_table", '{"sql": "sel')]


@pytest.mark.parametrize("cut_after", [2, 3, 5])
def test_a_body_that_ends_in_the_middle_of_a_tool_call_is_a_bad_response(
    make_server: Callable[..., FakeOpenAIServer], cut_after: int
) -> None:
    # one text token, then four fragments; the body ends cleanly with no finish and no [DONE]
    reply = Reply.calls(tool_call("query_dataset", '{"sql": "select 1"}'), text="Hm.", split=5, cut_after=cut_after)
    server = make_server(reply)
    with pytest.raises(BadBackendResponse, match="middle of a tool call") as bad:
        run_backend(server, ask())
    assert "select" not in str(bad.value)


def test_a_connection_dropped_mid_call_is_retryable(make_server: Callable[..., FakeOpenAIServer]) -> None:
    server = make_server(Reply.calls(tool_call("query_dataset", '{"sql": "select 1"}'), split=3, drop_after=2))
    with pytest.raises(BackendUnavailable, match="dropped"):
        run_backend(server, ask())


# -- the gateway --------------------------------------------------------------------------


def run_gateway(gw: Gateway, request: ChatRequest) -> tuple[list[Delta], ChatResult]:
    async def main() -> tuple[list[Delta], ChatResult]:
        try:
            async with gw.stream(request) as s:
                deltas = [d async for d in s]
            return deltas, s.result
        finally:
            await gw.aclose()

    return asyncio.run(main())


def test_the_gateway_passes_tools_through_and_returns_the_calls(make_server: Callable[..., FakeOpenAIServer]) -> None:
    calls = (tool_call("query_dataset", SECRET_ARGS, id="c1"), tool_call("search_documents", "{}", id="c2"))
    server = make_server(Reply.calls(*calls, split=4))
    deltas, result = run_gateway(gateway([("a", 1)], [http("a", server)]), ask(model="chat", tool_choice="auto"))
    assert calls_of(deltas) == list(calls) == list(result.tool_calls)
    assert result.finish_reason == "tool_calls" and result.text == ""
    assert server.requests[0]["tools"][0]["function"]["name"] == "query_dataset"
    assert server.requests[0]["tool_choice"] == "auto"


def test_deployments_that_cannot_call_tools_are_skipped(make_server: Callable[..., FakeOpenAIServer]) -> None:
    server = make_server(Reply.calls(tool_call("search_documents", "{}", id="c1")))
    gw = gateway([("extractive", 1), ("a", 0)], [function("extractive", "an answer"), http("a", server)])
    _, result = run_gateway(gw, ask(model="chat"))
    assert result.deployment == "a" and [c.name for c in result.tool_calls] == ["search_documents"]
    assert [(f.deployment, f.error) for f in result.failovers] == [("extractive", "BackendRejected")]
    alone = gateway([("extractive", 1)], [function("extractive", "an answer")])
    with pytest.raises(NoDeploymentAvailable, match="cannot call tools"):
        run_gateway(alone, ask(model="chat"))
    # without tools the function answers as before
    _, plain = run_gateway(
        gateway([("extractive", 1)], [function("extractive", "an answer")]), ask(model="chat", tools=())
    )
    assert plain.text == "an answer" and plain.tool_calls == ()


def test_a_failure_before_the_calls_reach_the_caller_fails_over(make_server: Callable[..., FakeOpenAIServer]) -> None:
    call = tool_call("query_dataset", SECRET_ARGS, id="c1")
    cut = make_server(Reply.calls(call, split=3, cut_after=4))  # the body ends mid-call: nothing was yielded
    good = make_server(Reply.calls(tool_call("query_dataset", SECRET_ARGS, id="c9")))
    deltas, result = run_gateway(gateway([("a", 1), ("b", 0)], [http("a", cut), http("b", good)]), ask(model="chat"))
    assert [c.id for c in calls_of(deltas)] == ["c9"] and result.deployment == "b"
    assert result.failovers[0].error == "BadBackendResponse"


class _CallsThenFails:
    """A backend that yields its tool calls before the last delta, then drops."""

    supports_tools: ClassVar[bool] = True

    def __init__(self, calls: tuple[ToolCall, ...], text: str = "") -> None:
        self.calls = calls
        self.text = text

    async def stream(self, request: ChatRequest) -> AsyncIterator[Delta]:
        if self.text:
            yield Delta(self.text)
        yield Delta("", tool_calls=self.calls)
        raise BackendUnavailable("scripted: the connection dropped after the calls")


def _failover_gateway(first: Any, fallback: ScriptedChatModel) -> Gateway:
    return gateway([("a", 1), ("b", 0)], [Deployment("a", first), Deployment("b", fallback)])


def test_calls_that_reached_the_caller_are_not_failed_over_unless_allowed() -> None:
    first = _CallsThenFails((ToolCall("c1", "query_dataset", SECRET_ARGS),))
    fallback = ScriptedChatModel(default=ScriptedReply.calls(tool_call("query_dataset", SECRET_ARGS)))
    got: list[Delta] = []

    async def main() -> None:
        async with _failover_gateway(first, fallback).stream(ask(model="chat")) as s:
            async for d in s:
                got.append(d)

    with pytest.raises(StreamInterrupted, match="1 tool call"):
        asyncio.run(main())
    assert [c.id for c in calls_of(got)] == ["c1"] and fallback.requests == []


def test_a_fallback_continues_only_by_making_the_same_calls_and_the_caller_sees_each_once() -> None:
    sent = (ToolCall("c1", "query_dataset", SECRET_ARGS),)
    first = _CallsThenFails(sent, text="Looking. ")
    same = ScriptedChatModel(
        default=ScriptedReply.calls(
            tool_call("query_dataset", SECRET_ARGS), tool_call("search_documents"), text="Looking. "
        )
    )
    deltas, result = run_gateway(_failover_gateway(first, same), ask(model="chat", allow_mid_stream_failover=True))
    assert [(c.id, c.name) for c in calls_of(deltas)] == [("c1", "query_dataset"), ("call_2", "search_documents")]
    assert result.tool_calls == tuple(calls_of(deltas)) and result.text == "Looking. "
    assert result.deployment == "b" and result.finish_reason == "tool_calls"

    other = ScriptedChatModel(default=ScriptedReply.calls(tool_call("query_dataset", "{}"), text="Looking. "))
    with pytest.raises(StreamInterrupted, match="no fallback could continue"):
        run_gateway(
            _failover_gateway(_CallsThenFails(sent, text="Looking. "), other),
            ask(model="chat", allow_mid_stream_failover=True),
        )


def test_tool_arguments_never_reach_the_log(
    make_server: Callable[..., FakeOpenAIServer], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="strongroom")
    call = tool_call("query_dataset", SECRET_ARGS, id="c1")
    cut = make_server(Reply.calls(call, split=3, cut_after=4))
    good = make_server(Reply.calls(call, split=3))
    _, result = run_gateway(gateway([("a", 1), ("b", 0)], [http("a", cut), http("b", good)]), ask(model="chat"))
    assert result.tool_calls == (call,)
    assert any("1 tool call" in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)
    assert caplog.records and not [r for r in caplog.records if SECRET in r.getMessage()]


def test_the_tools_offered_count_towards_the_prompt_limit() -> None:
    big = ToolSpec("query_dataset", "x" * 400, {"type": "object"})
    gw = gateway([("s", 1)], [Deployment("s", ScriptedChatModel())], limits=Limits(max_prompt_tokens=60))
    run_gateway(gw, ask(model="chat", tools=()))  # the message alone fits
    with pytest.raises(PromptTooLarge):
        run_gateway(gw, ask(model="chat", tools=(big,)))


def test_usage_is_estimated_with_the_calls_when_the_backend_reports_none() -> None:
    model = ScriptedChatModel([ScriptedReply.calls(tool_call("query_dataset", "x" * 80))], usage=False)
    _, result = run_gateway(gateway([("s", 1)], [Deployment("s", model)]), ask(model="chat"))
    assert result.usage.estimated and result.usage.completion_tokens >= 20


# -- a multi-step conversation over HTTP ----------------------------------------------------


def test_a_model_that_reacts_to_tool_results_over_http(make_server: Callable[..., FakeOpenAIServer]) -> None:
    def model(body: dict[str, Any]) -> Reply:
        last = body["messages"][-1]
        if last["role"] == "tool":
            value = json.loads(last["content"])["rows"][0][0]
            return Reply.stream(f"The CET1 ratio was {value}% ({last['tool_call_id']}).")
        return Reply.calls(tool_call("query_dataset", {"sql": "select cet1 from capital"}), split=4)

    server = make_server(model)
    gw = gateway([("a", 1)], [http("a", server)])

    async def agent() -> tuple[str, Usage]:
        messages: tuple[ChatMessage, ...] = (ChatMessage("user", "What was the CET1 ratio?"),)
        try:
            for _ in range(4):
                text, calls, finish, usage = await complete_with_tools(gw, ask(*messages, model="chat"))
                if finish != "tool_calls":
                    return text, usage
                messages += (ChatMessage("assistant", text, tool_calls=calls),)
                messages += tuple(ChatMessage("tool", '{"rows": [[14.2]]}', tool_call_id=c.id) for c in calls)
            raise AssertionError("the model never answered")
        finally:
            await gw.aclose()

    text, usage = asyncio.run(agent())
    assert text == "The CET1 ratio was 14.2% (call_1)." and not usage.estimated
    second = server.requests[1]["messages"]
    assert [m["role"] for m in second] == ["user", "assistant", "tool"]
    assert second[1]["tool_calls"][0]["function"] == {
        "name": "query_dataset",
        "arguments": '{"sql":"select cet1 from capital"}',
    }
    assert server.failures == []


def test_a_scripted_function_that_fails_answers_500_and_is_recorded(
    make_server: Callable[..., FakeOpenAIServer],
) -> None:
    def broken(body: dict[str, Any]) -> Reply:
        raise KeyError("messages")

    server = make_server(broken)
    with pytest.raises(BackendUnavailable, match="scripted function failed"):
        run_backend(server, ask())
    assert server.failures == ["KeyError: 'messages'"]
