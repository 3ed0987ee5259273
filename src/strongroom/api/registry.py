"""The model registry over HTTP: register model versions, attach evaluations, propose stage
moves, and ask which model was in production when or which answered a recorded question.

    GET  /v1/registry/models?name=chat           every version (admins, approvers)
    POST /v1/registry/models                     register a candidate (admins)
    GET  /v1/registry/models/{name@version}
    POST /v1/registry/models/{name@version}/evidence   {"audit_seq": 4711}: an eval run's record
    POST /v1/registry/models/{name@version}/promote    {"stage": "production", "reason": "..."}: 202,
                                                       a proposal another approver approves
                                                       (POST /v1/approvals/{id}/approve)
    GET  /v1/registry/which?at=2026-03-03        the versions in production then
    GET  /v1/registry/records/{seq}              audit record seq's models (admins)

The application layer decides everything (:mod:`strongroom.service.registry`): roles, the stage
rules, the release gate when proposed and again when approved, and that the maker never
approves their own move (by any key or login of theirs).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from strongroom.api.deps import Who, service
from strongroom.errors import QueryError
from strongroom.governance.registry import Lineage, ModelEntry, parse_ref
from strongroom.service.registry import PROMOTE, promote_change

__all__ = ["router"]

router = APIRouter(prefix="/v1/registry", tags=["registry"])
_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$"


class LineageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data: str = Field(default="", max_length=500)
    code: str = Field(default="", max_length=500)
    parent: str = Field(default="", max_length=500)


class RegisterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=_NAME)
    version: str = Field(pattern=_NAME)
    kind: Literal["embedder", "reranker", "chat", "fine-tuned"]
    owner: str = Field(min_length=1, max_length=200)
    risk_tier: Literal["low", "medium", "high"]
    binding: str = Field(default="", max_length=200, description="A deployment's name, or the embedder's model id.")
    lineage: LineageIn = Field(default_factory=LineageIn)
    card: str = Field(default="", max_length=64_000, description="The model card (text or Markdown).")


class EvidenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    audit_seq: int = Field(ge=1, description="The audit seq of an evaluation run (`strongroom eval`).")


class PromoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stage: Literal["candidate", "validated", "production", "retired"]
    reason: str = Field(default="", max_length=2000)


def _ref(ref: str) -> str:
    try:
        return "@".join(parse_ref(ref))
    except ValueError as exc:
        raise QueryError(str(exc)) from exc


@router.get("/models")
async def list_models(request: Request, principal: Who, name: str | None = None) -> list[dict[str, Any]]:
    """Every registered model version (of ``name``), with evidence and stage history."""
    found = await service(request).platform.registering(lambda r: r.entries(principal, name))
    return [e.as_dict() for e in found]


@router.post("/models", status_code=201)
async def register(body: RegisterRequest, request: Request, principal: Who) -> dict[str, Any]:
    """Register a model version as a candidate (admins)."""
    lineage = Lineage(body.lineage.data, body.lineage.code, body.lineage.parent)
    entry = ModelEntry(body.name, body.version, body.kind, body.owner, body.risk_tier, body.binding, lineage, body.card)
    return (await service(request).platform.registering(lambda r: r.register(principal, entry))).as_dict()


@router.get("/which")
async def which(request: Request, principal: Who, at: str | None = None) -> list[dict[str, Any]]:
    """The model versions in production at ``at`` (a date: its end, UTC; default: now)."""
    return [e.as_dict() for e in await service(request).platform.registering(lambda r: r.which(principal, at))]


@router.get("/records/{seq}")
async def resolve(seq: int, request: Request, principal: Who) -> dict[str, Any]:
    """Audit record ``seq``'s generator and the embedder in production then, as registry entries (admins)."""
    return (await service(request).platform.registering(lambda r: r.resolve(principal, seq))).as_dict()


@router.get("/models/{ref}")
async def show(ref: str, request: Request, principal: Who) -> dict[str, Any]:
    name = _ref(ref)
    return (await service(request).platform.registering(lambda r: r.show(principal, name))).as_dict()


@router.post("/models/{ref}/evidence")
async def evidence(ref: str, body: EvidenceRequest, request: Request, principal: Who) -> dict[str, Any]:
    """Attach an evaluation run, by its audit seq (admins): its metrics are read from that record."""
    name = _ref(ref)
    platform = service(request).platform
    return (await platform.registering(lambda r: r.attach(principal, name, body.audit_seq))).as_dict()


@router.post("/models/{ref}/promote", status_code=202)
async def promote(ref: str, body: PromoteRequest, request: Request, principal: Who) -> JSONResponse:
    """Propose a stage move (admins): 202 with the proposal; it takes effect when another person
    with the approver role approves it. Into production, the release gate decides first."""
    change = promote_change(ref, body.stage)
    platform = service(request).platform
    p = await platform.approving(lambda a: a.propose(principal, PROMOTE, change, body.reason))
    return JSONResponse({"status": "proposed", "proposal": p.describe()}, status_code=202)
