"""The scripted chat model that strongroom.testing ships: it passes the contract it stands in for."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from strongroom.errors import BackendRejected, BackendTimeout, GatewayError
from strongroom.llm.protocol import ChatModel, aclose, complete, complete_with_tools
from strongroom.llm.types import ChatMessage, ChatRequest, Delta, ToolCall, ToolSpec, Usage
from strongroom.testing import ScriptedChatModel
from strongroom.testing.chat import ScriptedReply, tool_call
from strongroom.testing.chat_contract import ChatModelFactory, Script, ToolCallingContract
from tests.llm.helpers import scripted_entry


class TestScriptedChatModel(ToolCallingContract):
    @pytest.fixture
    def chat_model(self) -> ChatModelFactory:
        def make(*script: Script) -> ChatModel:
            replies = [scripted_entry(s) for s in script]
            return ScriptedChatModel(replies[:-1], default=replies[-1])

        return make


def test_it_answers_from_its_script_then_its_default_and_records_the_requests() -> None:
    model = ScriptedChatModel(["Revenue grew 4%.", BackendTimeout("scripted timeout")], default="No answer.")

    async def main() -> list[str]:
        texts = [(await complete(model, ChatRequest.of("q1")))[0]]
        with pytest.raises(BackendTimeout, match="scripted timeout"):
            await complete(model, ChatRequest.of("q2"))
        model.script("Later.")
        for prompt in ("q3", "q4"):
            texts.append((await complete(model, ChatRequest.of(prompt)))[0])
        return texts

    assert asyncio.run(main()) == ["Revenue grew 4%.", "Later.", "No answer."]
    assert [r.messages[-1].content for r in model.requests] == ["q1", "q2", "q3", "q4"]


def test_max_tokens_cuts_the_answer_and_usage_counts_words() -> None:
    model = ScriptedChatModel(default="one two three four five")
    text, finish, usage = asyncio.run(complete(model, ChatRequest.of("count", max_tokens=3)))
    assert (text, finish) == ("one two three ", "length")
    assert usage == Usage(prompt_tokens=6, completion_tokens=3)
    quiet = ScriptedChatModel(usage=False)
    assert asyncio.run(complete(quiet, ChatRequest.of("hi")))[2].estimated


def test_it_counts_the_streams_left_open() -> None:
    model = ScriptedChatModel(default="a b c")

    async def main() -> list[int]:
        stream = model.stream(ChatRequest.of("hi"))
        await anext(stream)
        counts = [model.open_streams]
        await aclose(stream)
        return [*counts, model.open_streams]

    assert asyncio.run(main()) == [1, 0]


# -- tool calls -------------------------------------------------------------------------


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


SQL = ToolSpec("sql", "Query a dataset with SQL", {"type": "object", "properties": {"query": {"type": "string"}}})


def test_a_scripted_tool_call_comes_whole_once_with_finish_reason_tool_calls() -> None:
    model = ScriptedChatModel([ScriptedReply.calls(tool_call("sql", {"query": "select 1"}))])
    request = ChatRequest.of("ratio?", tools=(SQL,))

    async def main() -> list[Delta]:
        return [d async for d in model.stream(request)]

    deltas = _run(main())
    calls = [c for d in deltas for c in d.tool_calls]
    assert calls == [ToolCall("call_1", "sql", '{"query":"select 1"}')]
    assert deltas[-1].finish_reason == "tool_calls" and deltas[-1].usage is not None
    assert model.requests[0].tools == (SQL,)


def test_parallel_calls_text_before_them_and_calls_on_the_last_delta() -> None:
    model = ScriptedChatModel(
        [
            ScriptedReply.calls(tool_call("a", "{}"), tool_call("b", '{"x": 1}', id="mine"), text="Looking. "),
            ScriptedReply.calls(tool_call("c"), calls_on_last=True),
        ]
    )
    text, calls, finish, _ = _run(complete_with_tools(model, ChatRequest.of("q")))
    assert (text, finish) == ("Looking. ", "tool_calls")
    assert [(c.id, c.name, c.arguments) for c in calls] == [("call_1", "a", "{}"), ("mine", "b", '{"x": 1}')]

    async def main() -> list[Delta]:
        return [d async for d in model.stream(ChatRequest.of("q"))]

    *body, last = _run(main())
    assert all(not d.tool_calls for d in body)
    assert [c.name for c in last.tool_calls] == ["c"] and last.tool_calls[0].id == "call_2"


def test_malformed_arguments_and_unknown_tools_pass_through_as_scripted() -> None:
    model = ScriptedChatModel([ScriptedReply.calls(tool_call("no_such_tool", '{"query": "sel'))])
    _, calls, _, _ = _run(complete_with_tools(model, ChatRequest.of("q", tools=(SQL,))))
    assert calls == (ToolCall("call_1", "no_such_tool", '{"query": "sel'),)


def test_a_function_entry_reacts_to_the_tool_results_it_is_sent() -> None:
    def turn(request: ChatRequest) -> ScriptedReply | str:
        last = request.messages[-1]
        if last.role == "tool":
            return f"The answer is {json.loads(last.content)['value']} ({last.tool_call_id})."
        return ScriptedReply.calls(tool_call("sql", {"query": "select 42"}))

    model = ScriptedChatModel(default=turn)

    async def agent() -> str:
        messages: tuple[ChatMessage, ...] = (ChatMessage("user", "What is it?"),)
        while True:
            text, calls, finish, _ = await complete_with_tools(model, ChatRequest(messages, tools=(SQL,)))
            if finish != "tool_calls":
                return text
            messages += (ChatMessage("assistant", text, tool_calls=calls),)
            messages += tuple(ChatMessage("tool", json.dumps({"value": 42}), tool_call_id=c.id) for c in calls)

    assert _run(agent()) == "The answer is 42 (call_1)."
    assert [m.role for m in model.requests[-1].messages] == ["user", "assistant", "tool"]


def test_a_function_entry_may_be_async_and_may_fail() -> None:
    async def slow(request: ChatRequest) -> str:
        await asyncio.sleep(0)
        return "async answer"

    def failing(request: ChatRequest) -> GatewayError:
        return BackendRejected("scripted: no such tool")

    model = ScriptedChatModel([slow, failing])
    assert _run(complete(model, ChatRequest.of("q")))[0] == "async answer"
    with pytest.raises(BackendRejected, match="no such tool"):
        _run(complete(model, ChatRequest.of("q")))


def test_a_delay_lets_a_caller_time_out_mid_run() -> None:
    model = ScriptedChatModel([ScriptedReply("late", delay_s=30.0)])

    async def main() -> None:
        async with asyncio.timeout(0.05):
            await complete(model, ChatRequest.of("q"))

    with pytest.raises(TimeoutError):
        _run(main())
    assert model.open_streams == 0


def test_max_tokens_cutting_the_text_drops_the_calls() -> None:
    model = ScriptedChatModel([ScriptedReply.calls(tool_call("sql"), text="one two three four")])
    text, calls, finish, _ = _run(complete_with_tools(model, ChatRequest.of("q", max_tokens=2)))
    assert (text, calls, finish) == ("one two ", (), "length")
