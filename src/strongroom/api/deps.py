"""Request dependencies: the service and the authenticated caller (rate-limited).

Authorization (roles, entitlements) is not decided here: every route hands the caller's
principal to the application layer (:mod:`strongroom.service`), which decides and audits.
A refused authentication is counted here and recorded in the audit log in aggregate.
"""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPBearer

from strongroom.api.refusals import credential_kind
from strongroom.api.service import Service
from strongroom.api.web.state import SESSION_COOKIE, CsrfRefused, session_caller
from strongroom.auth import Caller
from strongroom.errors import AuthenticationError, BudgetUnavailable
from strongroom.types import Principal

__all__ = ["Who", "bearer", "get_caller", "get_principal", "service"]

#: declares the bearer scheme in the OpenAPI document; the header itself is read below
bearer = HTTPBearer(auto_error=False, description="An OIDC access token (JWT) or a strongroom API key (sr_...).")


def service(request: Request) -> Service:
    svc: Service = request.app.state.service
    return svc


async def get_caller(request: Request, _: Annotated[object, Depends(bearer)]) -> Caller:
    """The authenticated caller, or 401 (counted for the audit log); then its rate limit, or 429.

    Three ways in: an OIDC bearer token, an API key, or (without an ``Authorization``
    header) the web workspace's session cookie, which needs the session's CSRF token on
    every request that changes state (403 without it)."""
    svc = service(request)
    authorization = request.headers.get("authorization")
    browser = not authorization and SESSION_COOKIE in request.cookies
    try:
        caller = await (session_caller(request) if browser else svc.authenticate(authorization))
    except (AuthenticationError, CsrfRefused) as exc:
        svc.metrics.auth_failures.inc()
        source = request.client.host if request.client else "unknown"
        svc.refusals.note(str(exc), source, "session" if browser else credential_kind(authorization))
        if isinstance(exc, CsrfRefused):
            raise HTTPException(403, str(exc)) from exc
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


async def get_principal(caller: Annotated[Caller, Depends(get_caller)]) -> Principal:
    return caller.principal


#: the caller's principal (name, groups, roles, how it authenticated), for the application layer
Who = Annotated[Principal, Depends(get_principal)]
