"""Security headers on every response (pages, static files, the JSON API, errors, refusals),
and pages with no inline script or style, so the strict policy holds them."""

from __future__ import annotations

import re

import httpx
import pytest

from strongroom.api.web import CONTENT_SECURITY_POLICY
from tests.web.conftest import WebEnv

pytestmark = pytest.mark.integration

EXPECTED = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}


def test_the_policy_is_the_strict_one() -> None:
    directives = dict(d.strip().split(" ", 1) for d in CONTENT_SECURITY_POLICY.split(";"))
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"
    assert "unsafe" not in CONTENT_SECURITY_POLICY and "http" not in CONTENT_SECURITY_POLICY


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/ui/signin", 200),
        ("GET", "/", 303),
        ("GET", "/ui/static/app.js", 200),
        ("GET", "/ui/static/app.css", 200),
        ("GET", "/healthz", 200),
        ("GET", "/v1/models", 401),
        ("POST", "/v1/ask", 401),
        ("GET", "/no/such/page", 404),
    ],
)
def test_every_response_carries_the_security_headers(web: WebEnv, method: str, path: str, status: int) -> None:
    r = httpx.request(method, f"{web.url}{path}", json={} if method == "POST" else None)
    assert r.status_code == status
    for name, value in EXPECTED.items():
        assert r.headers.get(name) == value, (path, name)
    assert "strict-transport-security" not in r.headers  # plain http: HSTS would mean nothing


def test_a_refusal_by_the_middleware_carries_them_too(web: WebEnv) -> None:
    too_big = httpx.post(
        f"{web.url}/v1/ask", content=b"x" * (2 * 1024 * 1024), headers={"content-type": "application/json"}
    )
    assert too_big.status_code == 413
    assert too_big.headers["content-security-policy"] == CONTENT_SECURITY_POLICY


def test_pages_hold_no_inline_script_or_style_and_load_nothing_from_elsewhere(web: WebEnv) -> None:
    with httpx.Client(base_url=web.url) as c:
        html = c.get("/ui/signin").text
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts and all(re.search(r'\bsrc="/ui/static/[^"]+"', s) for s in scripts)
    assert "<style" not in html and " style=" not in html and "onclick" not in html.lower()
    assert not re.search(r'(src|href)="(https?:)?//', html)


def test_static_files_have_their_types(web: WebEnv) -> None:
    js = httpx.get(f"{web.url}/ui/static/app.js")
    assert js.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    css = httpx.get(f"{web.url}/ui/static/app.css")
    assert css.headers["content-type"].startswith("text/css")
    assert "url(" not in css.text and "@import" not in css.text and "@font-face" not in css.text
