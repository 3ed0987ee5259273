"""Pure decoding of OpenAI-style server-sent events: lines in, deltas out, no I/O.

    data: {"choices":[{"delta":{"content":"Hel"}}]}     -> Delta("Hel")
    data: {"choices":[{"delta":{},"finish_reason":"stop"}],"usage":{...}}
                                                         -> Delta("", "stop", Usage(...))
    data: [DONE]                                         -> end of stream

Anything else that claims to be data but is not a chunk raises BadBackendResponse.
"""

from __future__ import annotations

import json
from typing import Any

from strongroom.llm.errors import (
    BackendError,
    BackendRejected,
    BackendUnavailable,
    BadBackendResponse,
    RateLimited,
)
from strongroom.llm.types import Delta, Usage

__all__ = ["DONE", "SSEDecoder", "error_from_body", "parse_chunk", "parse_usage"]

DONE = "[DONE]"


class SSEDecoder:
    """Assemble SSE events from lines (without their line endings), per the WHATWG rules
    that matter here: ``data:`` lines of one event are joined by newlines, an empty line
    ends the event, comments (``:``) and other fields (``event``, ``id``, ``retry``) are ignored.

        >>> d = SSEDecoder()
        >>> [d.feed(line) for line in ['data: {"a":1}', '']]
        [None, '{"a":1}']
    """

    __slots__ = ("_data",)

    def __init__(self) -> None:
        self._data: list[str] = []

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


def error_from_body(status: int, message: str, *, retry_after: float | None = None) -> BackendError:
    """Map an HTTP status (or an in-stream error code) to the gateway's error tree."""
    if status == 429:
        return RateLimited(
            f"backend is rate limiting (429): {message}; the gateway retries after a backoff "
            "and then fails over; raise the backend's limits or add a deployment",
            retry_after=retry_after,
        )
    if 400 <= status < 500:
        return BackendRejected(
            f"backend rejected the request ({status}): {message}; check the deployment's URL, "
            "API key and model id, and the request's parameters"
        )
    return BackendUnavailable(
        f"backend failed ({status}): {message}; the gateway retries and fails over; "
        "check the backend's logs"
    )


def _error_message(err: Any) -> str:
    if isinstance(err, dict):
        return str(err.get("message") or err.get("type") or err)
    return str(err)


def parse_chunk(data: str) -> Delta | None:
    """Decode one ``data:`` payload (not ``[DONE]``) into a Delta, or None for a chunk
    that carries nothing (the first, role-only chunk). Raises BadBackendResponse on garbage
    and the mapped BackendError when the backend streams an error object."""
    try:
        obj = json.loads(data)
    except ValueError as exc:
        raise BadBackendResponse(
            f"malformed SSE from backend: data is not JSON ({_excerpt(data)!r}); "
            "check that the deployment URL points at an OpenAI-compatible /v1 endpoint"
        ) from exc
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
    if not content and finish is None and usage is None:
        return None
    return Delta(content or "", finish, usage)
