"""The ChatModel contract: every chat backend's test subclasses :class:`ChatModelContract`.

A backend test supplies one fixture, ``chat_model``: a factory that builds the backend
told what to say. ``chat_model(*script)`` returns a model that answers its n-th request
with ``script[n]``, and every request after the script's end with its last entry; a
:class:`Refusal` entry makes it refuse that request, as a server answering 400 or a
function that raises would::

    class TestScriptedChatModel(ChatModelContract):
        @pytest.fixture
        def chat_model(self) -> ChatModelFactory:
            def make(*script: Script) -> ChatModel:
                replies = [BackendRejected(s.message) if isinstance(s, Refusal) else s for s in script]
                return ScriptedChatModel(replies[:-1], default=replies[-1])
            return make

A backend that calls tools subclasses :class:`ToolCallingContract` (a :class:`Calls` entry
makes it answer with those tool calls: in fragments of ``split`` characters of their
arguments where the backend streams fragments (a scripted OpenAI server), whole otherwise);
one that cannot subclasses :class:`NoToolsContract` (it must refuse a request that offers
tools). Neither skips: a backend runs the contract of what it promises::

    def entry(e: Script) -> str | ScriptedReply | GatewayError:
        if isinstance(e, Calls):
            return ScriptedReply.calls(*e.calls, text=e.text)
        ...

A fixture that can bound what a model holds (connections, concurrent calls) should bound
it at two: two streams at once must fit, and three that closing failed to release must not.
A model with an ``aclose()`` coroutine (a connection pool, a worker thread) is closed at the
end of each test, on the test's event loop. Otherwise the contract only calls ``stream``.
"""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import ClassVar, Protocol, TypeVar

from strongroom.errors import BackendError, RequestRejected
from strongroom.llm.protocol import ChatModel, aclose, complete
from strongroom.llm.types import ChatMessage, ChatRequest, Delta, ToolCall, ToolSpec

__all__ = [
    "Calls",
    "ChatModelContract",
    "ChatModelFactory",
    "NoToolsContract",
    "Refusal",
    "Script",
    "ToolCallingContract",
]

T = TypeVar("T")

#: how long any one test may take on its event loop before it counts as hung
TIMEOUT_S = 60.0

REQUEST = ChatRequest.of("What was the CET1 ratio at the end of the quarter?", max_tokens=16)
REPLY = "The CET1 ratio was 14.2% at the end of the quarter."
OTHER = ChatRequest.of("Who audits the bank?", max_tokens=16)
OTHER_REPLY = "The bank is audited by a Big Four firm."
LONG_REPLY = " ".join(["Net interest income rose while credit losses fell."] * 40)
#: streams closed early in a row: more than a fixture's bound, so a leak shows
EARLY_CLOSES = 3


@dataclass(frozen=True)
class Refusal:
    """A script entry: refuse this request as malformed."""

    message: str = "scripted refusal: the request is malformed"


@dataclass(frozen=True)
class Calls:
    """A script entry: answer with these tool calls (after ``text``), their arguments
    streamed in fragments of ``split`` characters where the backend streams fragments."""

    calls: tuple[ToolCall, ...]
    text: str = ""
    split: int | None = None


Script = str | Refusal | Calls

LOOKUP = ToolSpec(
    "lookup_metric",
    "Look up a reported metric of a bank for a period",
    {
        "type": "object",
        "properties": {"metric": {"type": "string"}, "period": {"type": "string"}},
        "required": ["metric"],
    },
)
TOOL_REQUEST = ChatRequest.of("What was the CET1 ratio at the end of Q3?", tools=(LOOKUP,), tool_choice="auto")
ONE_CALL = ToolCall("call_cet1", "lookup_metric", '{"metric": "CET1 ratio", "period": "2024-Q3"}')
#: two calls at once, with arguments that a naive split would break: escapes, non-ASCII, nesting
PARALLEL = (
    ToolCall("call_a", "lookup_metric", '{"metric": "CET1 \\"fully loaded\\"", "period": "2024-Q3"}'),
    ToolCall("call_b", "lookup_metric", '{"metric": "Tier 1 leverage, Zürich €", "filters": {"entity": ["Bank plc"]}}'),
)
TOOL_RESULT_REQUEST = ChatRequest(
    (
        ChatMessage("user", "What was the CET1 ratio at the end of Q3?"),
        ChatMessage("assistant", "", tool_calls=(ONE_CALL,)),
        ChatMessage("tool", '{"value": 14.2, "unit": "%"}', tool_call_id=ONE_CALL.id),
    ),
    tools=(LOOKUP,),
)


