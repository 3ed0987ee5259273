"""OpenAI-compatible ``/v1/chat/completions`` and ``/v1/models``, where a model is a RAG
pipeline over the store: existing OpenAI clients and SDKs work unchanged.

The last user message is the question; the answer is written by the pipeline from what
the caller may read. Each claim is marked ``[n]`` and the sources are listed after the
text; the response also carries ``citations`` (an extra field SDKs keep). Streaming
sends the same content as Server-Sent Events, citations in the last chunk.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import StreamingResponse

from strongroom.api.deps import audit, need
from strongroom.api.routes import run_answer
from strongroom.api.schemas import ChatRequest, CitationOut
from strongroom.audit import answer_hash
from strongroom.auth import Caller
from strongroom.rag import EXTRACTIVE_VERSION
from strongroom.types import Answer, Citation, Scope

__all__ = ["MODELS", "render_answer", "router"]

router = APIRouter(prefix="/v1", tags=["openai"])

#: model id -> what it is; each is a RAG pipeline over the store
MODELS: Mapping[str, str] = {"strongroom-rag": f"retrieval + {EXTRACTIVE_VERSION} generator, with citations"}
Reader = Annotated[Caller, Depends(need("reader", "chat"))]


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
async def list_models(request: Request, caller: Reader) -> dict[str, object]:
    """The RAG pipelines, as OpenAI models."""
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "strongroom", "description": what}
            for name, what in MODELS.items()
        ],
    }


@router.post("/chat/completions", response_model=None)
async def chat_completions(
    body: ChatRequest, request: Request, caller: Reader
) -> dict[str, object] | StreamingResponse:
    """An answer to the last user message, as an OpenAI chat completion (``stream`` for SSE)."""
    if body.model not in MODELS:
        raise HTTPException(404, f"model {body.model!r} does not exist; see GET /v1/models")
    question = _question(body)
    svc = request.app.state.service
    if body.k > svc.config.max_k:
        raise HTTPException(422, f"k is at most {svc.config.max_k}")
    as_of = body.as_of
    scope = Scope.for_principal(caller.principal, as_of=as_of, filters=body.filters)
    result = await run_answer(request, caller, question, scope, body.k)
    pieces, citations = render_answer(result)
    await audit(
        request,
        caller,
        "chat",
        query=question,
        filters={
            "model": body.model,
            "k": body.k,
            "as_of": as_of.isoformat() if as_of else None,
            "filters": body.filters,
            "stream": body.stream,
        },
        chunks=tuple((h.chunk.id, h.version.id) for h in result.hits),
        generator=result.generator,
        answer_sha256=answer_hash("".join(pieces)),
        detail="found" if result.found else "not found",
    )
    cited = [CitationOut.of(c).model_dump() for c in citations]
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    prompt_tokens = len(question.split())
    completion_tokens = sum(len(p.split()) for p in pieces)
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
            "system_fingerprint": result.generator,
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
