"""What every workspace page shares: the templates, the signed-in check, and the two refusal
pages. A page the caller may not open is the same "not found" page as one that does not
exist (a document, a shared link, a mistyped address); a page that needs a role the caller
lacks is a 403 refusal, recorded by the application layer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from strongroom.api.service import Service
from strongroom.api.web.sessions import Session
from strongroom.api.web.state import current_session
from strongroom.errors import PermissionDenied

__all__ = [
    "NO_STORE",
    "not_found_page",
    "page",
    "refused",
    "require_role",
    "service",
    "signed_in",
    "templates",
    "unknown",
]

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
NO_STORE = {"Cache-Control": "no-store"}


def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    """Template ``name`` rendered with ``context``; never cached (pages hold entitled content)."""
    return templates.TemplateResponse(request, name, context, status_code=status, headers=NO_STORE)


def service(request: Request) -> Service:
    svc: Service = request.app.state.service
    return svc


async def signed_in(request: Request) -> Session | Response:
    """The request's session, or a redirect to sign-in that comes back here."""
    session = await current_session(request)
    if session is None:
        return RedirectResponse(f"/ui/signin?next={request.url.path}", 303, headers=NO_STORE)
    return session


def unknown(request: Request, session: Session | None) -> HTMLResponse:
    """The one "not found" page: for what does not exist and for what the caller may not read."""
    caller = session.caller if session else None
    return page(request, "not_found.html", 404, session=session, caller=caller, csrf=session.csrf if session else "")


def refused(request: Request, session: Session, reason: str) -> HTMLResponse:
    return page(request, "refused.html", 403, session=session, caller=session.caller, csrf=session.csrf, reason=reason)


async def require_role(request: Request, session: Session, role: str, action: str) -> HTMLResponse | None:
    """None when the caller holds ``role``; else the refusal page (the application layer audits it)."""
    try:
        await service(request).platform.require(session.caller.principal, role, action)
    except PermissionDenied as exc:
        return refused(request, session, str(exc))
    return None


async def not_found_page(request: Request) -> Response:
    """Any other address under ``/ui``."""
    return unknown(request, await current_session(request))
