"""The four-eyes approvals page (:mod:`strongroom.service.approvals` in the browser): proposals
with their exact change, and the break-glass changes not yet reviewed, with approve, reject and
review buttons for approvers.

    GET  /ui/admin/approvals?status=proposed
    POST /ui/admin/approvals/{id}/approve | reject | review     (a form: csrf_token, reason)

The page is for approvers (every proposal) and for the admins who make changes (their own
proposals). The buttons are drawn only where a decision is possible (an approver, not the
maker, a proposal still open), but the page decides nothing: each POST checks the session's
CSRF token and then calls the application layer exactly as ``POST /v1/approvals/{id}/approve``
does, so a maker who forges the form is refused there (403) and the refusal is audited. A new
key's secret, when an approval creates one, is shown once on the answer page.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, cast, get_args

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from strongroom.api.web.render import page, refused, service, signed_in
from strongroom.api.web.sessions import Session
from strongroom.api.web.state import CSRF_FIELD
from strongroom.errors import NotFound, PermissionDenied, QueryError, StrongroomError
from strongroom.service.approvals import Approvals, person_of
from strongroom.service.operations import Outcome
from strongroom.service.proposal_store import Proposal, Status

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
Decision = Literal["approve", "reject", "review"]
_STATUSES: tuple[str, ...] = get_args(Status)


def _status_of(exc: StrongroomError) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, PermissionDenied):
        return 403
    if isinstance(exc, QueryError):
        return 400  # among them: decided or expired meanwhile
    return 409  # the change failed when applied


def _row(p: Proposal, me: str, approver: bool) -> dict[str, Any]:
    mine = p.maker == me
    return {
        **p.describe(),
        "mine": mine,
        "decidable": approver and not mine and p.status == "proposed",
        "reviewable": approver and p.break_glass and not p.reviewed_by and not mine,
    }


async def _render(
    request: Request,
    session: Session,
    *,
    status: str = "",
    code: int = 200,
    notice: str = "",
    error: str = "",
    result: dict[str, Any] | None = None,
) -> HTMLResponse:
    principal = session.caller.principal
    platform = service(request).platform
    wanted = cast(Status, status) if status in _STATUSES else None
    try:
        found = await platform.approving(lambda a: a.proposals(principal, status=wanted))
        unreviewed = (
            await platform.approving(lambda a: a.unreviewed(principal))
            if principal.roles & {"approver", "admin"}
            else []
        )
    except PermissionDenied as exc:
        return refused(request, session, str(exc))
    me, approver = person_of(principal), "approver" in principal.roles
    context = {
        "session": session,
        "caller": session.caller,
        "csrf": session.csrf,
        "section": "approvals",
        "proposals": [_row(p, me, approver) for p in found],
        "unreviewed": [_row(p, me, approver) for p in unreviewed],
        "shown_status": wanted or "",
        "statuses": _STATUSES,
        "approver": approver,
        "notice": notice,
        "error": error,
        "result": result,
    }
    return page(request, "admin_approvals.html", code, **context)


@router.get("/ui/admin/approvals", name="ui_admin_approvals")
async def approvals_page(request: Request, status: Annotated[str, Query(max_length=20)] = "") -> Response:
    """Proposals (every one for an approver, your own otherwise) and unreviewed break-glass changes."""
    session = await signed_in(request)
    if not isinstance(session, Session):
        return session
    return await _render(request, session, status=status)


@router.post("/ui/admin/approvals/{proposal_id}/{decision}", name="ui_admin_approvals_decide")
async def decide(
    request: Request,
    proposal_id: Annotated[str, Path(max_length=64)],
    decision: Decision,
    csrf_token: Annotated[str, Form(alias=CSRF_FIELD, max_length=128)] = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Approve (and apply), reject or review one proposal, as the signed-in user."""
    session = await signed_in(request)
    if not isinstance(session, Session):
        return session
    if not session.csrf_ok(csrf_token):
        return refused(request, session, "the form's CSRF token is missing or wrong: reload the page and try again")
    principal, platform = session.caller.principal, service(request).platform
    step: Callable[[Approvals], Outcome[Proposal]] = (
        (lambda a: a.reject(principal, proposal_id, reason))
        if decision == "reject"
        else (lambda a: a.review(principal, proposal_id))
    )
    try:
        if decision == "approve":  # the same call as POST /v1/approvals/{id}/approve
            applied = await platform.approving(lambda a: a.approve(principal, proposal_id))
            described, status = applied.describe(), applied.proposal.status
        else:
            decided = await platform.approving(step)
            described, status = {"proposal": decided.describe()}, decided.status
    except StrongroomError as exc:
        return await _render(request, session, code=_status_of(exc), error=str(exc))
    notice = f"proposal {proposal_id}: {status}" if decision != "review" else f"proposal {proposal_id}: reviewed"
    return await _render(request, session, notice=notice, result=described)
