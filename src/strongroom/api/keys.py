"""Admin routes for API keys: create (the secret is returned once), list, revoke. Audited,
never with the secret."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from strongroom.api.deps import audit, need, service
from strongroom.auth import ApiKey, Caller

__all__ = ["router"]

router = APIRouter(prefix="/v1/keys", tags=["keys"])
Admin = Annotated[Caller, Depends(need("admin", "keys"))]


class KeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    owner: str = Field(min_length=1, max_length=200, pattern=r"\S", description="Who answers for the key; not blank.")
    groups: list[str] = Field(min_length=1, max_length=100)
    expires_at: datetime | None = None


class KeyOut(BaseModel):
    id: str
    owner: str
    groups: list[str]
    created_at: datetime
    expires_at: datetime | None
    status: str

    @classmethod
    def of(cls, key: ApiKey) -> KeyOut:
        status = "revoked" if key.revoked_at else ("active" if key.active(datetime.now(UTC)) else "expired")
        return cls(
            id=key.id,
            owner=key.owner,
            groups=sorted(key.groups),
            created_at=key.created_at,
            expires_at=key.expires_at,
            status=status,
        )


class NewKeyOut(KeyOut):
    key: str = Field(description="The secret, shown this once: store it in a secret manager.")


@router.post("", response_model=NewKeyOut, status_code=201)
async def create_key(body: KeyRequest, request: Request, caller: Admin) -> NewKeyOut:
    """Create an API key; the response holds the only copy of its secret."""
    groups = frozenset(g.strip() for g in body.groups if g.strip())
    if not groups:
        raise HTTPException(422, "groups: give at least one non-empty group")
    if not body.owner.strip():  # the schema's pattern and str.strip disagree on some control characters
        raise HTTPException(422, "owner: give a non-blank owner")
    key, secret = await asyncio.to_thread(service(request).keys.create, body.owner, groups, body.expires_at)
    await audit(request, caller, "keys.create", target=key.id, detail=f"owner {body.owner}; groups {sorted(groups)}")
    return NewKeyOut(**KeyOut.of(key).model_dump(), key=secret)


@router.get("", response_model=list[KeyOut])
async def list_keys(request: Request, caller: Admin) -> list[KeyOut]:
    """All keys, never their secrets."""
    keys = await asyncio.to_thread(service(request).keys.list)
    await audit(request, caller, "keys.list")
    return [KeyOut.of(k) for k in keys]


@router.delete("/{key_id}")
async def revoke_key(key_id: str, request: Request, caller: Admin) -> dict[str, str]:
    """Revoke a key at once."""
    done = await asyncio.to_thread(service(request).keys.revoke, key_id)
    await audit(request, caller, "keys.revoke", target=key_id, outcome="ok" if done else "not_found")
    if not done:
        raise HTTPException(404, "no such active key")
    return {"revoked": key_id}
