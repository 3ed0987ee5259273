"""The FastAPI app factory: ``create_app(settings)`` wires the service and its routes.

>>> app = create_app(Settings(home=Path("/tmp/sr")), ServiceSettings(dev_mode=True))  # doctest: +SKIP
>>> uvicorn.run(app, host="127.0.0.1", port=8000)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException
from starlette.routing import Route

from strongroom.api import (
    admin,
    agent,
    approvals,
    conversations,
    datasets,
    docs,
    erasure,
    keys,
    lineage,
    openai,
    routes,
)
from strongroom.api import registry as registry_api
from strongroom.api import retention as retention_api
from strongroom.api.deps import get_caller, service
from strongroom.api.mcp import McpEndpoint, service_tools
from strongroom.api.middleware import ServiceMiddleware
from strongroom.api.service import Service
from strongroom.api.web import SecurityHeaders, WebState
from strongroom.api.web import install as install_web
from strongroom.auth import Caller, ServiceSettings
from strongroom.config import Settings
from strongroom.embed import Embedder
from strongroom.errors import (
    ApprovalPending,
    GatewayError,
    IngestError,
    NotFound,
    PermissionDenied,
    QueryError,
    StrongroomError,
)
from strongroom.ingest.bounded import warm_up
from strongroom.service.agent_host import AgentHost

__all__ = ["create_app"]

log = logging.getLogger("strongroom.api")

_ERROR_TYPES = {
    400: "invalid_request",
    401: "authentication_error",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    422: "invalid_request",
    429: "rate_limit_exceeded",
    503: "unavailable",
}
DEV_MODE_WARNING = (
    "!!! STRONGROOM DEVELOPMENT MODE: requests WITHOUT credentials are accepted as %r with groups %s. "
    "Never run this way with real data; unset STRONGROOM_DEV_MODE. !!!"
)


def _status_of(exc: StrongroomError) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, PermissionDenied):
        return 403
    if isinstance(exc, QueryError | IngestError):
        return 422
    if isinstance(exc, GatewayError):
        return 503
    return 500


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    kind = _ERROR_TYPES.get(status, "internal_error" if status >= 500 else "invalid_request")
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status, headers=headers)


def _warm_up() -> None:
    try:
        warm_up()
    except Exception:  # the first parse or drawing then starts it, or reports why it cannot
        log.warning("the parse sandbox could not be started ahead of time", exc_info=True)


def create_app(
    settings: Settings | None = None,
    service_settings: ServiceSettings | None = None,
    *,
    embedder: Embedder | None = None,
) -> FastAPI:
    """The strongroom HTTP service over the store under ``settings.home``."""
    settings = settings or Settings()
    config = service_settings or ServiceSettings()
    svc = Service.open(settings, config, embedder)
    web = WebState.open(settings, config, svc.auth)
    mcp = McpEndpoint(service_tools(svc.platform))
    agents = AgentHost(svc.platform)  # research-agent runs: executed here, each on a thread of its own
    if config.dev_mode:
        log.warning(DEV_MODE_WARNING, config.dev_principal, sorted(config.dev_groups))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        refusals = asyncio.create_task(svc.refusals.run())
        retaining = asyncio.create_task(retention_api.schedule(svc.platform, settings.retention_interval_hours))
        # the sandbox's forkserver starts now, not on the first upload or page image
        warming = asyncio.create_task(asyncio.to_thread(_warm_up))
        await agents.start()  # runs a killed process left running become interrupted
        try:
            async with mcp.running():  # MCP requests end before the platform closes
                yield
        finally:
            refusals.cancel()
            retaining.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refusals
            with contextlib.suppress(asyncio.CancelledError):
                await retaining
            await warming
            await web.aclose()
            await agents.aclose()  # running runs stop where they are, interrupted (resumable)
            await svc.platform.aclose()
            await svc.limiter.aclose()
            await asyncio.to_thread(svc.close)

    app = FastAPI(
        title="strongroom",
        version="1",
        summary="Cited, entitled, point-in-time answers over a bank's documents.",
        lifespan=lifespan,
        # FastAPI's pages load Swagger UI and ReDoc from a CDN with inline script; see api/docs.py
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = svc
    app.state.agents = agents
    app.add_middleware(
        ServiceMiddleware,
        metrics=svc.metrics,
        max_body_bytes=config.max_body_bytes,
        max_upload_bytes=config.max_upload_bytes,
        timeout_s=config.request_timeout_s,
    )
    app.add_middleware(SecurityHeaders)  # outermost: every response, refusals included

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(StrongroomError)
    async def refused(request: Request, exc: StrongroomError) -> JSONResponse:
        """The application layer's errors, mapped to HTTP in this one place."""
        if isinstance(exc, ApprovalPending):  # four-eyes: accepted as a proposal, not made
            body = {"status": "proposed", "proposal_id": exc.proposal_id, "message": str(exc)}
            return JSONResponse(body, status_code=202)
        status = _status_of(exc)
        if status >= 500:
            request_id = getattr(request.state, "request_id", "")
            log.error("operation failed", exc_info=exc, extra={"request_id": request_id})
            return _error(status, f"internal error; quote request id {request_id} to the operator")
        return _error(status, str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg', 'invalid')}"
            for e in exc.errors()[:10]
        )
        return _error(422, f"invalid request: {problems}")

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        request_id = getattr(request.state, "request_id", "")
        log.error("unhandled error", exc_info=exc, extra={"request_id": request_id})
        return _error(500, f"internal error; quote request id {request_id} to the operator")

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"description": "not ready"}})
    async def readyz(request: Request) -> JSONResponse:
        """Readiness: the store answers and the embedder embeds."""
        s = service(request)

        def probe() -> None:
            s.runtime.store.counts()
            s.runtime.embedder.embed(["ready"])

        try:
            await asyncio.wait_for(s.platform.on_store(probe), timeout=10.0)
        except Exception as exc:
            log.warning("not ready: %s", type(exc).__name__)
            return _error(503, "not ready: the store or the embedder does not answer")
        return JSONResponse({"status": "ready"})

    async def metrics_public(request: Request) -> Response:
        return Response(service(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)

    async def metrics_admin(request: Request, caller: Annotated[Caller, Depends(get_caller)]) -> Response:
        if "admin" not in caller.roles:
            return _error(403, "metrics need the admin role")
        return Response(service(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route(
        "/metrics",
        metrics_public if config.metrics_public else metrics_admin,
        methods=["GET"],
        tags=["health"],
        response_class=Response,
    )
    app.include_router(routes.router)
    app.include_router(conversations.router)
    app.include_router(datasets.router)
    app.include_router(agent.router)
    app.include_router(openai.router)
    app.include_router(keys.router)
    app.include_router(approvals.router)
    app.include_router(registry_api.router)
    app.include_router(retention_api.router)
    app.include_router(lineage.router)
    app.include_router(erasure.router)
    app.include_router(admin.router)
    app.include_router(docs.router)
    # the agent's tools over MCP (streamable HTTP), authenticated per request like /v1
    app.router.routes.append(Route("/mcp", mcp, include_in_schema=False))
    install_web(app, web)  # the web workspace: /, /ui/...
    return app
