"""A scripted ChatModel: the fake to call instead of a model server, in tests and smoke runs.

It answers each request with the next entry of its script, then with its default, streaming
the text a word at a time as a backend would::

    model = ScriptedChatModel(["Revenue grew 4%.", BackendTimeout("scripted")], default="No answer.")
    await complete(model, ChatRequest.of("q"))   # "Revenue grew 4%."
    await complete(model, ChatRequest.of("q"))   # raises BackendTimeout
    await complete(model, ChatRequest.of("q"))   # "No answer.", from now on
    model.requests                               # the three requests, in order

An entry may also be a :class:`ScriptedReply` (tool calls, a delay, a finish reason) or a
function of the request that returns any entry, for a model that reacts to the tool results
it is sent::

    def model_turn(request: ChatRequest) -> ScriptedReply | str:
        if request.messages[-1].role == "tool":
            return f"The ratio is {json.loads(request.messages[-1].content)['value']}."
        return ScriptedReply.calls(tool_call("sql", {"query": "select 1"}))

    model = ScriptedChatModel(default=model_turn)

Unlike :class:`~strongroom.llm.function.FunctionModel`, which serves a real function in
production, it fails on cue with any gateway error, counts its tokens, honours
``max_tokens`` and records what it was asked and which streams are still open.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import ClassVar, TypeAlias

from strongroom.errors import GatewayError
from strongroom.llm.types import ChatRequest, Delta, ToolCall, Usage, estimate_tokens, prompt_tokens_estimate

__all__ = ["ScriptEntry", "ScriptedChatModel", "ScriptedReply", "tool_call"]

_WORDS = re.compile(r"\S+\s*|\s+")


def tool_call(name: str, arguments: str | Mapping[str, object] = "{}", *, id: str = "") -> ToolCall:
    """A tool call for a script. ``arguments`` is JSON text, sent as it is (so a malformed
    string stays malformed), or a mapping dumped to JSON. An empty ``id`` is filled in by the
    model that streams it (``call_1``, ``call_2``, ... in the order it made them)."""
    text = arguments if isinstance(arguments, str) else json.dumps(dict(arguments), separators=(",", ":"))
    return ToolCall(id, name, text)


@dataclass(frozen=True, slots=True)
class ScriptedReply:
    """One scripted answer: ``text`` (streamed a word at a time) and then ``tool_calls``
    (each yielded once, whole; on the last delta when ``calls_on_last``, else just before
    it). ``delay_s``: seconds to wait before the first delta (a slow model, for timeouts).
    ``finish_reason``: ``tool_calls`` when there are calls, else ``stop``, unless given.

        ScriptedReply("Let me look that up.", (tool_call("search", {"q": "CET1"}),))
        ScriptedReply.calls(tool_call("a", "{}"), tool_call("b", "{}"))   # two in parallel
    """

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    delay_s: float = 0.0
    finish_reason: str | None = None
    calls_on_last: bool = False

    @classmethod
    def calls(cls, *calls: ToolCall, text: str = "", **kw: object) -> ScriptedReply:
        """A reply that calls ``calls`` (in parallel when there are several)."""
        return cls(text, tuple(calls), **kw)  # type: ignore[arg-type]


#: what one script entry may be: text, a reply, an error to raise, or a function of the request
ScriptEntry: TypeAlias = (
    str
    | ScriptedReply
    | GatewayError
    | Callable[[ChatRequest], "str | ScriptedReply | GatewayError | Awaitable[str | ScriptedReply | GatewayError]"]
)


class ScriptedChatModel:
    """A ChatModel answering from a script of texts, replies and errors (a token is a word here).

    A scripted :class:`~strongroom.errors.GatewayError` is raised before any text, as a
    backend failing to answer would (a function entry may return or raise one). A request's
    ``max_tokens`` cuts the text with ``finish_reason="length"`` (and drops the reply's tool
    calls, as a model cut off mid-call makes none). ``usage=False`` reports no usage, as
    some servers do. It calls tools whether or not the request offered them: the script
    decides, so a test can send an unknown tool name or malformed arguments.
    """

    supports_tools: ClassVar[bool] = True

    def __init__(
        self,
        replies: Iterable[ScriptEntry] = (),
        *,
        default: ScriptEntry = "Hello world.",
        usage: bool = True,
        name: str = "scripted",
    ) -> None:
        self._script: deque[ScriptEntry] = deque(replies)
        self.default = default
        self.usage = usage
        self.name = name
        self.requests: list[ChatRequest] = []
        self.open_streams = 0  # streams started and not yet finished or closed
        self._call_ids = 0

    def __repr__(self) -> str:
        return f"ScriptedChatModel(name={self.name!r})"

    def script(self, *replies: ScriptEntry) -> None:
        """Answer the next requests with ``replies``, in order, then with the default again."""
        self._script.extend(replies)

    async def _reply(self, request: ChatRequest) -> ScriptedReply:
        entry = self._script.popleft() if self._script else self.default
        if callable(entry) and not isinstance(entry, GatewayError | ScriptedReply | str):
            out = entry(request)
            entry = await out if inspect.isawaitable(out) else out
        if isinstance(entry, GatewayError):
            raise entry
        if isinstance(entry, str):
            return ScriptedReply(entry)
        if not isinstance(entry, ScriptedReply):
            raise TypeError(f"a script entry gave {type(entry).__name__}; return str, ScriptedReply or a GatewayError")
        return entry

    def _with_ids(self, calls: tuple[ToolCall, ...]) -> tuple[ToolCall, ...]:
        out = []
        for call in calls:
            if not call.id:
                self._call_ids += 1
                call = replace(call, id=f"call_{self._call_ids}")
            out.append(call)
        return tuple(out)

    async def stream(self, request: ChatRequest) -> AsyncIterator[Delta]:
        self.requests.append(request)
        self.open_streams += 1
        try:
            reply = await self._reply(request)
            if reply.delay_s:
                await asyncio.sleep(reply.delay_s)
            words = _WORDS.findall(reply.text)
            calls = self._with_ids(reply.tool_calls)
            finish = reply.finish_reason or ("tool_calls" if calls else "stop")
            if request.max_tokens is not None and len(words) > request.max_tokens:
                words, calls, finish = words[: request.max_tokens], (), "length"
            for word in words:
                await asyncio.sleep(0)  # a real backend waits between tokens: let others run
                yield Delta(word)
            if calls and not reply.calls_on_last:
                await asyncio.sleep(0)
                yield Delta("", tool_calls=calls)
            completion = len(words) + sum(estimate_tokens(c.name + c.arguments) for c in calls)
            usage = Usage(prompt_tokens_estimate(request.messages), completion) if self.usage else None
            yield Delta("", finish, usage, calls if reply.calls_on_last else ())
        finally:
            self.open_streams -= 1
