"""Retention policies and legal holds over HTTP, and the service's retention schedule.

Every route needs the ``admin`` role, decided (and audited) by :mod:`strongroom.service.retention`.
With four-eyes on, setting or removing a policy and releasing a hold answer ``202`` with the
proposal's id (``POST /v1/approvals/{id}/approve`` makes them). A document under hold is
refused by ``DELETE /v1/documents/{id}`` with ``403``, naming the matter.

    GET    /v1/retention/policies
    PUT    /v1/retention/policies/{name}   {"keep": "7y", "doc_type": "research_report", "reason": "..."}
    DELETE /v1/retention/policies/{name}?reason=...
    POST   /v1/retention/apply             {"dry_run": true}
    GET    /v1/holds?active=true
    POST   /v1/holds                       {"matter_id", "reason", and one of "document_id", "source", "query"}
    POST   /v1/holds/{id}/release          {"reason": "..."}
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from strongroom.api.deps import Who, service
from strongroom.errors import StrongroomError
from strongroom.service.async_platform import AsyncPlatform
from strongroom.service.retention import SYSTEM

__all__ = ["router", "schedule"]

log = logging.getLogger(__name__)
router = APIRouter(tags=["retention"])


class PolicyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    keep: str = Field(max_length=20, description="How long to keep after publication: 7y, 90d or 1y30d.")
    doc_type: str = Field(default="", max_length=100)
    source: str = Field(default="", max_length=500, description="A prefix of the documents' source.")
    sensitivity: str = Field(default="", max_length=40, description="public, internal, confidential or restricted.")
    reason: str = Field(default="", max_length=2000, description="Why (kept with a four-eyes proposal).")


class ApplyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dry_run: bool = False


class HoldRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    matter_id: str = Field(max_length=200)
    reason: str = Field(max_length=2000)
    document_id: str = Field(default="", max_length=200)
    source: str = Field(default="", max_length=500, description="A prefix of the documents' source.")
    query: dict[str, str] | None = Field(
        default=None, description='Every term must match: {"doc_type", "source", "title", "meta.KEY"}.'
    )


class ReleaseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="", max_length=2000)


@router.get("/v1/retention/policies")
async def list_policies(request: Request, principal: Who) -> list[dict[str, Any]]:
    found = await service(request).platform.retaining(lambda r: r.policies(principal))
    return [p.describe() for p in found]


@router.put("/v1/retention/policies/{name}")
async def set_policy(name: str, body: PolicyRequest, request: Request, principal: Who) -> dict[str, Any]:
    """Add or replace a policy (202 with a proposal id when four-eyes is on)."""
    change = {"id": name, **body.model_dump(exclude={"reason"})}
    policy = await service(request).platform.retention_change(principal, "retention.set", change, body.reason)
    return dict(policy.describe())


@router.delete("/v1/retention/policies/{name}")
async def remove_policy(name: str, request: Request, principal: Who, reason: str = "") -> dict[str, Any]:
    """Remove a policy (202 with a proposal id when four-eyes is on); ``?reason=`` says why."""
    change: dict[str, object] = {"id": name}
    policy = await service(request).platform.retention_change(principal, "retention.remove", change, reason[:2000])
    return {"removed": policy.describe()}


@router.post("/v1/retention/apply")
async def apply(body: ApplyRequest, request: Request, principal: Who) -> dict[str, Any]:
    """Delete every expired document no legal hold covers (or, ``dry_run``, say which)."""
    report = await service(request).platform.retaining(lambda r: r.apply(principal, dry_run=body.dry_run))
    return report.describe()


@router.get("/v1/holds")
async def list_holds(request: Request, principal: Who, active: bool = False) -> list[dict[str, Any]]:
    found = await service(request).platform.retaining(lambda r: r.holds(principal, active_only=active))
    return [h.describe() for h in found]


@router.post("/v1/holds", status_code=201)
async def place_hold(body: HoldRequest, request: Request, principal: Who) -> dict[str, Any]:
    hold = await service(request).platform.retaining(
        lambda r: r.place(
            principal, body.matter_id, body.reason, document_id=body.document_id, source=body.source, query=body.query
        )
    )
    return hold.describe()


@router.post("/v1/holds/{hold_id}/release")
async def release_hold(hold_id: str, body: ReleaseRequest, request: Request, principal: Who) -> dict[str, Any]:
    """Release a hold (202 with a proposal id when four-eyes is on)."""
    change: dict[str, object] = {"hold_id": hold_id}
    hold = await service(request).platform.retention_change(principal, "holds.release", change, body.reason)
    return dict(hold.describe())


async def schedule(platform: AsyncPlatform, hours: float) -> None:
    """Apply retention every ``hours`` as :data:`~strongroom.service.retention.SYSTEM` (audited),
    the first run one interval (at most an hour) after start; ``hours`` 0: never. Cancel to stop."""
    if hours <= 0:
        return
    interval = hours * 3600
    await asyncio.sleep(min(interval, 3600.0))
    while True:
        try:
            report = await platform.retaining(lambda r: r.apply(SYSTEM))
            log.info(
                "retention applied: %d deleted, %d held, %d kept", len(report.deleted), len(report.held), report.kept
            )
        except StrongroomError as exc:
            log.warning("retention could not be applied: %s", exc)
        except Exception:  # the schedule outlives one bad run; the next interval tries again
            log.exception("retention run failed")
        await asyncio.sleep(interval)
