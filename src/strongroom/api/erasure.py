"""Erasure over HTTP (:mod:`strongroom.service.erasure`); admins only.

    POST /v1/erasures                    {"identifier" or "document_id": "...", "reason": "..."}
    POST /v1/erasures/{id}/verify        {"identifier": "..."}: where it still occurs ("proven": zero everywhere);
                                         {} for a document erasure (by its ids)
    GET  /v1/erasures                    erasures carried out (ids, counts; never an identifier)

The identifier travels only in a request body, never in a URL or query string: URLs are
written to access logs, proxies' logs and browser histories. The answer never repeats it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from strongroom.api.deps import Who, service

__all__ = ["router"]

router = APIRouter(prefix="/v1/erasures", tags=["erasure"])


class EraseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    identifier: str = Field(default="", max_length=200, description="A name or account number: every occurrence.")
    document_id: str = Field(default="", max_length=200, description="Or a whole document.")
    reason: str = Field(max_length=500, description="Why (e.g. the data subject request's reference).")


class VerifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    identifier: str = Field(
        default="",
        max_length=200,
        description="The erased identifier again (checked against its hash); none for a document erasure.",
    )


@router.post("")
async def erase(body: EraseRequest, request: Request, principal: Who) -> dict[str, Any]:
    """Erase every occurrence of an identifier (held documents are left and named), or a document."""
    report = await service(request).platform.erasing(
        lambda e: e.erase(principal, identifier=body.identifier, document_id=body.document_id, reason=body.reason)
    )
    return report.as_dict()


@router.post("/{erasure_id}/verify")
async def verify(erasure_id: str, body: VerifyRequest, request: Request, principal: Who) -> dict[str, Any]:
    """Search every store and file for the identifier the erasure erased; ``proven`` when found nowhere."""
    report = await service(request).platform.erasing(lambda e: e.verify(principal, erasure_id, body.identifier))
    return report.as_dict()


@router.get("")
async def erasures(request: Request, principal: Who) -> list[dict[str, object]]:
    """Erasures carried out, oldest first."""
    return await service(request).platform.erasing(lambda e: e.listed(principal))
