"""Four-eyes approval over HTTP: proposals to see, approve, reject and review, and break glass.

Proposals are made by the changes themselves once four-eyes is on: ``PUT`` of a document's
ACL or ``POST /v1/keys`` answer ``202`` with the proposal's id. The application layer decides
everything here: the approver role, that the maker (by person: a key's owner) never checks
their own change, expiry, and that a change is applied once.

    GET  /v1/approvals?status=proposed        every proposal (approvers) or your own
    GET  /v1/approvals/{id}
    POST /v1/approvals/{id}/approve           applies it; a key's secret is in the answer, once
    POST /v1/approvals/{id}/reject            {"reason": "..."}
    POST /v1/approvals/break-glass            {"kind": "acl.set", "change": {...}, "reason": "..."}
    GET  /v1/approvals/review                 break-glass changes not yet reviewed
    POST /v1/approvals/{id}/review
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from strongroom.api.deps import Who, service
from strongroom.service.proposal_store import Status

__all__ = ["router"]

router = APIRouter(prefix="/v1/approvals", tags=["approvals"])


class RejectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="", max_length=2000)


class BreakGlassRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str = Field(max_length=40, description="acl.set or keys.create")
    change: dict[str, Any] = Field(
        description='acl.set: {"document_id", "acl"}; keys.create: {"owner", "groups", "days"}'
    )
    reason: str = Field(default="", max_length=2000, description="Why this cannot wait for an approver (required).")


@router.get("")
async def list_proposals(request: Request, principal: Who, status: Status | None = None) -> list[dict[str, Any]]:
    """Every proposal for an approver, your own otherwise (expired ones marked so), newest first."""
    found = await service(request).platform.approving(lambda a: a.proposals(principal, status=status))
    return [p.describe() for p in found]


@router.get("/review")
async def unreviewed(request: Request, principal: Who) -> list[dict[str, Any]]:
    """Break-glass changes no approver has reviewed yet."""
    return [p.describe() for p in await service(request).platform.approving(lambda a: a.unreviewed(principal))]


@router.post("/break-glass")
async def break_glass(body: BreakGlassRequest, request: Request, principal: Who) -> dict[str, Any]:
    """Apply a change at once (admins; emergencies): flagged for review, never silent."""
    platform = service(request).platform
    return (
        await platform.approving(lambda a: a.break_glass(principal, body.kind, body.change, body.reason))
    ).describe()


@router.get("/{proposal_id}")
async def show(proposal_id: str, request: Request, principal: Who) -> dict[str, Any]:
    return (await service(request).platform.approving(lambda a: a.show(principal, proposal_id))).describe()


@router.post("/{proposal_id}/approve")
async def approve(proposal_id: str, request: Request, principal: Who) -> dict[str, Any]:
    """Approve and apply (approver role; never your own change, by any key or login of yours)."""
    return (await service(request).platform.approving(lambda a: a.approve(principal, proposal_id))).describe()


@router.post("/{proposal_id}/reject")
async def reject(proposal_id: str, body: RejectRequest, request: Request, principal: Who) -> dict[str, Any]:
    platform = service(request).platform
    return (await platform.approving(lambda a: a.reject(principal, proposal_id, body.reason))).describe()


@router.post("/{proposal_id}/review")
async def review(proposal_id: str, request: Request, principal: Who) -> dict[str, Any]:
    """Mark a break-glass change reviewed (an approver other than who broke the glass)."""
    return (await service(request).platform.approving(lambda a: a.review(principal, proposal_id))).describe()
