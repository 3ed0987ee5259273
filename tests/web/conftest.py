"""The web workspace under test: a small corpus, the local OIDC provider (with the code flow),
a scripted model route, the service over real HTTP, and a real browser (Debian's chromium
driven by playwright; never a downloaded browser).

Browser fixtures record every request the page makes and every console message; a test
fails if the page reached anything but 127.0.0.1/localhost or logged an error. Without
chromium the browser tests are skipped on a developer machine and fail in CI (CI=true).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI

from strongroom.api import create_app
from strongroom.api.web import SessionStore
from strongroom.auth import SqliteApiKeyStore
from strongroom.config import Settings
from strongroom.ingest.originals import originals_folder
from strongroom.ingest.pipeline import IngestOptions, ingest
from strongroom.llm.deployments import DeploymentSpec, save_deployment
from strongroom.llm.route_config import RouteStore, parse_target
from strongroom.runtime import open_runtime
from strongroom.testing import HashEmbedder
from strongroom.testing.browser import CHROMIUM, CHROMIUM_ARGS, LOCAL_HOSTS
from strongroom.testing.openai_server import FakeOpenAIServer, Reply
from tests.api.conftest import service_settings
from tests.api.live import live_server
from tests.auth.oidc_provider import CLIENT_ID, Provider, User, serve_provider
from tests.ingest.pdf_fixtures import make_pdf

PUBLIC = ["readers", "public"]
RESEARCH = ["readers", "public", "research"]

#: the corpus: name -> (text, ACL). "Kestrel" is restricted to the group research.
CORPUS: dict[str, tuple[str, frozenset[str]]] = {
    "harbor.txt": (
        "Harbor Bank quarterly report\n\n"
        "Harbor Bank net interest income rose to 812 million dollars in the third quarter. "
        "The Harbor Bank cost of risk fell to 31 basis points. "
        "Deposits at Harbor Bank grew by four percent.\n",
        frozenset({"public"}),
    ),
    "kestrel.txt": (
        "Kestrel acquisition memo\n\n"
        "Project Kestrel would acquire the Lisbon custody business for 1.9 billion euros. "
        "The Kestrel board approves the Kestrel offer in March. "
        "Kestrel synergies are estimated at 140 million euros a year.\n",
        frozenset({"research"}),
    ),
}
PDF_TEXT = [
    "Osprey Fund factsheet\nThe Osprey Fund returned 7.2 percent in the year.\nOsprey fees are 0.4 percent.",
]


@dataclass
class WebEnv:
    url: str
    app: FastAPI
    provider: Provider
    settings: Settings
    model: FakeOpenAIServer
    api_key: str
    screenshots: Path
    doc_ids: dict[str, str] = field(default_factory=dict)

    @property
    def sessions(self) -> SessionStore:
        store: SessionStore = self.app.state.web.sessions
        return store

    def as_user(self, sub: str, groups: list[str]) -> None:
        self.provider.user = User(sub, list(groups))


@pytest.fixture(scope="session")
def web_provider() -> Iterator[Provider]:
    with serve_provider() as p:
        yield p


def _corpus(settings: Settings, folder: Path) -> dict[str, str]:
    runtime = open_runtime(settings, HashEmbedder(64))
    ids: dict[str, str] = {}
    try:
        for name, (text, acl) in CORPUS.items():
            (folder / name).write_text(text)
            report = ingest([folder / name], runtime.store, runtime.embedder, IngestOptions(acl=acl, source="corpus"))
            assert report.ok, report
            ids[name] = runtime.store.versions()[-1].document_id
        (folder / "osprey.pdf").write_bytes(make_pdf(PDF_TEXT))
        kept = originals_folder(settings.home)  # as the platform does: the page can be shown as an image
        opts = IngestOptions(acl=frozenset({"public"}), source="funds", doc_type="factsheet", originals=kept)
        assert ingest([folder / "osprey.pdf"], runtime.store, runtime.embedder, opts).ok
        ids["osprey.pdf"] = runtime.store.versions()[-1].document_id
    finally:
        runtime.close()
    return ids


@pytest.fixture(scope="session")
def web(tmp_path_factory: pytest.TempPathFactory, web_provider: Provider) -> Iterator[WebEnv]:
    home = tmp_path_factory.mktemp("web-home")
    settings = Settings(home=home, embedder="hash", route_groups={"chat": ["research"]})
    ids = _corpus(settings, tmp_path_factory.mktemp("web-docs"))
    _, api_key = SqliteApiKeyStore(settings.catalog_path).create("dev", frozenset(PUBLIC))
    shots = Path(os.environ.get("STRONGROOM_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    with FakeOpenAIServer(Reply.stream("Harbor Bank net interest income rose to 812 million dollars [1].")) as model:
        # the bank's own server in this world: cleared for everything the corpus holds
        spec = DeploymentSpec(backend="openai-compatible", url=model.url, model="m", clearance="restricted", mnpi=True)
        save_deployment(home, "fake-vllm", spec)
        RouteStore(home).set_route("chat", [parse_target("fake-vllm:100")])
        config = service_settings(web_provider, ui_client_id=CLIENT_ID)
        app = create_app(settings, config, embedder=HashEmbedder(64))
        with live_server(app) as url:
            yield WebEnv(url, app, web_provider, settings, model, api_key, shots, ids)


@pytest.fixture
def user(web: WebEnv) -> Iterator[WebEnv]:
    """The provider signs in ``ana`` (public reader) unless a test says otherwise."""
    web.as_user("ana", PUBLIC)
    web.provider.nonce_override = None
    yield web
    web.as_user("ana", PUBLIC)
    web.provider.nonce_override = None


def sign_in(web: WebEnv, client: httpx.Client) -> httpx.Response:
    """The code flow over real HTTP, as a browser follows it: the app, the provider, the app."""
    start = client.get("/ui/auth/login")
    assert start.status_code == 302, start.text
    assert start.headers["location"].startswith(f"{web.provider.issuer}/authorize?")
    approved = client.get(start.headers["location"])
    assert approved.status_code == 302, approved.text
    return client.get(approved.headers["location"])


@pytest.fixture
def browser_client(web: WebEnv) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=web.url, timeout=30) as c:
        yield c


# -- the browser --------------------------------------------------------------------------


def _no_browser(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason}: CI must run the browser tests (.ci/run installs chromium)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")  # not the session: sync playwright holds an event loop on the
def browser() -> Iterator[Any]:  # main thread, and later tests' asyncio.run() would then fail
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _no_browser("the playwright package is not installed (pip install -e '.[dev]')")
    if not (os.access(CHROMIUM, os.X_OK) or shutil.which("chromium")):
        _no_browser(f"no {CHROMIUM} (apt-get install -y chromium)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Watched:
    """A page and what it did: every URL requested, every console error, page errors.

    A test that opens a page it expects refused (a 403 or 404 document: chromium logs its
    status as a console error) says so with :meth:`expect_status`; each such error then must
    appear exactly as often as declared, and every other error still fails the test."""

    page: Any
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)

    def expect_status(self, status: int) -> None:
        self.expected.append(f"console error: Failed to load resource: the server responded with a status of {status}")

    def unexpected_errors(self) -> list[str]:
        left = list(self.errors)
        for wanted in self.expected:
            match = next((e for e in left if e.startswith(wanted)), None)
            assert match is not None, f"the page did not log the expected refusal: {wanted}"
            left.remove(match)
        return left


@pytest.fixture
def page(browser: Any, user: WebEnv) -> Iterator[Watched]:
    context = browser.new_context(base_url=user.url, viewport={"width": 1280, "height": 860})
    context.set_default_timeout(15_000)
    p = context.new_page()
    watched = Watched(p)
    p.on("request", lambda r: watched.requests.append(r.url))
    p.on("console", lambda m: watched.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    p.on("pageerror", lambda e: watched.errors.append(f"page error: {e}"))
    try:
        yield watched
    finally:
        context.close()
    outside = [u for u in watched.requests if urlsplit(u).scheme not in ("data", "about") and not _local(u)]
    assert not outside, f"the page reached beyond this machine: {outside}"
    unexpected = watched.unexpected_errors()
    assert not unexpected, unexpected


def _local(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in LOCAL_HOSTS
