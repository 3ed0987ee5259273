"""The tool-calling side of ``POST /v1/chat/completions``: a bank's own agent sends its
conversation and tools, the route ``model`` names answers (text or tool calls), in OpenAI's
shape, streamed or not.

The body is checked here as OpenAI would check it (400 with what to change): known roles,
tool calls only on assistant messages, each ``tool`` message answering a call made before
it, unique tool names, a ``tool_choice`` naming an offered tool. Everything else — the role,
the route grant, budgets, the clearance the conversation needs, the audit record — is the
application layer's (:meth:`AsyncPlatform.chat <strongroom.service.async_platform.AsyncPlatform.chat>`).

Two extension fields declare a clearance the conversation carries besides strongroom's own
tool results (which declare theirs): ``strongroom_sensitivity`` (a level) and
``strongroom_mnpi`` (true): they can raise what the conversation needs, never lower it. A
conversation no deployment of the route is cleared for is refused with 403, saying why.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import HTTPException
from fastapi.responses import StreamingResponse

from strongroom.api.schemas import ChatRequest, ToolChoiceIn
from strongroom.errors import BudgetExceeded, GatewayError, NotCleared, PromptTooLarge, UnknownRoute
from strongroom.llm import types as llm
from strongroom.llm.protocol import aclose
from strongroom.llm.tool_calls import call_to_wire
from strongroom.service import EXTRACTIVE_MODEL
from strongroom.service.async_platform import AsyncPlatform
from strongroom.types import Principal

__all__ = ["model_request", "tool_completion", "uses_tools"]

_ROLES = frozenset({"system", "user", "assistant", "tool"})
_MAX_STOPS = 4


def uses_tools(body: ChatRequest) -> bool:
    """Whether ``body`` is a conversation with tools rather than a question for the store."""
    return bool(body.tools) or any(m.tool_calls or m.role == "tool" or m.tool_call_id for m in body.messages)


def _bad(message: str) -> HTTPException:
    return HTTPException(400, message)


def model_request(body: ChatRequest) -> llm.ChatRequest:
    """The body as the gateway's request; HTTPException 400 for a conversation OpenAI refuses too."""
    if body.model == EXTRACTIVE_MODEL:
        raise _bad(
            f"{EXTRACTIVE_MODEL} answers from the store and cannot call tools; "
            "name a model route you may use (GET /v1/models lists them)"
        )
    offered = [t.function for t in body.tools or ()]
    tools = tuple(llm.ToolSpec(f.name, f.description, f.parameters) for f in offered)
    names = {t.name for t in tools}
    if len(names) != len(tools):
        raise _bad("two tools have the same name; give each tool its own name")
    choice: str | None = None
    if isinstance(body.tool_choice, ToolChoiceIn):
        choice = body.tool_choice.function.name
        if choice not in names:
            raise _bad(f"tool_choice names {choice!r}, which is not among the tools offered")
    elif body.tool_choice is not None:
        choice = body.tool_choice
        if choice == "required" and not tools:
            raise _bad("tool_choice 'required' needs tools: offer at least one")
    messages: list[llm.ChatMessage] = []
    called: set[str] = set()
    for i, m in enumerate(body.messages):
        role = "system" if m.role == "developer" else m.role
        if role not in _ROLES:
            raise _bad(f"messages[{i}]: unknown role {m.role!r}; use system, user, assistant or tool")
        if m.tool_calls and role != "assistant":
            raise _bad(f"messages[{i}]: only an assistant message may carry tool_calls")
        if (role == "tool") != (m.tool_call_id is not None):
            raise _bad(f"messages[{i}]: a tool message, and only one, carries the tool_call_id it answers")
        if role == "tool" and m.tool_call_id not in called:
            raise _bad(
                f"messages[{i}]: tool_call_id {m.tool_call_id!r} answers no tool call made before it; "
                "send the assistant message with its tool_calls first"
            )
        calls = tuple(llm.ToolCall(c.id, c.function.name, c.function.arguments) for c in m.tool_calls or ())
        called.update(c.id for c in calls)
        messages.append(llm.ChatMessage(role, m.text(), calls, m.tool_call_id))
    stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    if len(stop) > _MAX_STOPS:
        raise _bad(f"at most {_MAX_STOPS} stop sequences")
    sensitivity, mnpi = _declared(body)
    return llm.ChatRequest(
        tuple(messages),
        body.model,
        max_tokens=body.max_completion_tokens or body.max_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        stop=stop,
        seed=body.seed,
        tools=tools,
        tool_choice=choice,
        sensitivity=sensitivity,
        mnpi=mnpi,
    )


