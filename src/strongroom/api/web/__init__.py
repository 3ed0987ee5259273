"""The web workspace for analysts and administrators, served by ``strongroom serve``.

Server-rendered pages (Jinja2), one stylesheet and one script, all served by the app
itself: it works air-gapped, under a strict Content-Security-Policy with no inline script.
Browsers sign in with the OIDC authorization code flow and PKCE against the API's issuer
and hold a server-side session; the pages then call the same JSON API as every client
(the session cookie is the third way :func:`strongroom.api.deps.get_caller` accepts).

>>> web = WebState.open(settings, config, svc.auth)  # doctest: +SKIP
>>> install(app, web)  # doctest: +SKIP
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from strongroom.api.web import admin, agent, approvals, workspace
from strongroom.api.web.headers import CONTENT_SECURITY_POLICY, SecurityHeaders
from strongroom.api.web.pages import router
from strongroom.api.web.render import not_found_page
from strongroom.api.web.sessions import Session, SessionStore
from strongroom.api.web.state import CSRF_HEADER, SESSION_COOKIE, WebState, current_session, static_dir

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "SecurityHeaders",
    "Session",
    "SessionStore",
    "WebState",
    "current_session",
    "install",
]


def install(app: FastAPI, web: WebState) -> None:
    """Serve the workspace on ``app``: its pages, its static files, the session store on ``app.state.web``."""
    app.state.web = web
    app.include_router(router)
    app.include_router(workspace.router)
    app.include_router(admin.router)
    app.include_router(approvals.router)
    app.include_router(agent.router)
    app.mount("/ui/static", StaticFiles(directory=static_dir()), name="ui_static")
    # last, so that it shadows neither a page nor the static files: any other /ui address
    app.add_api_route("/ui/{rest:path}", not_found_page, methods=["GET"], include_in_schema=False)
