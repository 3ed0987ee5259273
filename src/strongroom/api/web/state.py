"""What the web workspace holds for the app's lifetime, and how a request's session is found.

``app.state.web`` is a :class:`WebState`. The API's auth dependency calls
:func:`session_caller` when a request has no ``Authorization`` header but a session cookie:
the browser then calls the same JSON API as any client, as the user who signed in, with the
session's CSRF token in ``X-CSRF-Token`` on every request that changes state.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fastapi import Request

from strongroom.api.web.sessions import Session, SessionStore
from strongroom.api.web.signin import OidcClient
from strongroom.auth import Authenticator, Caller, ServiceSettings
from strongroom.config import Settings
from strongroom.errors import AuthenticationError, PermissionDenied
from strongroom.store.sqlite import private_dir

__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "CsrfRefused",
    "WebState",
    "current_session",
    "session_caller",
]

SESSION_COOKIE = "sr_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class CsrfRefused(PermissionDenied):
    """A state-changing request from a browser session without its CSRF token."""


@dataclass
class WebState:
    """The session store and the OIDC client (None when single sign-on is not configured)."""

    config: ServiceSettings
    sessions: SessionStore
    oidc: OidcClient | None

    @classmethod
    def open(cls, settings: Settings, config: ServiceSettings, authenticator: Authenticator) -> WebState:
        sessions = SessionStore(
            private_dir(settings.home) / "web_sessions.sqlite3",
            idle_s=config.ui_idle_timeout_s,
            absolute_s=config.ui_absolute_timeout_s,
        )
        sso = config.oidc_issuer and config.oidc_audience and config.ui_client_id
        return cls(config, sessions, OidcClient(config, authenticator) if sso else None)

    async def aclose(self) -> None:
        if self.oidc is not None:
            await self.oidc.aclose()
        self.sessions.close()


def web_state(request: Request) -> WebState:
    state: WebState = request.app.state.web
    return state


async def current_session(request: Request) -> Session | None:
    """The request's live session, or None (no cookie, signed out, expired)."""
    sid = request.cookies.get(SESSION_COOKIE)
    if not sid:
        return None
    sessions = web_state(request).sessions
    session = await asyncio.to_thread(sessions.lookup, sid)
    if session is not None and session.caller.method == "api-key" and not await _key_active(request, session):
        await asyncio.to_thread(sessions.delete, sid)  # the key it signed in with was revoked or expired
        return None
    return session


async def _key_active(request: Request, session: Session) -> bool:
    """Whether the API key a (development-mode) session signed in with is still active: a
    revocation, by the service or ``strongroom keys revoke``, ends its sessions at once."""
    keys = request.app.state.service.keys
    now = datetime.now(UTC)
    listed = await asyncio.to_thread(keys.list)
    return any(k.id == session.caller.key_id and k.active(now) for k in listed)


async def session_caller(request: Request) -> Caller:
    """The caller of a browser session, or :class:`AuthenticationError` (no live session) or
    :class:`CsrfRefused` (a state-changing request without the session's CSRF token)."""
    session = await current_session(request)
    if session is None:
        raise AuthenticationError("the browser session has expired or was signed out; sign in again")
    if request.method not in SAFE_METHODS and not session.csrf_ok(request.headers.get(CSRF_HEADER)):
        raise CsrfRefused("this request changes state: send the session's CSRF token in the X-CSRF-Token header")
    return session.caller


def static_dir() -> Path:
    return Path(__file__).parent / "static"