class ChatModelFactory(Protocol):
    """Build the backend under test, answering its requests with ``script``, in order."""

    def __call__(self, *script: Script) -> ChatModel: ...


async def _deltas(model: ChatModel, request: ChatRequest) -> list[Delta]:
    stream = model.stream(request)
    try:
        return [delta async for delta in stream]
    finally:
        await aclose(stream)


def _text(deltas: list[Delta]) -> str:
    return "".join(d.text for d in deltas)


def _calls(deltas: list[Delta]) -> list[ToolCall]:
    return [call for d in deltas for call in d.tool_calls]


class ChatModelContract:
    """Behaviour every ChatModel must have.

    ``scripted`` is False for a backend that says what its weights say (a local model): it
    is told nothing, and the contract checks that it answers, not what. ``reports_usage`` is
    False for a backend that reports no usage (the gateway then estimates it).
    """

    scripted: ClassVar[bool] = True
    reports_usage: ClassVar[bool] = True

    def run(self, model: ChatModel, body: Callable[[], Awaitable[T]]) -> T:
        """Run ``body`` on a fresh event loop, then close ``model`` if it holds resources."""

        async def main() -> T:
            try:
                async with asyncio.timeout(TIMEOUT_S):
                    return await body()
            finally:
                close = getattr(model, "aclose", None)
                if close is not None:
                    await close()

        return asyncio.run(main())

    def check_reply(self, text: str, script: str) -> None:
        if self.scripted:
            assert text == script
        else:
            assert text.strip(), "the model answered nothing"

    def test_the_deltas_add_up_to_the_reply(self, chat_model: ChatModelFactory) -> None:
        model = chat_model(REPLY)
        deltas = self.run(model, lambda: _deltas(model, REQUEST))
        assert deltas and all(isinstance(d, Delta) and isinstance(d.text, str) for d in deltas)
        self.check_reply(_text(deltas), REPLY)

    def test_only_the_last_delta_finishes_and_carries_usage(self, chat_model: ChatModelFactory) -> None:
        model = chat_model(REPLY)
        *body, last = self.run(model, lambda: _deltas(model, REQUEST))
        assert isinstance(last.finish_reason, str) and last.finish_reason
        assert all(d.finish_reason is None and d.usage is None for d in body)

    def test_usage_is_sane(self, chat_model: ChatModelFactory) -> None:
        model = chat_model(REPLY)
        deltas = self.run(model, lambda: _deltas(model, REQUEST))
        usage = deltas[-1].usage
        if not self.reports_usage:  # it says it reports none, and it reports none: the gateway estimates it
            assert usage is None
            return
        assert usage is not None, "the last delta carries no usage"
        prompt_chars = sum(len(m.content) for m in REQUEST.messages)
        assert 1 <= usage.prompt_tokens <= 4 * prompt_chars
        assert REQUEST.max_tokens is not None and 1 <= usage.completion_tokens <= REQUEST.max_tokens
        assert usage.completion_tokens <= len(_text(deltas))  # no token is shorter than a character
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens

    def test_closing_a_stream_early_releases_it(self, chat_model: ChatModelFactory) -> None:
        model = chat_model(*[LONG_REPLY] * EARLY_CLOSES, REPLY)

        async def body() -> str:
            unstarted = model.stream(REQUEST)
            await aclose(unstarted)  # a stream closed before it started costs nothing
            for _ in range(EARLY_CLOSES):
                stream = model.stream(REQUEST)
                assert callable(getattr(stream, "aclose", None)), "the stream cannot be closed"
                await anext(stream)
                await aclose(stream)
                try:
                    await anext(stream)
                except StopAsyncIteration:
                    pass
                else:
                    raise AssertionError("a closed stream went on yielding")
            text, _, _ = await complete(model, REQUEST)  # what they held is free for the next call
            gc.collect()
            return text

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            text = self.run(model, body)
            gc.collect()
        leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning | RuntimeWarning)]
        assert leaks == []
        self.check_reply(text, REPLY)

    def test_a_refused_request_raises_a_gateway_error_not_a_library_one(self, chat_model: ChatModelFactory) -> None:
        """A backend raises a BackendError, which the gateway can fail over on; the gateway
        raises RequestRejected for a request its own rules refuse."""
        import pytest

        model = chat_model(Refusal())
        with pytest.raises((BackendError, RequestRejected)) as refused:
            self.run(model, lambda: _deltas(model, REQUEST))
        assert str(refused.value).strip()

    def test_two_streams_at_once_keep_their_own_answers(self, chat_model: ChatModelFactory) -> None:
        model = chat_model(REPLY, OTHER_REPLY)

        async def body() -> tuple[list[Delta], list[Delta], list[list[Delta]]]:
            first = model.stream(REQUEST)
            try:
                head = [await anext(first)]
                second = await _deltas(model, OTHER)  # runs to its end while the first is open
                first_deltas = head + [delta async for delta in first]
            finally:
                await aclose(first)
            together = await asyncio.gather(_deltas(model, OTHER), _deltas(model, OTHER))
            return first_deltas, second, list(together)

        first, second, together = self.run(model, body)
        for deltas, script in ((first, REPLY), (second, OTHER_REPLY), *((d, OTHER_REPLY) for d in together)):
            assert [d.finish_reason is not None for d in deltas].count(True) == 1 and deltas[-1].finish_reason
            self.check_reply(_text(deltas), script)