def _declared(body: ChatRequest) -> tuple[str | None, bool]:
    """The clearance the caller declares (``strongroom_sensitivity``, ``strongroom_mnpi``)."""
    extra = body.model_extra or {}
    level, mnpi = extra.get("strongroom_sensitivity"), extra.get("strongroom_mnpi", False)
    if level is not None and level not in llm.SENSITIVITY_LEVELS:
        levels = ", ".join(llm.SENSITIVITY_LEVELS)
        raise _bad(f"strongroom_sensitivity {str(level)[:40]!r} is not a sensitivity level; use one of {levels}")
    if not isinstance(mnpi, bool):
        raise _bad("strongroom_mnpi is true or false")
    return level, mnpi


def _refused(exc: GatewayError) -> HTTPException:
    """The HTTP answer to a gateway error. A refusal the caller can act on says why; a
    backend's failure says only what kind it was (its message names internal deployments
    and URLs: it is in the audit record and the log, not in the response)."""
    if isinstance(exc, UnknownRoute):
        return HTTPException(404, str(exc))
    if isinstance(exc, PromptTooLarge):
        return HTTPException(400, str(exc))
    if isinstance(exc, NotCleared):  # the application layer's words: what forced it, no deployment names
        return HTTPException(403, str(exc))
    if isinstance(exc, BudgetExceeded):
        return HTTPException(429, str(exc), headers={"Retry-After": str(max(1, round(exc.retry_after)))})
    return HTTPException(503, _failed(exc))


def _failed(exc: GatewayError) -> str:
    return f"the model route could not answer ({type(exc).__name__}); retry the request, or ask an administrator"


async def tool_completion(
    body: ChatRequest, platform: AsyncPlatform, principal: Principal
) -> dict[str, object] | StreamingResponse:
    """Answer ``body`` through the gateway: a chat completion, or its SSE stream."""
    request = model_request(body)
    deltas = platform.chat(principal, request)
    try:
        first = await anext(deltas)  # refusals (route, role, budget) come before any byte is sent
    except StopAsyncIteration:
        first = llm.Delta("", "stop")
    except GatewayError as exc:
        await aclose(deltas)
        raise _refused(exc) from exc
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    if not body.stream:
        return await _whole(first, deltas, body.model, completion_id, created)
    include_usage = bool((body.stream_options or {}).get("include_usage"))
    events = _events(first, deltas, body.model, completion_id, created, include_usage)
    return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _usage(usage: llm.Usage | None) -> dict[str, int] | None:
    if usage is None:
        return None
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


async def _whole(
    first: llm.Delta, deltas: AsyncIterator[llm.Delta], model: str, completion_id: str, created: int
) -> dict[str, object]:
    text: list[str] = []
    calls: list[llm.ToolCall] = []
    finish, usage = "stop", None
    try:
        delta: llm.Delta | None = first
        while delta is not None:
            text.append(delta.text)
            calls.extend(delta.tool_calls)
            finish = delta.finish_reason or finish
            usage = delta.usage or usage
            delta = await anext(deltas, None)
    finally:
        await aclose(deltas)
    content = "".join(text)
    message: dict[str, object] = {"role": "assistant", "content": content or (None if calls else "")}
    if calls:
        message["tool_calls"] = [call_to_wire(c) for c in calls]
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": _usage(usage),
    }


async def _events(
    first: llm.Delta,
    deltas: AsyncIterator[llm.Delta],
    model: str,
    completion_id: str,
    created: int,
    include_usage: bool,
) -> AsyncIterator[str]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        payload = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                   "choices": [choice]}  # fmt: skip
        return f"data: {json.dumps(payload)}\n\n"

    index = 0  # of the next tool call, across the whole answer
    try:
        yield chunk({"role": "assistant", "content": ""})
        delta: llm.Delta | None = first
        while delta is not None:
            if delta.text:
                yield chunk({"content": delta.text})
            if delta.tool_calls:
                wire = [{"index": index + i, **call_to_wire(c)} for i, c in enumerate(delta.tool_calls)]
                index += len(wire)
                yield chunk({"tool_calls": wire})
            if delta.finish_reason is not None:
                yield chunk({}, delta.finish_reason)
                if include_usage:
                    payload = {"id": completion_id, "object": "chat.completion.chunk", "created": created,
                               "model": model, "choices": [], "usage": _usage(delta.usage)}  # fmt: skip
                    yield f"data: {json.dumps(payload)}\n\n"
            delta = await anext(deltas, None)
        yield "data: [DONE]\n\n"
    except GatewayError as exc:  # after the first byte: the stream carries the error, as OpenAI's does
        error = {"error": {"message": _failed(exc), "type": "server_error", "code": type(exc).__name__}}
        yield f"data: {json.dumps(error)}\n\n"
    finally:
        await aclose(deltas)
