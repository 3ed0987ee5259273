"""The administration pages (admins only): ingestion jobs and dead letters, the audit log
(its verification, filters, an export), API keys, model routes and deployments.

Every page first asks the application layer whether the user holds the admin role: anyone
else gets the refusal page (403), and the refusal is recorded. The pages read through the
application layer; the script verifies the log, creates and revokes keys through the JSON API.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from strongroom.api.web.render import NO_STORE, page, require_role, service, signed_in
from strongroom.api.web.sessions import Session
from strongroom.api.web.workspace import job_row

__all__ = ["AUDIT_WINDOW", "router"]

router = APIRouter(include_in_schema=False)
#: how many of the newest audit records the page filters (the export has them all)
AUDIT_WINDOW = 5000
Text = Annotated[str, Query(max_length=200)]


async def _admin(request: Request, what: str) -> Session | Response:
    session = await signed_in(request)
    if not isinstance(session, Session):
        return session
    if no := await require_role(request, session, "admin", f"ui.admin.{what}"):
        return no
    return session


def _context(session: Session, section: str, **more: Any) -> dict[str, Any]:
    return {"session": session, "caller": session.caller, "csrf": session.csrf, "section": section, **more}


@router.get("/ui/admin", name="ui_admin")
async def admin_home(request: Request) -> Response:
    session = await _admin(request, "home")
    if not isinstance(session, Session):
        return session
    return RedirectResponse("/ui/admin/audit", 303, headers=NO_STORE)


@router.get("/ui/admin/jobs", name="ui_admin_jobs")
async def jobs_page(request: Request) -> Response:
    """Everyone's recent upload jobs and the jobs the bus gave up on."""
    session = await _admin(request, "jobs")
    if not isinstance(session, Session):
        return session
    svc, principal = service(request), session.caller.principal
    jobs = await svc.platform.jobs(principal, 100)
    letters = await svc.platform.dead_letters(principal, svc.config.bus_url, svc.config.bus_stream)
    context = _context(session, "jobs", jobs=[job_row(j) for j in jobs], letters=letters, bus=bool(svc.config.bus_url))
    return page(request, "admin_jobs.html", **context)


@router.get("/ui/admin/audit", name="ui_admin_audit")
async def audit_page(
    request: Request,
    action: Text = "",
    principal: Text = "",
    outcome: Text = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> Response:
    """The newest audit records, filtered by action (a prefix), principal and outcome; the
    chain's verification (a button) and the whole log as JSON lines (a download)."""
    session = await _admin(request, "audit")
    if not isinstance(session, Session):
        return session
    svc = service(request)
    head = (await asyncio.to_thread(svc.audit.head)).seq  # a number only: which page to read
    records = await svc.platform.audit_records(session.caller.principal, max(0, head - AUDIT_WINDOW), AUDIT_WINDOW)
    rows: list[dict[str, object]] = []
    async for record in records:
        fields = record.as_dict()
        if fields.get("erased"):  # its free text was erased (issue 20): say so where it was
            fields.update(target="[erased]", query="", detail="[erased]")
        if action and not str(fields.get("action", "")).startswith(action):
            continue
        if principal and fields.get("principal") != principal:
            continue
        if outcome and fields.get("outcome") != outcome:
            continue
        filters = fields.get("filters")
        fields["filters_text"] = json.dumps(filters, sort_keys=True, default=str) if filters else ""
        rows.append(fields)
    rows = rows[::-1][:limit]
    filters = {"action": action, "principal": principal, "outcome": outcome, "limit": limit}
    return page(request, "admin_audit.html", **_context(session, "audit", records=rows, filters=filters, head=head))


@router.get("/ui/admin/keys", name="ui_admin_keys")
async def keys_page(request: Request) -> Response:
    """API keys (never their secrets): create one (its secret shown once), revoke one."""
    session = await _admin(request, "keys")
    if not isinstance(session, Session):
        return session
    keys = await service(request).platform.list_keys(session.caller.principal)
    keys.sort(key=lambda k: k.created_at, reverse=True)
    now = datetime.now(UTC)
    rows = [(k, k.status(now)) for k in keys]
    return page(request, "admin_keys.html", **_context(session, "keys", keys=rows))


@router.get("/ui/admin/models", name="ui_admin_models")
async def models_page(request: Request) -> Response:
    """Model routes (the active version and its weighted targets) and deployments, read-only."""
    session = await _admin(request, "models")
    if not isinstance(session, Session):
        return session
    config = await service(request).platform.models_config(session.caller.principal)
    deployments = {n: s.model_dump(mode="json", exclude_defaults=True) for n, s in config.deployments.items()}
    context = _context(session, "models", routes=config.routes, deployments=deployments)
    return page(request, "admin_models.html", **context)
