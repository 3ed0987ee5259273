"""Tool calls on OpenAI's wire, both ways, as pure functions: no I/O, nothing parsed that
the model wrote (the arguments stay the JSON text the model produced, malformed or not).

A streamed tool call arrives in fragments, each naming the call's ``index``; the first
usually brings the ``id`` and the function's ``name``, the rest pieces of ``arguments``::

    {"index": 0, "id": "call_a", "type": "function", "function": {"name": "sql", "arguments": ""}}
    {"index": 0, "function": {"arguments": "{\\"query\\": \\"sel"}}
    {"index": 0, "function": {"arguments": "ect 1\\"}"}}

:class:`ToolCallAssembler` joins them into whole :class:`~strongroom.llm.types.ToolCall`
values; :func:`message_to_wire`, :func:`tools_to_wire` and :func:`tool_choice_to_wire`
write the request side.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from strongroom.errors import BadBackendResponse
from strongroom.llm.types import ChatMessage, Delta, ToolCall, ToolSpec

__all__ = [
    "TOOL_CHOICES",
    "ToolCallAssembler",
    "ToolCallPiece",
    "ToolChunk",
    "call_to_wire",
    "message_to_wire",
    "parse_pieces",
    "tool_choice_to_wire",
    "tools_to_wire",
]

#: the tool_choice words OpenAI knows; any other value names the one tool the model must call
TOOL_CHOICES = frozenset({"auto", "none", "required"})


@dataclass(frozen=True, slots=True)
class ToolCallPiece:
    """One fragment of a streamed tool call (an entry of OpenAI's ``delta.tool_calls``)."""

    index: int | None
    id: str | None
    name: str | None
    arguments: str


@dataclass(frozen=True, slots=True)
class ToolChunk:
    """A streamed chunk that carried tool-call fragments, and what else it carried."""

    delta: Delta
    pieces: tuple[ToolCallPiece, ...]


def _malformed(what: str) -> BadBackendResponse:
    # never quote the chunk: tool arguments can hold document text
    return BadBackendResponse(
        f"malformed tool call from backend: {what}; the server does not stream OpenAI's tool_calls format"
    )


def parse_pieces(raw: object) -> tuple[ToolCallPiece, ...]:
    """The fragments of a chunk's ``delta.tool_calls`` list. Arguments sent as a JSON object
    (some servers do) become its JSON text; anything else malformed is BadBackendResponse."""
    if not isinstance(raw, list):
        raise _malformed("tool_calls is not a list")
    out = []
    for item in raw:
        if not isinstance(item, dict):
            raise _malformed("a tool call fragment is not an object")
        index, call_id, fn = item.get("index"), item.get("id"), item.get("function")
        if index is not None and (type(index) is not int or index < 0):
            raise _malformed("a tool call's index is not a non-negative integer")
        if call_id is not None and not isinstance(call_id, str):
            raise _malformed("a tool call's id is not a string")
        if fn is None:
            fn = {}
        if not isinstance(fn, dict):
            raise _malformed("a tool call's function is not an object")
        name, arguments = fn.get("name"), fn.get("arguments")
        if name is not None and not isinstance(name, str):
            raise _malformed("a tool call's function name is not a string")
        if isinstance(arguments, dict | list):
            arguments = json.dumps(arguments, separators=(",", ":"))
        elif arguments is None:
            arguments = ""
        elif not isinstance(arguments, str):
            raise _malformed("a tool call's arguments are neither text nor a JSON object")
        out.append(ToolCallPiece(index, call_id or None, name or None, arguments))
    return tuple(out)


class ToolCallAssembler:
    """Join streamed fragments into whole calls, in the order of their indices.

        >>> a = ToolCallAssembler()
        >>> a.feed((ToolCallPiece(0, "call_a", "sql", '{"q": "se'), ToolCallPiece(0, None, None, 'lect"}')))
        >>> a.calls()
        (ToolCall(id='call_a', name='sql', arguments='{"q": "select"}'),)

    A fragment without an index (some servers leave it out) continues the latest call
    unless it brings a new id. The first id and name of a call are kept (servers that
    repeat them in every fragment are read right). A call the server gave no id gets a
    random ``call_…`` one, so tool results can still be matched to it.
    """

    __slots__ = ("_calls", "_last")

    def __init__(self) -> None:
        self._calls: dict[int, tuple[str | None, str | None, list[str]]] = {}
        self._last: int | None = None

    @property
    def pending(self) -> bool:
        """Whether any fragment has arrived."""
        return bool(self._calls)

    def feed(self, pieces: tuple[ToolCallPiece, ...]) -> None:
        for piece in pieces:
            index = piece.index
            if index is None:
                last = self._last
                same = last is not None and (piece.id is None or piece.id == self._calls[last][0])
                index = last if same and last is not None else max(self._calls, default=-1) + 1
            call = self._calls.get(index)
            if call is None:
                self._calls[index] = (piece.id, piece.name, [piece.arguments])
            else:
                call_id, name, parts = call
                if call_id is None or name is None:
                    self._calls[index] = (call_id or piece.id, name or piece.name, parts)
                parts.append(piece.arguments)
            self._last = index

    def calls(self) -> tuple[ToolCall, ...]:
        """The whole calls; BadBackendResponse if one never got a function name."""
        out = []
        for index in sorted(self._calls):
            call_id, name, parts = self._calls[index]
            if not name:
                raise _malformed(f"tool call {index} has no function name")
            out.append(ToolCall(call_id or f"call_{uuid.uuid4().hex[:24]}", name, "".join(parts)))
        return tuple(out)


def call_to_wire(call: ToolCall) -> dict[str, Any]:
    """A tool call as OpenAI writes it in a message."""
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}


def message_to_wire(message: ChatMessage) -> dict[str, Any]:
    """A message as OpenAI reads it: an assistant's ``tool_calls`` (its content null when it
    only called tools), a tool result's ``tool_call_id``."""
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        out["tool_calls"] = [call_to_wire(c) for c in message.tool_calls]
        if not message.content:
            out["content"] = None
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    return out


def tools_to_wire(tools: tuple[ToolSpec, ...]) -> list[dict[str, Any]]:
    """The ``tools`` field of a request."""
    return [
        {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
        for t in tools
    ]


def tool_choice_to_wire(choice: str) -> str | dict[str, Any]:
    """``auto``, ``none`` and ``required`` as they are; any other value names the tool to call."""
    if choice in TOOL_CHOICES:
        return choice
    return {"type": "function", "function": {"name": choice}}
