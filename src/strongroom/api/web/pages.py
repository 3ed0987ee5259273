"""The web workspace's pages and sign-in endpoints (server-rendered, Jinja2).

``/`` sends the browser to the Ask page, or to sign-in without a session. Sign-in goes
through the identity provider (``/ui/auth/login`` → the provider → ``/ui/auth/callback``);
in local development only, an API key may be typed in instead (``ui_api_key_login``).
Every form carries a CSRF token; the pages' script sends the session's token as a header
on the JSON API calls that change state. No page holds inline script or style.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from strongroom.api.web import signin
from strongroom.api.web.render import NO_STORE as _NO_STORE
from strongroom.api.web.render import page as _page
from strongroom.api.web.render import service as _service
from strongroom.api.web.render import signed_in as _signed_in
from strongroom.api.web.sessions import Session
from strongroom.api.web.state import CSRF_FIELD, SESSION_COOKIE, WebState, current_session, web_state
from strongroom.auth import Caller
from strongroom.auth.apikeys import KEY_PREFIX
from strongroom.errors import AuthenticationError
from strongroom.ingest.understand.termsheet import FIELDS as TERMSHEET_FIELDS

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

FLOW_COOKIE = "sr_signin"
LOGIN_CSRF_COOKIE = "sr_login_csrf"
_NEXT = re.compile(r"^/ui/[A-Za-z0-9/_-]{0,200}$")


def _next(value: str | None) -> str:
    """A local page to return to after sign-in (never another site)."""
    return value if value and _NEXT.fullmatch(value) else "/ui/ask"  # fullmatch: "$" would let a final "\n" in


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or web_state(request).config.ui_secure_cookies


def _refused(request: Request, reason: str, kind: str) -> None:
    svc = _service(request)
    svc.metrics.auth_failures.inc()
    svc.refusals.note(reason, request.client.host if request.client else "unknown", kind)


def _signin_page(request: Request, error: str = "", status: int = 200) -> HTMLResponse:
    web = web_state(request)
    # double-submit: the form's token must equal the cookie's (kept, so several tabs agree)
    token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not re.fullmatch(r"[A-Za-z0-9_-]{32}", token):
        token = secrets.token_urlsafe(24)
    response = _page(
        request,
        "signin.html",
        status,
        sso=web.oidc is not None,
        api_key_login=web.config.ui_api_key_login,
        login_csrf=token,
        next=_next(request.query_params.get("next")),
        error=error,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=3600,
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    return response


async def _start_session(request: Request, caller: Caller, next_path: str) -> Response:
    """Sign ``caller`` in: a new server-side session, its cookie, an audit record; then a page
    that moves on to ``next_path``. A page, not a redirect: a SameSite=Strict cookie set at the
    end of a redirect chain that began at the identity provider (another site) would not be
    sent on the redirect's target."""
    web = web_state(request)
    sid, _ = await asyncio.to_thread(web.sessions.create, caller)
    await _service(request).platform.record(caller.principal, "ui.signin", detail=caller.method)
    response = _page(request, "signed_in.html", next=next_path)
    response.set_cookie(
        SESSION_COOKIE,
        sid,
        max_age=int(web.config.ui_absolute_timeout_s),
        path="/",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    response.delete_cookie(FLOW_COOKIE, path="/ui/auth")
    return response


@router.get("/")
async def home(request: Request) -> Response:
    session = await current_session(request)
    return RedirectResponse("/ui/ask" if session else "/ui/signin", 303, headers=_NO_STORE)


@router.get("/ui/signin", name="ui_signin")
async def signin_page(request: Request) -> Response:
    if await current_session(request):
        return RedirectResponse(_next(request.query_params.get("next")), 303, headers=_NO_STORE)
    return _signin_page(request)


@router.get("/ui/auth/login", name="ui_login")
async def login(request: Request, next: str | None = None) -> Response:
    """Start single sign-on: remember state, nonce and PKCE verifier, go to the provider."""
    web = web_state(request)
    if web.oidc is None:
        return _signin_page(request, "single sign-on is not configured on this service", 404)
    pending = signin.start(_next(next))
    flow = await asyncio.to_thread(web.sessions.begin, pending)
    try:
        url = await web.oidc.authorization_url(pending, _redirect_uri(request, web))
    except AuthenticationError as exc:
        return _signin_page(request, str(exc), 503)
    response = RedirectResponse(url, 302, headers=_NO_STORE)
    # Lax, not Strict: the browser comes back to the callback from the provider's site
    response.set_cookie(
        FLOW_COOKIE, flow, max_age=600, path="/ui/auth", httponly=True, samesite="lax", secure=_secure(request)
    )
    return response


def _redirect_uri(request: Request, web: WebState) -> str:
    return web.config.ui_redirect_uri or str(request.url_for("ui_callback"))


@router.get("/ui/auth/callback", name="ui_callback")
async def callback(
    request: Request, code: str | None = None, state: str | None = None, error: str | None = None
) -> Response:
    """The provider sends the browser back here: check the state, exchange the code (with the
    PKCE verifier), verify the tokens, start a session."""
    web = web_state(request)
    if web.oidc is None:
        return _signin_page(request, "single sign-on is not configured on this service", 404)
    pending = await asyncio.to_thread(web.sessions.finish, request.cookies.get(FLOW_COOKIE, ""))
    if error:
        _refused(request, f"the identity provider refused the sign-in: {error[:100]}", "ui-oidc")
        return _signin_page(request, f"the identity provider refused the sign-in ({error[:100]})", 401)
    if pending is None or not state or not secrets.compare_digest(state, pending.state) or not code:
        reason = "the sign-in could not be matched to one started in this browser (expired, reused or forged)"
        _refused(request, reason, "ui-oidc")
        return _signin_page(request, f"{reason}; sign in again", 400)
    try:
        caller = await web.oidc.exchange(code, pending, _redirect_uri(request, web))
    except AuthenticationError as exc:
        _refused(request, str(exc), "ui-oidc")
        return _signin_page(request, str(exc), 401)
    return await _start_session(request, caller, pending.next)


@router.post("/ui/auth/apikey", name="ui_apikey")
async def apikey_login(
    request: Request,
    api_key: Annotated[str, Form(max_length=4096)],
    csrf_token: Annotated[str, Form(alias=CSRF_FIELD, max_length=128)] = "",
    next: Annotated[str, Form(max_length=256)] = "/ui/ask",
) -> Response:
    """LOCAL DEVELOPMENT ONLY (``STRONGROOM_UI_API_KEY_LOGIN=1``): sign in with an API key."""
    web = web_state(request)
    if not web.config.ui_api_key_login:
        return _signin_page(request, "signing in with an API key is switched off on this service", 404)
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not secrets.compare_digest(expected, csrf_token):
        return _signin_page(request, "the sign-in form has expired; try again", 403)
    key = api_key.strip()
    try:
        if not key.startswith(KEY_PREFIX):
            raise AuthenticationError(f"that is not a strongroom API key (they start with {KEY_PREFIX!r})")
        caller = await _service(request).authenticate(f"Bearer {key}")
    except AuthenticationError as exc:
        _refused(request, str(exc), "ui-api-key")
        return _signin_page(request, str(exc), 401)
    return await _start_session(request, caller, _next(next))


@router.post("/ui/auth/logout", name="ui_logout")
async def logout(request: Request, csrf_token: Annotated[str, Form(alias=CSRF_FIELD, max_length=128)] = "") -> Response:
    """Sign out: the server-side session is deleted, so its cookie is dead everywhere."""
    web = web_state(request)
    session = await current_session(request)
    if session is not None:
        if not session.csrf_ok(csrf_token):
            return HTMLResponse("refused: the form's CSRF token is missing or wrong", 403, headers=_NO_STORE)
        await asyncio.to_thread(web.sessions.delete, request.cookies.get(SESSION_COOKIE, ""))
        await _service(request).platform.record(session.caller.principal, "ui.signout")
    response = RedirectResponse("/ui/signin", 303, headers=_NO_STORE)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/ui/ask", name="ui_ask")
async def ask_page(request: Request) -> Response:
    """Ask a question; the answer with numbered citations; the cited page beside it."""
    session = await _signed_in(request)
    if not isinstance(session, Session):
        return session
    caller, fields = session.caller, TERMSHEET_FIELDS
    return _page(request, "ask.html", session=session, caller=caller, csrf=session.csrf, termsheet_fields=fields)
