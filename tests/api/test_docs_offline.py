"""/docs works in a closed network under a CSP without inline script: every byte it needs is ours."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import httpx
import pytest

from strongroom.api.docs import ASSETS
from tests.api.conftest import Env

EXPECTED_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


class _Page(HTMLParser):
    """The URLs a page loads, the bodies of its <script> elements, and any inline style."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.urls += [v or "" for k, v in attrs if k in ("src", "href", "action", "srcset", "poster")]
        if "style" in values:
            self.styles.append(f"<{tag} style={values['style']!r}>")
        if any(k.startswith("on") for k in values):
            self.scripts.append(f"<{tag}> has an inline event handler")
        if tag == "script":
            self._in, self.scripts = "script", [*self.scripts, ""]
        if tag == "style":
            self._in, self.styles = "style", [*self.styles, "<style>"]

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "script":
            self.scripts[-1] += data


def _docs(env: Env) -> tuple[httpx.Response, _Page]:
    with env.client() as c:
        r = c.get("/docs")
    page = _Page()
    page.feed(r.text)
    return r, page


def test_docs_page_loads_only_local_files_and_has_no_inline_script_or_style(env: Env) -> None:
    r, page = _docs(env)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "SwaggerUIBundle" not in r.text  # started by a file, not by the page
    assert len(page.urls) >= 3
    for url in page.urls:
        assert url.startswith("/") and not url.startswith("//"), url
        assert "cdn" not in url.lower()
    assert not re.search(r"https?://|//", r.text.split("<!DOCTYPE html>", 1)[-1]), "an absolute URL in /docs"
    assert page.scripts and all(body.strip() == "" for body in page.scripts), page.scripts
    assert page.styles == []


def test_every_file_the_docs_page_names_is_served_with_its_type(env: Env) -> None:
    _, page = _docs(env)
    loaded = {url.split("?")[0] for url in page.urls}
    assert {
        "/static/swagger/swagger-ui-bundle.js",
        "/static/swagger/swagger-ui.css",
        "/static/swagger/init.js",
    } <= loaded
    with env.client() as c:
        for url in loaded:
            r = c.get(url)
            assert r.status_code == 200, url
            suffix = url[url.rfind(".") :]
            assert r.headers["content-type"].startswith(EXPECTED_TYPES[suffix]), (url, r.headers["content-type"])
            assert r.headers["x-content-type-options"] == "nosniff"
            assert "max-age=" in r.headers["cache-control"]
            assert len(r.content) > 200, url
    with env.client() as c:
        assert len(c.get("/static/swagger/swagger-ui-bundle.js").content) > 1_000_000
        assert len(c.get("/static/swagger/swagger-ui.css").content) > 100_000


def test_the_vendored_files_load_nothing_from_outside(env: Env) -> None:
    with env.client() as c:
        init = c.get("/static/swagger/init.js").text
        css = c.get("/static/swagger/swagger-ui.css").text
    assert "SwaggerUIBundle(" in init
    assert "validatorUrl: null" in init  # else Swagger UI loads a badge from validator.swagger.io
    assert "http" not in init
    # the stylesheet's only url()s are data: URIs: no web fonts, no remote images
    assert "@import" not in css and "@font-face" not in css
    assert all(u.strip("'\"").startswith("data:") for u in re.findall(r"url\(([^)]*)\)", css))


def test_assets_revalidate_by_etag_and_compress(env: Env) -> None:
    with env.client() as c:
        first = c.get("/static/swagger/swagger-ui-bundle.js", headers={"Accept-Encoding": "identity"})
        again = c.get(
            "/static/swagger/swagger-ui-bundle.js",
            headers={"If-None-Match": first.headers["etag"], "Accept-Encoding": "identity"},
        )
        zipped = c.get("/static/swagger/swagger-ui-bundle.js", headers={"Accept-Encoding": "gzip"})
    assert again.status_code == 304 and again.content == b""
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.headers["etag"] != first.headers["etag"]
    assert zipped.content == first.content  # httpx decodes; the wire carried the gzip
    assert int(zipped.headers["content-length"]) < len(first.content) // 2


@pytest.mark.parametrize("name", ["README.md", "LICENSE", "..%2Fdocs.py", "swagger-ui.css.map"])
def test_only_the_listed_assets_are_served(env: Env, name: str) -> None:
    assert name not in ASSETS
    with env.client() as c:
        assert c.get(f"/static/swagger/{name}").status_code == 404


def test_openapi_json_is_still_served_and_fastapi_pages_are_gone(env: Env) -> None:
    with env.client() as c:
        spec = c.get("/openapi.json")
        redoc = c.get("/redoc")
    assert spec.status_code == 200 and spec.json()["openapi"].startswith("3.")
    assert "/docs" not in spec.json()["paths"]
    assert redoc.status_code == 404  # its page loads ReDoc from a CDN
