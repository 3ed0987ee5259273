"""Pure decoding of OpenAI-style server-sent events: lines in, deltas out, no I/O.

    data: {"choices":[{"delta":{"content":"Hel"}}]}     -> Delta("Hel")
    data: {"choices":[{"delta":{},"finish_reason":"stop"}],"usage":{...}}
                                                         -> Delta("", "stop", Usage(...))
    data: {"choices":[{"delta":{"tool_calls":[...]}}]}  -> ToolChunk(Delta(""), fragments)
    data: [DONE]                                         -> end of stream

Anything else that claims to be data but is not a chunk raises BadBackendResponse.
"""

from __future__ import annotations

import json
from typing import Any

from strongroom.errors import (
    BackendError,
    BackendRejected,
    BackendUnavailable,
    BadBackendResponse,
    RateLimited,
)
from strongroom.llm.tool_calls import ToolChunk, parse_pieces
from strongroom.llm.types import Delta, Usage

__all__ = ["DONE", "SSEDecoder", "error_from_body", "parse_chunk", "parse_event", "parse_usage"]

DONE = "[DONE]"


class SSEDecoder:
    """Assemble SSE events from lines (without their line endings), per the WHATWG rules
    that matter here: ``data:`` lines of one event are joined by newlines, an empty line
    ends the event, comments (``:``) and other fields (``event``, ``id``, ``retry``) are ignored.

        >>> d = SSEDecoder()
        >>> [d.feed(line) for line in ['data: {"a":1}', '']]
        [None, '{"a":1}']
    """

    __slots__ = ("_data", "_tail")

    def __init__(self) -> None:
        self._data: list[str] = []
        self._tail = b""

    def feed_bytes(self, chunk: bytes) -> list[str]:
        """Take raw bytes as they arrive (any split); return the data of each event they
        complete. Raises UnicodeDecodeError on bytes that are not UTF-8."""
        if b"\n" not in chunk:
            self._tail += chunk
            return []
        *lines, self._tail = (self._tail + chunk if self._tail else chunk).split(b"\n")
        out: list[str] = []
        data = self._data
        for raw in lines:  # the same rules as feed(), inlined: this runs for every token
            if not raw or raw == b"\r":
                if data:
                    out.append(data[0] if len(data) == 1 else "\n".join(data))
                    data.clear()
            elif raw.startswith(b"data:"):
                value = raw[5:].decode()
                if value.endswith("\r"):
                    value = value[:-1]
                data.append(value[1:] if value.startswith(" ") else value)
        return out

    def feed(self, line: str) -> str | None:
        """Take one line; return an event's data when ``line`` completes one."""
        if not line:
            if not self._data:
                return None
            data = "\n".join(self._data)
            self._data.clear()
            return data
        if line.startswith("data:"):
            value = line[5:]
            self._data.append(value[1:] if value.startswith(" ") else value)
        return None

    def flush(self) -> str | None:
        """The data of an event the stream ended without a blank line after, if any."""
        if self._tail:
            tail, self._tail = self._tail, b""
            self.feed(tail.decode().removesuffix("\r"))
        return self.feed("")


def _excerpt(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def parse_usage(obj: Any) -> Usage | None:
    """A :class:`Usage` from an OpenAI ``usage`` object, or None when absent or unusable."""
    if not isinstance(obj, dict):
        return None
    prompt, completion = obj.get("prompt_tokens"), obj.get("completion_tokens")
    if isinstance(prompt, int) and isinstance(completion, int):
        return Usage(prompt, completion)
    return None


def error_from_body(
    status: int, message: str, *, who: str = "backend", retry_after: float | None = None
) -> BackendError:
    """Map an HTTP status (or an in-stream error code) to the gateway's error tree."""
    if status == 429:
        return RateLimited(
            f"{who}: rate limited (429): {message}; the gateway backs off, retries, then fails over; "
            "raise the backend's limits or add a deployment",
            retry_after=retry_after,
        )
    if 400 <= status < 500:
        return BackendRejected(
            f"{who}: request rejected ({status}): {message}; check the deployment's URL, "
            "API key and model id, and the request's parameters"
        )
    return BackendUnavailable(
        f"{who}: server error ({status}): {message}; the gateway retries and fails over; check the backend's logs"
    )


def _error_message(err: Any) -> str:
    if isinstance(err, dict):
        return str(err.get("message") or err.get("type") or err)
    return str(err)


def parse_chunk(data: str) -> Delta | None:
    """Decode one ``data:`` payload (not ``[DONE]``) into a Delta, or None for a chunk
    that carries nothing (the first, role-only chunk). Raises BadBackendResponse on garbage
    and the mapped BackendError when the backend streams an error object. Tool-call
    fragments are left out: :func:`parse_event` returns them."""
    got = parse_event(data)
    if isinstance(got, str):
        return Delta(got)
    return got.delta if isinstance(got, ToolChunk) else got


def parse_event(data: str) -> str | Delta | ToolChunk | None:
    """:func:`parse_chunk` for the hot loop: the common chunk (a piece of text and nothing
    else) comes back as its text, without a Delta made for it; a chunk with tool-call
    fragments as a :class:`~strongroom.llm.tool_calls.ToolChunk`."""
    try:
        obj = json.loads(data)
    except ValueError as exc:
        raise BadBackendResponse(
            f"malformed SSE from backend: data is not JSON ({_excerpt(data)!r}); "
            "check that the deployment URL points at an OpenAI-compatible /v1 endpoint"
        ) from exc
    try:  # the common chunk, a piece of text and nothing else, without the full checks
        choice = obj["choices"][0]
        delta = choice["delta"]
        content = delta["content"]
        if (
            type(content) is str
            and choice.get("finish_reason") is None
            and obj.get("usage") is None
            and "tool_calls" not in delta
        ):
            return content or None
    except (KeyError, IndexError, TypeError, AttributeError):
        pass
    return _parse_object(obj, data)


def _parse_object(obj: Any, data: str) -> Delta | ToolChunk | None:
    if not isinstance(obj, dict):
        raise BadBackendResponse(f"malformed SSE from backend: expected a JSON object, got {_excerpt(data)!r}")
    if "error" in obj or obj.get("object") == "error":
        err = obj.get("error", obj)
        code = err.get("code") if isinstance(err, dict) else None
        status = code if isinstance(code, int) and 400 <= code < 600 else 500
        raise error_from_body(status, f"error in stream: {_excerpt(_error_message(err))}")
    choices = obj.get("choices")
    usage = parse_usage(obj.get("usage"))
    if not isinstance(choices, list):
        raise BadBackendResponse(
            f"malformed chunk from backend: no 'choices' list ({_excerpt(data)!r}); "
            "the server does not speak OpenAI's chat completions stream format"
        )
    if not choices:
        return Delta("", usage=usage) if usage is not None else None
    choice = choices[0]
    if not isinstance(choice, dict):
        raise BadBackendResponse(f"malformed chunk from backend: a choice is not an object ({_excerpt(data)!r})")
    delta = choice.get("delta")
    content = delta.get("content") if isinstance(delta, dict) else None
    if content is not None and not isinstance(content, str):
        raise BadBackendResponse(f"malformed chunk from backend: content is not a string ({_excerpt(data)!r})")
    finish = choice.get("finish_reason")
    if finish is not None and not isinstance(finish, str):
        finish = str(finish)
    calls = delta.get("tool_calls") if isinstance(delta, dict) else None
    if calls:
        return ToolChunk(Delta(content or "", finish, usage), parse_pieces(calls))
    if not content and finish is None and usage is None:
        return None
    return Delta(content or "", finish, usage)
