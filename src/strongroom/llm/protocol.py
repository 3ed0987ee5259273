"""The ChatModel protocol: one streaming method every backend, and the gateway, implement.

A backend yields :class:`~strongroom.llm.types.Delta` values as text arrives; the last one
carries ``finish_reason`` and, when the backend reports it, ``usage``. Backends raise only
:class:`~strongroom.errors.BackendError` subclasses. Accumulating, counting tokens,
metering and logging are the gateway's job, not the backend's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from strongroom.errors import BackendRejected
from strongroom.llm.types import ChatRequest, Delta, ToolCall, Usage, estimate_tokens, prompt_tokens_estimate

__all__ = ["ChatModel", "aclose", "complete", "complete_with_tools", "refuse_tools"]


@runtime_checkable
class ChatModel(Protocol):
    """Anything that streams a chat completion.

    Implement it with an async generator::

        class Echo:
            async def stream(self, request: ChatRequest) -> AsyncIterator[Delta]:
                yield Delta(request.messages[-1].content, finish_reason="stop")

        async for delta in Echo().stream(ChatRequest.of("hello")):
            print(delta.text, end="")

    Callers that stop early should close the iterator (``contextlib.aclosing``) so the
    backend releases its connection or worker thread at once.

    A backend that can call tools says so with a class attribute ``supports_tools = True``
    and yields each call whole, once, on or before the last delta (``finish_reason
    "tool_calls"``). One without it is sent no tools by the gateway, and refuses a request
    with tools itself (:func:`refuse_tools`) rather than answering as if none were offered.
    :class:`strongroom.testing.chat_contract.ChatModelContract` checks every backend, and
    :class:`strongroom.testing.ScriptedChatModel` is the fake to test callers with.
    """

    def stream(self, request: ChatRequest) -> AsyncIterator[Delta]:
        """Yield the answer to ``request`` as it is produced."""
        ...


def refuse_tools(request: ChatRequest, who: str) -> None:
    """Raise BackendRejected if ``request`` offers tools or carries tool calls or results,
    for a backend that cannot call tools (it must not answer as if they were not there)."""
    if request.tools or any(m.tool_calls or m.role == "tool" for m in request.messages):
        raise BackendRejected(
            f"{who} cannot call tools, and this request offers tools or carries tool calls; "
            "send it to a route whose deployments support tools (an OpenAI-compatible server)"
        )


async def aclose(stream: AsyncIterator[Delta]) -> None:
    """Close ``stream`` now if it can be closed (async generators can), releasing its backend."""
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()


async def complete(model: ChatModel, request: ChatRequest) -> tuple[str, str, Usage]:
    """Drain ``model.stream(request)``: the text, the finish reason and the usage.

    Usage is the backend's when it reported one, else estimated at ~4 characters a token.
    Tool calls are left out: use :func:`complete_with_tools` for a request with ``tools``.
    """
    text, _, finish, usage = await complete_with_tools(model, request)
    return text, finish, usage


async def complete_with_tools(model: ChatModel, request: ChatRequest) -> tuple[str, tuple[ToolCall, ...], str, Usage]:
    """Drain ``model.stream(request)``: the text, the tool calls, the finish reason and the usage.

        request = ChatRequest(messages, model="chat", tools=(ToolSpec("sql", "Query a dataset", schema),))
        text, calls, finish, usage = await complete_with_tools(gateway, request)
        for call in calls:            # finish == "tool_calls" when the model called tools
            args = json.loads(call.arguments)   # may be malformed: the caller validates

    Each call comes whole, once, in the order the model made them; ``arguments`` is the
    JSON text as the model wrote it. Usage is the backend's when it reported one, else
    estimated at ~4 characters a token.
    """
    parts: list[str] = []
    calls: list[ToolCall] = []
    finish = "stop"
    usage: Usage | None = None
    deltas = model.stream(request)
    try:
        async for delta in deltas:
            if delta.text:
                parts.append(delta.text)
            if delta.tool_calls:
                calls.extend(delta.tool_calls)
            if delta.finish_reason:
                finish = delta.finish_reason
            if delta.usage is not None:
                usage = delta.usage
    finally:
        await aclose(deltas)
    text = "".join(parts)
    if usage is None:
        completion = estimate_tokens(text) + sum(estimate_tokens(c.name + c.arguments) for c in calls)
        usage = Usage(prompt_tokens_estimate(request.messages), completion, estimated=True)
    return text, tuple(calls), finish, usage
