"""The OpenAPI page at ``/docs``, served whole by the application: no CDN, no inline script.

FastAPI's own ``/docs`` loads Swagger UI from a CDN and starts it with an inline ``<script>``,
so in a closed network, or under a Content-Security-Policy of ``script-src 'self'``, it shows
a blank page. This router serves a vendored Swagger UI (``static/swagger/README.md`` names the
version and source) and a page that loads only same-origin files. Turn FastAPI's off and
include this router instead:

>>> app = FastAPI(docs_url=None, redoc_url=None)  # doctest: +SKIP
>>> app.include_router(docs.router)  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import html
from dataclasses import dataclass
from importlib import resources

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

__all__ = ["ASSETS", "SWAGGER_UI_VERSION", "router"]

SWAGGER_UI_VERSION = "5.35.0"
PREFIX = "/static/swagger"
#: the files under static/swagger/ that are served, and their media types; nothing else is
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "init.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
# A day, then a revalidation that the ETag makes cheap: the URLs carry no version, and an
# upgrade of strongroom should reach browsers without anyone clearing a cache.
_ASSET_CACHE = "public, max-age=86400"
_COMPRESSIBLE = ("text/",)

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class _Asset:
    body: bytes
    gzipped: bytes | None
    etag: str
    media_type: str


@functools.cache
def _asset(name: str) -> _Asset:
    body = (resources.files("strongroom.api") / "static" / "swagger" / name).read_bytes()
    media_type = ASSETS[name]
    gzipped = gzip.compress(body, mtime=0) if media_type.startswith(_COMPRESSIBLE) else None
    return _Asset(body, gzipped, f'"{hashlib.sha256(body).hexdigest()[:32]}"', media_type)


def _page(root_path: str) -> str:
    base = html.escape(root_path + PREFIX, quote=True)
    spec = html.escape(root_path + "/openapi.json", quote=True)
    # Everything the page needs is same-origin, and the spec's URL reaches init.js as a data
    # attribute, so the page has no inline script or style for a CSP to allow.
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>strongroom API</title>
<link rel="stylesheet" href="{base}/swagger-ui.css">
<link rel="icon" type="image/png" href="{base}/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{spec}"></div>
<script src="{base}/swagger-ui-bundle.js"></script>
<script src="{base}/init.js"></script>
</body>
</html>
"""


@router.get("/docs", response_class=HTMLResponse)
async def swagger_ui(request: Request) -> HTMLResponse:
    """The interactive API reference (Swagger UI) over ``/openapi.json``."""
    return HTMLResponse(_page(request.scope.get("root_path", "")), headers={"Cache-Control": "no-cache"})


@router.get(PREFIX + "/{name}")
async def swagger_asset(name: str, request: Request) -> Response:
    """One of the vendored Swagger UI files, gzipped where the client accepts it."""
    if name not in ASSETS:
        raise HTTPException(404, f"no such file {name!r} under {PREFIX}")
    asset = _asset(name)
    headers = {"Cache-Control": _ASSET_CACHE, "ETag": asset.etag, "X-Content-Type-Options": "nosniff"}
    body = asset.body
    if asset.gzipped is not None:
        headers["Vary"] = "Accept-Encoding"
        if "gzip" in request.headers.get("accept-encoding", ""):
            # a different representation, so a different strong ETag
            body, headers["Content-Encoding"], headers["ETag"] = asset.gzipped, "gzip", asset.etag[:-1] + '-gzip"'
    if headers["ETag"] in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=asset.media_type, headers=headers)
