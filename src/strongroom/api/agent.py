"""Research-agent runs under ``/v1/agent/runs``: create, list, read, follow (SSE), cancel, resume.

Each route hands the caller's principal to the application layer
(:class:`~strongroom.service.agent_host.AgentHost` over :mod:`strongroom.service.agent_runs`),
which decides and audits: another principal's run is a 404 exactly as one that does not
exist; an admin may cancel any run, and still not read it. A run executes in the service,
after the ``202``; follow it with ``GET .../events`` (Server-Sent Events: each event's
``id`` is its seq, so a reconnecting client sends ``Last-Event-ID`` and misses nothing) or
poll ``GET .../{id}``. Responses hold the question, document text and rows the caller is
entitled to, so no shared cache may keep them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from strongroom.agent.base import AgentLimits
from strongroom.api.deps import Who
from strongroom.service.agent_host import AgentHost
from strongroom.service.agent_run_store import AgentRun
from strongroom.service.agent_run_views import run_view
from strongroom.service.agent_runs import CAPS, MAX_QUESTION_CHARS, AgentRunRequest

__all__ = ["RunIn", "router"]

router = APIRouter(prefix="/v1/agent", tags=["agent"])
_PRIVATE = {"Cache-Control": "private, no-store"}
Id = Annotated[str, Path(min_length=1, max_length=100)]
_DEFAULTS = AgentLimits()
#: the largest seq a client may name (a store's integers end at 2**63 - 1)
_MAX_SEQ = 2**62


def agents(request: Request) -> AgentHost:
    host: AgentHost = request.app.state.agents
    return host


class RunIn(BaseModel):
    """A question for the research agent, the model route that drives it, the clocks its tools
    read at (a date is the end of that day, UTC; default now; never later than now) and
    optional limits."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    route: str = Field(min_length=1, max_length=64, description="A model route you may use (GET /v1/models).")
    as_of: str | None = Field(default=None, max_length=64)
    known_at: str | None = Field(default=None, max_length=64)
    max_steps: int | None = Field(default=None, ge=1, le=CAPS.max_steps, description=f"Default {_DEFAULTS.max_steps}.")
    max_tool_calls: int | None = Field(
        default=None, ge=0, le=CAPS.max_tool_calls, description=f"Default {_DEFAULTS.max_tool_calls}."
    )
    timeout_s: float | None = Field(
        default=None, ge=1, le=CAPS.timeout_s, description=f"Default {_DEFAULTS.timeout_s:g}."
    )
    max_tokens: int | None = Field(
        default=None, ge=500, le=CAPS.max_tokens, description=f"Default {_DEFAULTS.max_tokens}."
    )

    def request(self) -> AgentRunRequest:
        return AgentRunRequest(
            question=self.question,
            route=self.route,
            as_of=self.as_of,
            known_at=self.known_at,
            max_steps=self.max_steps,
            max_tool_calls=self.max_tool_calls,
            timeout_s=self.timeout_s,
            max_tokens=self.max_tokens,
        )


class RunOut(BaseModel):
    """A run: ``status`` is queued, running, answered, limit, cancelled, error or interrupted
    (resume it); ``result`` once it ended: ``answer`` with ``[n]`` citations, ``evidence``
    numbered from 1 (page spans, queries with their dataset versions, calculations),
    ``cited``, ``unsupported`` numbers, steps and tokens."""

    run_id: str
    status: str
    question: str
    route: str
    as_of: str
    known_at: str
    limits: dict[str, float]
    created_at: str
    updated_at: str
    reason: str
    cancel_requested: bool
    result: dict[str, Any] | None

    @classmethod
    def of(cls, run: AgentRun) -> RunOut:
        return cls.model_validate(run_view(run))


class RunList(BaseModel):
    runs: list[RunOut]


@router.post("/runs", response_model=RunOut, status_code=202)
async def create_run(body: RunIn, request: Request, response: Response, principal: Who) -> RunOut:
    """Start a run (role reader, a route you may use); it executes after the reply, queued
    while the service runs as many as it may at once."""
    run = await agents(request).create(principal, body.request())
    response.headers.update(_PRIVATE)
    response.headers["Location"] = f"/v1/agent/runs/{run.id}"
    return RunOut.of(run)


@router.get("/runs", response_model=RunList)
async def list_runs(
    request: Request, response: Response, principal: Who, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> RunList:
    """The caller's runs, newest first."""
    found = await agents(request).mine(principal, limit)
    response.headers.update(_PRIVATE)
    return RunList(runs=[RunOut.of(r) for r in found])


@router.get("/runs/{run_id}", response_model=RunOut)
async def get_run(run_id: Id, request: Request, response: Response, principal: Who) -> RunOut:
    """One of the caller's runs (404 for anyone else's)."""
    run = await agents(request).get(principal, run_id)
    response.headers.update(_PRIVATE)
    return RunOut.of(run)


@router.post("/runs/{run_id}/cancel", response_model=RunOut, status_code=202)
async def cancel_run(run_id: Id, request: Request, response: Response, principal: Who) -> RunOut:
    """Cancel a run (its owner, or an admin): queued or interrupted, it ends now; running, at
    its next step (``cancel_requested`` until then). 422 for a run that has ended."""
    run = await agents(request).cancel(principal, run_id)
    response.headers.update(_PRIVATE)
    return RunOut.of(run) if run.owner == principal.name else RunOut.of(_withheld(run))


@router.post("/runs/{run_id}/resume", response_model=RunOut, status_code=202)
async def resume_run(run_id: Id, request: Request, response: Response, principal: Who) -> RunOut:
    """Continue an interrupted run of the caller's from its checkpoint (completed tool calls
    are not made again), under the caller's entitlements as they are now."""
    run = await agents(request).resume(principal, run_id)
    response.headers.update(_PRIVATE)
    return RunOut.of(run)


def _withheld(run: AgentRun) -> AgentRun:
    """What an admin who cancels someone else's run is shown: not its question or answer."""
    return replace(run, question="", result=None)


def _sse(event_id: int | None, kind: str, data: object) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, default=str, separators=(',', ':'))}\n\n"


@router.get(
    "/runs/{run_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"}},
)
async def run_events(
    run_id: Id,
    request: Request,
    principal: Who,
    after: Annotated[int | None, Query(ge=0, le=_MAX_SEQ, description="Replay events after this seq.")] = None,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
) -> StreamingResponse:
    """The run's events as Server-Sent Events: those after ``Last-Event-ID`` (or ``?after=``,
    default all) replayed, then each as it happens until the run ends. Each event has ``id``
    (its seq), ``event`` (started, model, tool, check, resumed, answer, limit, cancelled,
    error) and ``data`` (JSON); the stream ends with ``event: end`` (``{"status": ...}``).
    A comment line (``: heartbeat``) is sent while nothing happens."""
    start = after if after is not None else 0
    if last_event_id is not None and last_event_id.strip().isascii() and last_event_id.strip().isdigit():
        start = max(start, min(int(last_event_id.strip()), _MAX_SEQ))  # past the store's integers: none
    follow = await agents(request).follow(principal, run_id, start)

    async def stream() -> AsyncIterator[str]:
        async with aclosing(follow) as items:  # a client that leaves stops the follow at once
            async for item in items:
                if item.event is not None:
                    yield _sse(item.event.seq, item.event.kind, dict(item.event.data))
                elif item.ended:
                    yield _sse(None, "end", {"status": item.ended})
                else:
                    yield ": heartbeat\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream", headers={**_PRIVATE, "X-Accel-Buffering": "no"})
