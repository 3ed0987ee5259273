"""OpenAI-compatible ``/v1/chat/completions`` and ``/v1/models``, where a model is a RAG
pipeline over the store: existing OpenAI clients and SDKs work unchanged.

``model`` is ``strongroom-rag`` (retrieval + the extractive generator, no weights) or a
model-gateway route the caller is granted (``GET /v1/models`` lists exactly those). The
last user message is the question; the answer is written from what the caller may read,
through the same ask operation as ``/v1/ask``. Each claim is marked ``[n]`` and the sources
are listed after the text; the response also carries ``citations`` (an extra field SDKs
keep). Streaming sends the same content as Server-Sent Events, citations in the last chunk.

A request with ``tools`` (or with assistant ``tool_calls`` and ``tool`` results among its
messages) is a bank's own agent talking to a model: the conversation goes as it is, through
the gateway, to the route ``model`` names (one the caller is granted), nothing is retrieved,
and the answer may be tool calls, in OpenAI's shape, streamed or not (see
:mod:`strongroom.llm.tool_calls` and :mod:`strongroom.service.model_calls`).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse

from strongroom.api.deps import Who, service
from strongroom.api.openai_tools import tool_completion, uses_tools
from strongroom.api.schemas import ChatRequest, CitationOut
from strongroom.service import AskRequest
from strongroom.types import Answer, Citation, frozen_meta

__all__ = ["render_answer", "router"]

router = APIRouter(prefix="/v1", tags=["openai"])


def render_answer(result: Answer) -> tuple[list[str], list[Citation]]:
    """The answer as text pieces (claims marked ``[n]``, then the sources) and its citations."""
    if not result.found:
        return [result.note], []
    citations = list(result.citations)
    number = {(c.version_id, c.page, c.char_start, c.char_end): i for i, c in enumerate(citations, start=1)}
    pieces = []
    for claim in result.claims:
        marks = "".join(f"[{number[(c.version_id, c.page, c.char_start, c.char_end)]}]" for c in claim.citations)
        pieces.append(f"{claim.text} {marks}\n")
    sources = [
        f"[{i}] {c.label}: {c.title} (version {c.version_id[:12]}, chars {c.char_start}-{c.char_end})"
        for i, c in enumerate(citations, start=1)
    ]
    pieces.append("\nSources:\n" + "\n".join(sources))
    return pieces, citations


def _question(body: ChatRequest) -> str:
    for message in reversed(body.messages):
        if message.role != "user":
            continue
        if isinstance(message.content, str):
            text = message.content
        else:
            text = " ".join(str(p.get("text", "")) for p in message.content or [] if p.get("type") == "text")
        if text.strip():
            return text.strip()[:4000]
    raise HTTPException(400, "no user message with text: send messages=[{'role': 'user', 'content': '...'}]")


@router.get("/models")
async def list_models(request: Request, principal: Who) -> dict[str, object]:
    """The ways the caller may have answers written, as OpenAI models: ``strongroom-rag``
    (extractive) and each model route it is granted."""
    models = await service(request).platform.models(principal)
    return {
        "object": "list",
        "data": [
            {"id": m.name, "object": "model", "created": 0, "owned_by": "strongroom", "description": m.description}
            for m in models
        ],
    }


@router.post("/chat/completions", response_model=None)
async def chat_completions(
    body: ChatRequest, request: Request, principal: Who
) -> dict[str, object] | StreamingResponse:
    """An answer to the last user message, as an OpenAI chat completion (``stream`` for SSE);
    with ``tools``, the model route's answer to the conversation, tool calls included."""
    if uses_tools(body):
        return await tool_completion(body, service(request).platform, principal)
    question = _question(body)
    svc = service(request)
    if body.k > svc.config.max_k:
        raise HTTPException(422, f"k is at most {svc.config.max_k}")
    ask = AskRequest(
        question=question,
        k=body.k,
        model=body.model,
        as_of=body.as_of,
        known_at=body.known_at,
        published_from=body.published_from,
        filters=frozen_meta(body.filters),
    )
    result = await svc.platform.ask(principal, ask, action="chat")
    pieces, citations = render_answer(result)
    cited = [CitationOut.of(c).model_dump() for c in citations]
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    prompt_tokens = len(question.split())
    completion_tokens = sum(len(p.split()) for p in pieces)
    fingerprint = result.metadata.get("deployment") or result.generator
    if not body.stream:
        return {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": body.model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "".join(pieces)}, "finish_reason": "stop"}
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
            "citations": cited,
            "system_fingerprint": fingerprint,
        }

    def chunk(delta: dict[str, str], finish: str | None = None, **extra: object) -> str:
        payload = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": body.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return f"data: {json.dumps(payload)}\n\n"

    async def events() -> AsyncIterator[str]:
        yield chunk({"role": "assistant", "content": ""})
        for piece in pieces:
            yield chunk({"content": piece})
        yield chunk({}, "stop", citations=cited)
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
