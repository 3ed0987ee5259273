"""Request dependencies: the service, the authenticated caller (rate-limited), roles, audit."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPBearer

from strongroom.api.service import Service
from strongroom.audit import AuditEvent
from strongroom.auth import AuthenticationError, Caller, Role
from strongroom.llm.errors import BudgetUnavailable

__all__ = ["audit", "bearer", "get_caller", "need", "service"]

#: declares the bearer scheme in the OpenAPI document; the header itself is read below
bearer = HTTPBearer(auto_error=False, description="An OIDC access token (JWT) or a strongroom API key (sr_...).")


def service(request: Request) -> Service:
    svc: Service = request.app.state.service
    return svc


async def get_caller(request: Request, _: Annotated[object, Depends(bearer)]) -> Caller:
    """The authenticated caller, or 401; then the caller's rate limit, or 429."""
    svc = service(request)
    try:
        caller = await svc.authenticate(request.headers.get("authorization"))
    except AuthenticationError as exc:
        svc.metrics.auth_failures.inc()
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}) from exc
    request.state.principal = caller.name
    try:
        wait = await svc.limiter.acquire(caller.name)
    except BudgetUnavailable as exc:  # deny when the shared limit cannot be read; never guess
        raise HTTPException(503, f"{exc}", headers={"Retry-After": "5"}) from exc
    if wait > 0:
        svc.metrics.rate_limited.inc()
        raise HTTPException(
            429,
            f"rate limit: over {svc.config.rate_per_s:g} requests/s; retry later",
            headers={"Retry-After": str(math.ceil(wait))},
        )
    return caller


def event(request: Request, caller: Caller, action: str, **fields: object) -> AuditEvent:
    return AuditEvent(
        principal=caller.name,
        groups=tuple(sorted(caller.groups)),
        action=action,
        auth=caller.method,
        request_id=str(getattr(request.state, "request_id", "")),
        **fields,  # type: ignore[arg-type]
    )


async def audit(request: Request, caller: Caller, action: str, **fields: object) -> None:
    """Append an audit record for this request (off the event loop, committed with those of
    concurrent requests); returns once it is committed."""
    await service(request).audit_writer.submit(event(request, caller, action, **fields))


def need(role: Role, action: str) -> Callable[..., Awaitable[Caller]]:
    """A dependency: the caller, who must hold ``role`` (403 otherwise, and audited)."""

    async def dependency(request: Request, caller: Annotated[Caller, Depends(get_caller)]) -> Caller:
        if role not in caller.roles:
            await audit(request, caller, action, outcome="denied", detail=f"needs role {role}")
            raise HTTPException(403, f"this needs the {role} role; ask an administrator")
        return caller

    return dependency
