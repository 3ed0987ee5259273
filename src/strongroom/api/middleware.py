"""ASGI middleware: request id, body size limit, metrics and one JSON log line per request.

It wraps the app with the same ASGI interface (starlette's model). It never logs headers,
query strings or bodies, so tokens, keys and questions stay out of the logs.

Two defaults for every response, because responses carry entitled content and an error
must look like any other response:

- ``Cache-Control: no-store`` unless the route set its own (static files excepted): a
  document, a page's text or an audit page is never kept by a browser or a shared cache.
- An unhandled exception becomes the 500 JSON refusal *here*, inside the security-headers
  middleware: Starlette's own handler for ``Exception`` runs outside every user middleware,
  so its 500 carried neither the security headers nor the request id.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from strongroom.api.metrics import Metrics

__all__ = ["JsonFormatter", "ServiceMiddleware"]

log = logging.getLogger("strongroom.api")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
NO_STORE = (b"cache-control", b"no-store")
#: public, versionless files a browser may keep (they set their own validators)
_CACHEABLE_PREFIXES = ("/ui/static/",)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the fields a request log passes in ``extra``."""

    FIELDS = ("request_id", "method", "route", "status", "ms", "principal", "event")

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in self.FIELDS:
            if hasattr(record, name):
                out[name] = getattr(record, name)
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def _too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"the request body is over the {limit:,}-byte limit")


class ServiceMiddleware:
    """Request id in and out, body limits, metrics by route template, a JSON log line."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        max_body_bytes: int,
        max_upload_bytes: int,
        timeout_s: float = 60.0,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        given = headers.get("x-request-id", "")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        upload = scope["method"] == "POST" and scope["path"].rstrip("/") == "/v1/documents"
        limit = self.max_upload_bytes + 64 * 1024 if upload else self.max_body_bytes
        status = 500
        deadline = asyncio.timeout(self.timeout_s)
        running = False  # inside the deadline: the app is working on the response
        responded = False
        cacheable = scope["path"].startswith(_CACHEABLE_PREFIXES)

        async def send_wrapper(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                if running:
                    deadline.reschedule(None)  # the response has started: a stream may run on
                status = int(message["status"])
                responded = True
                out = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
                if not cacheable and not any(name.lower() == b"cache-control" for name, _ in out):
                    out.append(NO_STORE)
                message["headers"] = out
            await send(message)

        received = 0

        async def receive_wrapper() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _too_large(limit)
            return message

        try:
            declared = int(headers.get("content-length", "0") or "0")
        except ValueError:
            declared = 0
        try:
            if declared > limit:
                await self._refuse(send_wrapper, 413, "request_too_large", str(_too_large(limit).detail))
            else:
                try:
                    async with deadline:
                        running = True
                        try:
                            await self.app(scope, receive_wrapper, send_wrapper)
                        except Exception:
                            if responded:  # too late for a refusal: the server closes the connection
                                raise
                            log.error("unhandled error", exc_info=True, extra={"request_id": request_id})
                            await self._refuse(
                                send_wrapper,
                                500,
                                "internal_error",
                                f"internal error; quote request id {request_id} to the operator",
                            )
                except TimeoutError:
                    if not deadline.expired():
                        raise
                    running = False
                    self.metrics.timeouts.inc()
                    await self._refuse(
                        send_wrapper,
                        504,
                        "timeout",
                        f"the request took over {self.timeout_s:g} s; narrow it (smaller k, a filter) or retry later",
                    )
        finally:
            route_obj = scope.get("route")
            route = getattr(route_obj, "path", None) or ("unmatched" if status == 404 else "other")
            elapsed = time.perf_counter() - started
            self.metrics.requests.labels(route, scope["method"], str(status)).inc()
            self.metrics.latency.labels(route, scope["method"]).observe(elapsed)
            log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": scope["method"],
                    "route": route,
                    "status": status,
                    "ms": round(elapsed * 1000, 2),
                    "principal": state.get("principal", ""),
                },
            )

    @staticmethod
    async def _refuse(send: Send, status: int, kind: str, message: str) -> None:
        body = json.dumps({"error": {"type": kind, "message": message}}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
