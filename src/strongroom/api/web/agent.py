"""The research agent's page: start a run, follow its steps as they happen, read its answer
with numbered citations, cancel or resume it; the user's runs.

The page reads the user's runs through the application layer (``app.state.agents``, the
service's :class:`~strongroom.service.agent_host.AgentHost`), as the user; its script then
starts, follows (Server-Sent Events), cancels and resumes runs through the JSON API
(``/v1/agent/runs``) with the session's CSRF token. Another user's run is the "not found"
page, exactly as a run that does not exist; the model's text, tool arguments and results are
only ever set as text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from strongroom.api.web.render import page, refused, signed_in, unknown
from strongroom.api.web.sessions import Session
from strongroom.errors import NotFound, PermissionDenied
from strongroom.service.agent_host import AgentHost
from strongroom.service.agent_run_store import AgentRun

__all__ = ["MAX_LISTED", "RunRow", "router"]

router = APIRouter(include_in_schema=False)
#: how many of the user's newest runs the page lists
MAX_LISTED = 50


@dataclass(frozen=True)
class RunRow:
    """One of the user's runs as the list shows it."""

    id: str
    question: str
    status: str
    route: str
    created_at: str

    @classmethod
    def of(cls, run: AgentRun) -> RunRow:
        created = run.created_at.strftime("%Y-%m-%d %H:%M")
        return cls(run.id, run.question, run.status, run.route, created)


def _agents(request: Request) -> AgentHost:
    host: AgentHost = request.app.state.agents
    return host


async def _page(request: Request, session: Session, run_id: str = "") -> Response:
    try:
        runs = await _agents(request).mine(session.caller.principal, MAX_LISTED)
    except PermissionDenied as exc:  # no reader role: recorded by the application layer
        return refused(request, session, str(exc))
    rows = [RunRow.of(r) for r in runs]
    context: dict[str, Any] = {"session": session, "caller": session.caller, "csrf": session.csrf}
    return page(request, "agent.html", **context, runs=rows, run_id=run_id)


@router.get("/ui/agent", name="ui_agent")
async def agent_page(request: Request) -> Response:
    """Ask the research agent: a question, a model route the user may use, the two clocks."""
    session = await signed_in(request)
    if not isinstance(session, Session):
        return session
    return await _page(request, session)


@router.get("/ui/agent/runs/{run_id}", name="ui_agent_run")
async def run_page(request: Request, run_id: str) -> Response:
    """One of the user's runs, its steps replayed and then followed live; the "not found"
    page for anyone else's run, as for one that does not exist."""
    session = await signed_in(request)
    if not isinstance(session, Session):
        return session
    if len(run_id) > 100:
        return unknown(request, session)
    try:
        await _agents(request).get(session.caller.principal, run_id)
    except NotFound:
        return unknown(request, session)
    except PermissionDenied as exc:
        return refused(request, session, str(exc))
    return await _page(request, session, run_id)
