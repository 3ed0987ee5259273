"""Administration reads under ``/v1/admin``: the audit log's verification, the ingestion jobs
the bus gave up on, and the model routes and deployments (read-only).

Each route hands the caller's principal to the application layer, which refuses anyone but
an admin (403) and records the read in the audit log.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from strongroom.api.deps import Who, service

__all__ = ["router"]

router = APIRouter(prefix="/v1/admin", tags=["admin"])


class ProblemOut(BaseModel):
    seq: int
    kind: str
    message: str


class VerifyOut(BaseModel):
    ok: bool
    records: int = Field(description="How many records were checked.")
    head_seq: int = Field(description="The newest record's seq.")
    anchored: int | None = Field(description="The highest seq a valid signed checkpoint vouches for.")
    checkpoints: int
    erased: int = Field(0, description="How many records' free text was erased (their hashes still verify).")
    problems: list[ProblemOut] = Field(description="Where the chain breaks, if it does (at most 100).")


class DeadLetterOut(BaseModel):
    file: str
    message_id: str
    attempts: int
    error: str


class DeadLetters(BaseModel):
    bus: bool = Field(description="Whether this service queues uploads on a bus (without one, there are none).")
    dead_letters: list[DeadLetterOut]


class ModelsOut(BaseModel):
    routes: list[dict[str, object]]
    deployments: dict[str, dict[str, object]]


@router.get("/audit/verify", response_model=VerifyOut)
async def verify_audit(request: Request, principal: Who) -> VerifyOut:
    """Check every audit record's hash chain and the signed checkpoints (admins)."""
    report = await service(request).platform.verify_audit(principal)
    problems = [ProblemOut(seq=p.seq, kind=str(p.kind), message=p.message) for p in report.problems[:100]]
    return VerifyOut(
        ok=report.ok,
        records=report.records,
        head_seq=report.head.seq,
        anchored=report.anchored,
        checkpoints=report.checkpoints,
        erased=report.erased,
        problems=problems,
    )


@router.get("/dead-letters", response_model=DeadLetters)
async def dead_letters(request: Request, principal: Who) -> DeadLetters:
    """The ingestion jobs the bus gave up on, oldest first, with their last error (admins)."""
    svc = service(request)
    letters = await svc.platform.dead_letters(principal, svc.config.bus_url, svc.config.bus_stream)
    return DeadLetters(bus=bool(svc.config.bus_url), dead_letters=[DeadLetterOut.model_validate(d) for d in letters])


@router.get("/models", response_model=ModelsOut)
async def models_config(request: Request, principal: Who) -> ModelsOut:
    """Every model route (its active version and targets) and every deployment, read-only (admins)."""
    config = (await service(request).platform.models_config(principal)).as_dict()
    return ModelsOut.model_validate(config)
