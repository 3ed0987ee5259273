"""Admin routes for API keys: create (the secret is returned once), list, revoke.

The application layer decides: admins only; a key may carry only groups its creator holds
(or configuration allows); every key expires (a default lifetime and a maximum). Audited,
never with the secret.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from strongroom.api.deps import Who, service
from strongroom.auth import ApiKey

__all__ = ["router"]

router = APIRouter(prefix="/v1/keys", tags=["keys"])


class KeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    owner: str = Field(min_length=1, max_length=200, pattern=r"\S", description="Who answers for the key; not blank.")
    groups: list[str] = Field(min_length=1, max_length=100, description="Groups you hold (or configuration allows).")
    expires_at: datetime | None = Field(default=None, description="Default: after STRONGROOM_KEY_DEFAULT_DAYS.")
    days: int | None = Field(default=None, ge=1, le=3650, description="Or: expire after this many days.")


class KeyOut(BaseModel):
    id: str
    owner: str
    groups: list[str]
    created_at: datetime
    expires_at: datetime | None
    status: str

    @classmethod
    def of(cls, key: ApiKey) -> KeyOut:
        return cls(
            id=key.id,
            owner=key.owner,
            groups=sorted(key.groups),
            created_at=key.created_at,
            expires_at=key.expires_at,
            status=key.status(datetime.now(UTC)),
        )


class NewKeyOut(BaseModel):
    id: str
    owner: str
    groups: list[str]
    expires_at: datetime | None
    status: str = "active"
    key: str = Field(description="The secret, shown this once: store it in a secret manager.")


@router.post("", response_model=NewKeyOut, status_code=201)
async def create_key(body: KeyRequest, request: Request, principal: Who) -> NewKeyOut:
    """Create an API key; the response holds the only copy of its secret."""
    if not body.owner.strip():  # the schema's pattern and str.strip disagree on some control characters
        raise HTTPException(422, "owner: give a non-blank owner")
    if not any(g.strip() for g in body.groups):
        raise HTTPException(422, "groups: give at least one non-empty group")
    created = await service(request).platform.create_key(
        principal, body.owner, body.groups, expires_at=body.expires_at, days=body.days
    )
    return NewKeyOut(
        id=created.id,
        owner=created.owner,
        groups=sorted(created.groups),
        expires_at=created.expires_at,
        key=created.secret,
    )


@router.get("", response_model=list[KeyOut])
async def list_keys(request: Request, principal: Who) -> list[KeyOut]:
    """All keys, never their secrets."""
    return [KeyOut.of(k) for k in await service(request).platform.list_keys(principal)]


@router.delete("/{key_id}")
async def revoke_key(key_id: str, request: Request, principal: Who) -> dict[str, str]:
    """Revoke a key at once."""
    return {"revoked": await service(request).platform.revoke_key(principal, key_id)}