class ToolCallingContract(ChatModelContract):
    """The contract of a model that calls tools (``supports_tools = True``), told what to
    call by a :class:`Calls` script entry: calls arrive whole and once, parallel fragments
    reassemble in order, malformed arguments pass through as written, tool results are answered."""

    def _tool_model(self, chat_model: ChatModelFactory, *script: Script) -> ChatModel:
        model = chat_model(*script)
        assert getattr(model, "supports_tools", False) is True, "a tool-calling backend says supports_tools = True"
        return model

    def test_a_tool_call_arrives_whole_once_with_the_last_delta(self, chat_model: ChatModelFactory) -> None:
        model = self._tool_model(chat_model, Calls((ONE_CALL,)))
        deltas = self.run(model, lambda: _deltas(model, TOOL_REQUEST))
        assert _calls(deltas) == [ONE_CALL]
        assert deltas[-1].finish_reason == "tool_calls"
        assert [d.finish_reason is not None for d in deltas].count(True) == 1

    def test_parallel_calls_streamed_in_fragments_reassemble_in_order(self, chat_model: ChatModelFactory) -> None:
        model = self._tool_model(chat_model, Calls(PARALLEL, text="Let me look both up. ", split=3))
        deltas = self.run(model, lambda: _deltas(model, TOOL_REQUEST))
        assert _calls(deltas) == list(PARALLEL)
        assert _text(deltas) == "Let me look both up. "
        assert deltas[-1].finish_reason == "tool_calls"

    def test_arguments_are_passed_on_as_written_even_when_malformed(self, chat_model: ChatModelFactory) -> None:
        broken = (ToolCall("call_x", "no_such_tool", '{"metric": "CET1'),)
        model = self._tool_model(chat_model, Calls(broken, split=4))
        deltas = self.run(model, lambda: _deltas(model, TOOL_REQUEST))
        assert _calls(deltas) == list(broken)

    def test_tool_results_are_accepted_and_answered(self, chat_model: ChatModelFactory) -> None:
        model = self._tool_model(chat_model, REPLY)
        deltas = self.run(model, lambda: _deltas(model, TOOL_RESULT_REQUEST))
        assert _text(deltas) == REPLY and not _calls(deltas)
        assert deltas[-1].finish_reason == "stop"


class NoToolsContract(ChatModelContract):
    """The contract of a model that cannot call tools: it says so (``supports_tools`` not
    True) and refuses a request that offers tools or carries tool results, never ignoring them."""

    def test_a_model_that_cannot_call_tools_refuses_them(self, chat_model: ChatModelFactory) -> None:
        import pytest

        model = chat_model(REPLY)
        assert getattr(model, "supports_tools", False) is not True
        for request in (TOOL_REQUEST, TOOL_RESULT_REQUEST):
            with pytest.raises((BackendError, RequestRejected), match="tool") as refused:
                self.run(model, lambda r=request: _deltas(model, r))  # type: ignore[misc]
            assert str(refused.value).strip()
