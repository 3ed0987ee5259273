"""Lineage over HTTP: where an answer came from (:mod:`strongroom.service.lineage`).

    GET /v1/lineage/{record_id}     record_id: the audit record's seq (an answer's ``audit_seq``)

An admin or auditor may read any record's lineage; anyone else only that of their own requests:
another's record, one that does not exist and one past the log's head are the same ``404``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from strongroom.api.deps import Who, service

__all__ = ["router"]

router = APIRouter(prefix="/v1/lineage", tags=["lineage"])


@router.get("/{record_id}")
async def lineage(record_id: str, request: Request, principal: Who) -> dict[str, Any]:
    """The chunks, versions (with the ACL at the time), ingestion job and parser, embedder, chat
    model actually used with its route version and deployment, prompt template version and the
    policies in force, for one audit record; audited as ``lineage.read``."""
    return (await service(request).platform.lineage(principal, record_id)).as_dict()
