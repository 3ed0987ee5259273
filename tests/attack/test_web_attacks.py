"""Attacks on the web workspace and the features that came with it, from outside, over real HTTP:
the OIDC sign-in (fixation, open redirects, replayed and forged tokens), the session cookie as a
credential of the JSON API (CSRF on every state-changing route, cross-origin reads), the page
images (ids of other documents, pages out of range), conversations and share links (identical
refusals), hostile text in the pages, /docs, caching and security headers on every response,
errors included, and what the logs keep.

One service over a small corpus: ``harbor`` (public), ``kestrel`` (research), a PDF whose
title and text are hostile markup (public), a research PDF, and a public PDF with a hostile
page size. The local OIDC provider signs browsers in as ``provider.user``.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from strongroom.api import create_app
from strongroom.api.web.signin import OidcClient
from strongroom.api.web.signin import start as start_signin
from strongroom.config import Settings
from strongroom.errors import AuthenticationError
from strongroom.ingest.originals import originals_folder
from strongroom.ingest.parsers.pdf_pages import MAX_PIXELS
from strongroom.ingest.pipeline import IngestOptions, ingest
from strongroom.runtime import open_runtime
from strongroom.testing import HashEmbedder
from tests.api.conftest import service_settings
from tests.api.live import live_server
from tests.auth.oidc_provider import CLIENT_ID, Provider, User
from tests.ingest.pdf_fixtures import make_pdf

pytestmark = pytest.mark.integration

XSS = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
PUBLIC = ["readers", "public"]
RESEARCH = ["readers", "public", "research"]
ROOT = ["readers", "ingesters", "admins", "public", "research"]
#: headers that differ between any two responses, whatever they answer
VARYING = {"x-request-id", "date"}
NOWHERE = "0" * 64


@dataclass
class Env:
    url: str
    app: FastAPI
    provider: Provider
    settings: Settings
    docs: dict[str, tuple[str, str]]  # name -> (document id, version id)

    def bearer(self, groups: list[str], sub: str = "ana") -> httpx.Client:
        token = self.provider.token(sub=sub, groups=groups)
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def page_url(self, name: str, page: int | str = 1, doc: str | None = None) -> str:
        document_id, version_id = self.docs[name]
        return f"/v1/documents/{doc or document_id}/versions/{version_id}/pages/{page}"


def _pdf_with_page(pages: list[str], media_box: bytes, info: dict[str, str] | None = None) -> bytes:
    data = make_pdf(pages, info)
    assert len(media_box) == len(b"612 792")  # same length: the cross-reference offsets stay right
    return data.replace(b"/MediaBox [0 0 612 792]", b"/MediaBox [0 0 " + media_box + b"]")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, provider: Provider) -> Iterator[Env]:
    home = tmp_path_factory.mktemp("web-attack-home")
    folder = tmp_path_factory.mktemp("web-attack-docs")
    settings = Settings(home=home, embedder="hash")
    corpus: list[tuple[str, bytes, set[str]]] = [
        ("harbor.txt", b"Harbor Bank report\n\nHarbor Bank net interest income rose to 812 million.\n", {"public"}),
        ("kestrel.txt", b"Kestrel memo\n\nProject Kestrel would buy the Lisbon custody arm.\n", {"research"}),
        ("hostile.pdf", make_pdf([f"Osprey fund {XSS} returned 7 percent."], {"Title": XSS}), {"public"}),
        ("secret.pdf", make_pdf(["Heron merger terms: 31 euros a share."]), {"research"}),
        ("tall.pdf", _pdf_with_page(["Egret fund tall page."], b"1 14400"), {"public"}),
    ]
    runtime = open_runtime(settings, HashEmbedder(64))
    docs: dict[str, tuple[str, str]] = {}
    try:
        for name, data, acl in corpus:
            (folder / name).write_bytes(data)
            opts = IngestOptions(acl=frozenset(acl), source="corpus", originals=originals_folder(home))
            assert ingest([folder / name], runtime.store, runtime.embedder, opts).ok, name
            version = runtime.store.versions()[-1]
            docs[name] = (version.document_id, version.id)
    finally:
        runtime.close()
    app = create_app(settings, service_settings(provider, ui_client_id=CLIENT_ID), embedder=HashEmbedder(64))
    with live_server(app) as url:
        yield Env(url, app, provider, settings, docs)


@pytest.fixture
def as_user(env: Env) -> Iterator[Env]:
    yield env
    env.provider.user = User()
    env.provider.nonce_override = None


def sign_in(env: Env, client: httpx.Client, sub: str = "ana", groups: list[str] = PUBLIC, next: str = "") -> str:
    """Sign ``client`` in through the provider as ``sub``; the session's CSRF token."""
    env.provider.user = User(sub, list(groups))
    start = client.get("/ui/auth/login", params={"next": next} if next else None)
    assert start.status_code == 302, start.text
    back = client.get(start.headers["location"])
    done = client.get(back.headers["location"])
    assert done.status_code == 200, done.text
    return csrf_of(client.get("/ui/ask").text)


def csrf_of(page: str) -> str:
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', page)
    assert match, "the page carries no CSRF token"
    return match.group(1)


def browser(env: Env) -> httpx.Client:
    return httpx.Client(base_url=env.url, timeout=30)


def fingerprint(r: httpx.Response) -> tuple[int, bytes, list[tuple[str, str]]]:
    """What an attacker compares: status, body and every header but the per-request ones."""
    return r.status_code, r.content, sorted((k, v) for k, v in r.headers.items() if k not in VARYING)


# -- signing in ----------------------------------------------------------------------------


def test_signing_in_never_adopts_a_session_id_the_browser_already_held(as_user: Env) -> None:
    """Fixation: the attacker plants their own live session id, or an id of their choosing,
    in the victim's browser; signing in issues a new id, and the planted one stays the attacker's."""
    with browser(as_user) as attacker, browser(as_user) as victim:
        sign_in(as_user, attacker, "mallory", PUBLIC)
        planted = attacker.cookies["sr_session"]
        for fixed in (planted, "chosen-by-the-attacker-" + "x" * 20):
            victim.cookies.clear()
            victim.cookies.set("sr_session", fixed, domain=urlsplit(as_user.url).hostname or "", path="/")
            sign_in(as_user, victim, "rita", RESEARCH)
            issued = victim.cookies["sr_session"]
            assert issued != fixed
            assert as_user.app.state.web.sessions.lookup(issued).caller.name == "rita"
        held = as_user.app.state.web.sessions.lookup(planted)
        assert held is not None and held.caller.name == "mallory" and "research" not in held.caller.principal.groups


HOSTILE_NEXT = [
    "https://evil.example/",
    "//evil.example/",
    "/\\evil.example",
    "/ui/../../\\evil.example",
    "javascript:alert(1)",
    "/ui/ask\r\nSet-Cookie: sr_session=x",
    "/ui//evil.example",
    "/ui/%2F%2Fevil.example",
]


@pytest.mark.parametrize("target", HOSTILE_NEXT)
def test_sign_in_returns_to_this_site_only(as_user: Env, target: str) -> None:
    with browser(as_user) as client:
        start = client.get("/ui/auth/login", params={"next": target})
        done = client.get(client.get(start.headers["location"]).headers["location"])
        assert done.status_code == 200
        refresh = re.search(r'http-equiv="refresh" content="0;url=([^"]*)"', done.text)
        assert refresh
        for where in (
            html.unescape(refresh.group(1)),
            client.get("/ui/signin", params={"next": target}).headers["location"],
        ):
            resolved = urlsplit(urljoin(as_user.url + "/ui/signin", where.strip()))
            assert (resolved.scheme, resolved.netloc) == ("http", urlsplit(as_user.url).netloc), where
            assert resolved.path.startswith("/ui/") and "\n" not in where and "\r" not in where
            assert "\\" not in where and "//" not in resolved.path


def test_the_return_address_is_validated_whole(as_user: Env) -> None:
    with browser(as_user) as client:
        start = client.get("/ui/auth/login", params={"next": "/ui/ask\n"})
        done = client.get(client.get(start.headers["location"]).headers["location"])
    assert 'content="0;url=/ui/ask"' in done.text


def test_a_used_code_and_state_cannot_sign_in_again(as_user: Env) -> None:
    with browser(as_user) as victim, browser(as_user) as thief:
        start = victim.get("/ui/auth/login")
        flow = victim.cookies["sr_signin"]
        callback = victim.get(start.headers["location"]).headers["location"]
        assert victim.get(callback).status_code == 200
        thief.cookies.set("sr_signin", flow, path="/ui/auth")  # even with the flow cookie copied
        for client in (victim, thief):
            again = client.get(callback)
            assert again.status_code == 400
            assert not any(c.startswith("sr_session=") for c in again.headers.get_list("set-cookie"))
        assert thief.get("/v1/conversations").status_code == 401


def test_the_providers_error_is_shown_as_text(as_user: Env) -> None:
    with browser(as_user) as client:
        client.get("/ui/auth/login")
        page = client.get("/ui/auth/callback", params={"error": XSS, "state": "x"})
        assert page.status_code == 401
        assert "<script>alert" not in page.text and "<img src=x" not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


def test_the_sign_in_cookies_are_scoped_and_hidden_from_script(as_user: Env) -> None:
    with browser(as_user) as client:
        signin = client.get("/ui/signin").headers.get_list("set-cookie")
        flow = client.get("/ui/auth/login").headers.get_list("set-cookie")
    login_csrf = next(c for c in signin if c.startswith("sr_login_csrf="))
    assert "HttpOnly" in login_csrf and "SameSite=strict" in login_csrf and "Path=/ui" in login_csrf
    flow_cookie = next(c for c in flow if c.startswith("sr_signin="))
    assert "HttpOnly" in flow_cookie and "SameSite=lax" in flow_cookie and "Path=/ui/auth" in flow_cookie
    assert "Max-Age=600" in flow_cookie


# -- forged tokens at the token endpoint ---------------------------------------------------


def _forgeries(provider: Provider) -> dict[str, tuple[str, str]]:
    """Each case: (ID token, access token) as a hostile or broken token endpoint could return them."""
    now = int(time.time())
    kid = provider.published[0]
    good_id = {"aud": CLIENT_ID, "nonce": "NONCE"}

    def signed(sub: str = "ana", **claims: Any) -> str:
        return provider.token(sub=sub, groups=PUBLIC, **claims)

    stray = provider.add_key("RS256", publish=False)
    return {
        "alg none": (provider.unsigned(kid, provider.claims("ana", PUBLIC, **good_id)), signed()),
        "HS256 keyed with the public key": (
            provider.hs256_with_public_key(kid, provider.claims("ana", PUBLIC, **good_id)),
            signed(),
        ),
        "an access token as the ID token (audience: the API)": (signed(nonce="NONCE"), signed()),
        "expired": (signed(exp=now - 3600, iat=now - 7200, nbf=now - 7200, **good_id), signed()),
        "another issuer": (signed(iss="https://evil.example", **good_id), signed()),
        "a key the provider never published": (
            provider.token(sub="ana", groups=PUBLIC, kid=stray, **good_id),
            signed(),
        ),
        "no nonce": (signed(aud=CLIENT_ID), signed()),
        "ID and access tokens for different users": (signed("mallory", **good_id), signed("ana")),
        "an ID token as the access token (audience: the client)": (signed(**good_id), signed(aud=CLIENT_ID)),
    }


def _exchange(env: Env, id_token: str, access_token: str) -> Any:
    """Run the real OidcClient against a token endpoint that answers with these tokens; the
    ID token's signature is checked against the real provider's published keys."""
    config = service_settings(env.provider, ui_client_id=CLIENT_ID)
    pending = start_signin("/ui/ask")
    pending = type(pending)(pending.state, "NONCE", pending.verifier, pending.next)

    def token_endpoint(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"id_token": id_token, "access_token": access_token, "token_type": "Bearer"})

    async def run() -> Any:
        client = OidcClient(config, env.app.state.service.auth)
        client._endpoints["token_endpoint"] = "https://idp.invalid/token"
        await client._http.aclose()
        client._http = httpx.AsyncClient(transport=httpx.MockTransport(token_endpoint))
        try:
            return await client.exchange("code", pending, f"{env.url}/ui/auth/callback")
        finally:
            await client.aclose()

    return asyncio.run(run())


def test_a_well_formed_pair_of_tokens_signs_in(env: Env) -> None:
    """The control for the forgeries below: the same path accepts a good pair."""
    good_id = env.provider.token(sub="ana", groups=PUBLIC, aud=CLIENT_ID, nonce="NONCE")
    caller = _exchange(env, good_id, env.provider.token(sub="ana", groups=PUBLIC))
    assert caller.name == "ana" and caller.method == "oidc"


@pytest.mark.parametrize(
    "case",
    [
        "alg none",
        "HS256 keyed with the public key",
        "an access token as the ID token (audience: the API)",
        "expired",
        "another issuer",
        "a key the provider never published",
        "no nonce",
        "ID and access tokens for different users",
        "an ID token as the access token (audience: the client)",
    ],
)
def test_forged_tokens_from_the_token_endpoint_are_refused(env: Env, case: str) -> None:
    id_token, access_token = _forgeries(env.provider)[case]
    with pytest.raises(AuthenticationError):
        _exchange(env, id_token, access_token)


# -- CSRF: every state-changing route reachable with the cookie -----------------------------


@dataclass
class Victim:
    client: httpx.Client
    csrf: str
    conversation: str
    turn: str
    key_id: str


@pytest.fixture(scope="module")
def victim(env: Env) -> Iterator[Victim]:
    """An admin and ingester signed in, with a conversation, a rated turn and an API key."""
    client = browser(env)
    csrf = sign_in(env, client, "root", ROOT)
    env.provider.user = User()
    ok = {"X-CSRF-Token": csrf}
    conversation = client.post("/v1/conversations", json={"title": "mine"}, headers=ok).json()["conversation_id"]
    turn = client.post(
        f"/v1/conversations/{conversation}/ask", json={"question": "Harbor Bank net interest income?"}, headers=ok
    ).json()["turn_id"]
    key = client.post("/v1/keys", json={"owner": "ops", "groups": ["public"]}, headers=ok)
    assert key.status_code == 201, key.text
    try:
        yield Victim(client, csrf, conversation, turn, key.json()["id"])
    finally:
        client.close()


def _state_changes(env: Env, v: Victim) -> list[tuple[str, str, dict[str, Any]]]:
    harbor, _ = env.docs["harbor.txt"]
    c, t = v.conversation, v.turn
    return [
        ("POST", "/v1/conversations", {"json": {"title": "planted"}}),
        ("POST", f"/v1/conversations/{c}/ask", {"json": {"question": "planted question"}}),
        ("POST", f"/v1/conversations/{c}/turns/{t}/feedback", {"json": {"rating": "down", "comment": "planted"}}),
        ("POST", f"/v1/conversations/{c}/share", {"json": {}}),
        ("DELETE", f"/v1/conversations/{c}", {}),
        ("POST", "/v1/keys", {"json": {"owner": "planted", "groups": ["research"]}}),
        ("DELETE", f"/v1/keys/{v.key_id}", {}),
        ("POST", "/v1/documents", {"files": {"file": ("planted.txt", b"planted text")}, "data": {"acl": "public"}}),
        ("PUT", f"/v1/documents/{harbor}/acl", {"json": {"acl": ["research"]}}),
        ("DELETE", f"/v1/documents/{harbor}", {}),
        ("POST", "/v1/ask", {"json": {"question": "Harbor?"}}),
        ("POST", "/v1/search", {"json": {"query": "Harbor"}}),
        (
            "POST",
            "/v1/chat/completions",
            {"json": {"model": "strongroom-rag", "messages": [{"role": "user", "content": "x"}]}},
        ),
        # what a cross-site HTML form can send: no custom header, a "simple" content type
        ("POST", "/v1/ask", {"content": b'{"question": "Harbor?"}', "headers": {"content-type": "text/plain"}}),
    ]


def test_no_state_changes_with_the_cookie_alone_or_a_wrong_token(env: Env, victim: Victim) -> None:
    with browser(env) as other:
        foreign = sign_in(env, other, "mallory", PUBLIC)  # a real token, of another session
    env.provider.user = User()
    before = _state(victim)
    for method, path, kwargs in _state_changes(env, victim):
        for token in (None, "", foreign, victim.csrf[:-1] + ("A" if victim.csrf[-1] != "A" else "B")):
            headers = dict(kwargs.get("headers", {}))
            if token is not None:
                headers["X-CSRF-Token"] = token
            r = victim.client.request(method, path, **{**kwargs, "headers": headers})
            assert r.status_code == 403, (method, path, token, r.status_code, r.text)
            assert "CSRF" in r.json()["error"]["message"], (method, path)
    assert _state(victim) == before
    out = victim.client.post("/ui/auth/logout", data={"csrf_token": foreign})
    assert out.status_code == 403 and victim.client.get("/v1/conversations").status_code == 200


def _state(v: Victim) -> tuple[Any, ...]:
    c = v.client
    conversation = c.get(f"/v1/conversations/{v.conversation}").json()
    return (
        c.get("/v1/conversations").json(),
        conversation,
        sorted((k["id"], k["status"]) for k in c.get("/v1/keys").json()),
        c.get("/v1/documents").json(),
        c.get("/v1/jobs").json(),
    )


def test_a_credential_header_never_falls_back_to_the_cookie(env: Env, victim: Victim) -> None:
    for value in ("Bearer forged", "Basic cm9vdDpyb290", "Bearer " + "sr_" + "x" * 40):
        r = victim.client.get("/v1/conversations", headers={"Authorization": value})
        assert r.status_code == 401


def test_no_other_origin_is_allowed_to_read_or_preflight(env: Env, victim: Victim) -> None:
    evil = {"Origin": "https://evil.example"}
    read = victim.client.get("/v1/conversations", headers=evil)
    preflight = victim.client.options(
        "/v1/ask",
        headers={**evil, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-csrf-token"},
    )
    for r in (read, preflight):
        assert not any(k.startswith("access-control-") for k in r.headers), dict(r.headers)


# -- page images, pages and identical refusals --------------------------------------------


def test_another_documents_version_and_a_refused_page_look_like_nothing(env: Env) -> None:
    """ana (public) asks for the research PDF's page, its image and a highlight; for a research
    version under a public document's id; and for ids that do not exist: one answer for all."""
    harbor, _ = env.docs["harbor.txt"]
    with env.bearer(PUBLIC) as ana:
        for suffix in ("", "/image", "/highlight?start=0&end=5"):
            answers = [
                ana.get(env.page_url("secret.pdf") + suffix),
                ana.get(env.page_url("secret.pdf", doc=harbor) + suffix),
                ana.get(f"/v1/documents/{NOWHERE[:32]}/versions/{NOWHERE}/pages/1{suffix}"),
                ana.get(f"/v1/documents/{harbor}/versions/{NOWHERE}/pages/1{suffix}"),
            ]
            assert answers[0].status_code == 404, answers[0].text
            assert len({repr(fingerprint(r)) for r in answers}) == 1, [fingerprint(r) for r in answers]


@pytest.mark.parametrize("page", ["0", "-1", "2", "2147483648", str(2**63), str(10**20)])
def test_a_page_outside_the_document_is_not_found_never_an_error(env: Env, page: str) -> None:
    harbor, _ = env.docs["harbor.txt"]
    with env.bearer(PUBLIC) as ana:
        for suffix in ("", "/image", "/highlight?start=0&end=5"):
            r = ana.get(env.page_url("hostile.pdf", page) + suffix)
            nothing = ana.get(f"/v1/documents/{harbor}/versions/{NOWHERE}/pages/1{suffix}")
            assert fingerprint(r) == fingerprint(nothing), (page, suffix, r.status_code, r.text)


@pytest.mark.parametrize(
    ("start", "end"), [(-1, 5), (5, 5), (6, 5), (0, 10**6), (0, 10**30), (10**30, 10**30 + 1), (0, -1)]
)
def test_a_span_outside_the_page_is_refused_as_invalid(env: Env, start: int, end: int) -> None:
    with env.bearer(PUBLIC) as ana:
        r = ana.get(env.page_url("hostile.pdf") + "/highlight", params={"start": start, "end": end})
    assert r.status_code == 422, r.text
    assert r.headers["content-security-policy"] and "no-store" in r.headers["cache-control"]


def test_a_page_of_hostile_size_is_drawn_within_the_pixel_budget(env: Env) -> None:
    with env.bearer(PUBLIC) as ana:
        r = ana.get(env.page_url("tall.pdf") + "/image")
    assert r.status_code == 200, r.text
    width, height = int.from_bytes(r.content[16:20], "big"), int.from_bytes(r.content[20:24], "big")
    assert 0 < width * height <= MAX_PIXELS and "no-store" in r.headers["cache-control"]


def test_a_text_version_has_no_image_and_says_nothing_more_to_a_stranger(env: Env) -> None:
    with env.bearer(PUBLIC) as ana, env.bearer(PUBLIC, sub="ben") as ben:
        readable = ana.get(env.page_url("harbor.txt") + "/image")
        assert readable.status_code == 404  # a reader learns it is not a PDF: it may read it
        refused = ben.get(env.page_url("kestrel.txt") + "/image")
        nothing = ben.get(f"/v1/documents/{NOWHERE[:32]}/versions/{NOWHERE}/pages/1/image")
        assert fingerprint(refused) == fingerprint(nothing)


# -- conversations and share links ---------------------------------------------------------


def test_someone_elses_conversation_is_the_same_404_as_none_for_every_route(env: Env) -> None:
    with env.bearer(RESEARCH, sub="rita") as rita, env.bearer(RESEARCH, sub="mallory") as mallory:
        mine = rita.post("/v1/conversations", json={}).json()["conversation_id"]
        turn = rita.post(f"/v1/conversations/{mine}/ask", json={"question": "Project Kestrel Lisbon?"}).json()
        for template in (
            ("GET", "/v1/conversations/{c}", None),
            ("POST", "/v1/conversations/{c}/ask", {"question": "and the price?"}),
            ("POST", "/v1/conversations/{c}/turns/{t}/feedback", {"rating": "up"}),
            ("POST", "/v1/conversations/{c}/share", {}),
            ("DELETE", "/v1/conversations/{c}", None),
        ):
            method, path, body = template
            theirs = mallory.request(method, path.format(c=mine, t=turn["turn_id"]), json=body)
            nothing = mallory.request(method, path.format(c="x" * 32, t="y" * 32), json=body)
            assert theirs.status_code == 404 and fingerprint(theirs) == fingerprint(nothing), (method, path)
        assert rita.get(f"/v1/conversations/{mine}").json()["turns"][0]["question"] == "Project Kestrel Lisbon?"
        assert "Lisbon" not in mallory.get("/v1/feedback/export").text


def test_a_link_citing_what_the_opener_may_not_read_looks_like_no_link(env: Env, as_user: Env) -> None:
    with env.bearer(RESEARCH, sub="rita") as rita, env.bearer(PUBLIC, sub="ben") as ben:
        c = rita.post("/v1/conversations", json={}).json()["conversation_id"]
        answer = rita.post(f"/v1/conversations/{c}/ask", json={"question": "What would Project Kestrel buy?"}).json()
        assert any(x["document_id"] == env.docs["kestrel.txt"][0] for x in answer["answer"]["citations"])
        token = rita.post(f"/v1/conversations/{c}/share", json={}).json()["token"]
        early = rita.post(f"/v1/conversations/{c}/share", json={"as_of": "2001-01-01"}).json()["token"]
        assert rita.get(f"/v1/shared/{token}").status_code == 200
        refused, before, nothing = (ben.get(f"/v1/shared/{t}") for t in (token, early, "z" * 32))
        assert refused.status_code == 404 and fingerprint(refused) == fingerprint(nothing)
        assert fingerprint(rita.get(f"/v1/shared/{early}")) == fingerprint(rita.get("/v1/shared/" + "z" * 32))
        assert fingerprint(before) == fingerprint(nothing)
    with browser(env) as page:
        sign_in(env, page, "ben", PUBLIC)
        shown, none = page.get(f"/ui/shared/{token}"), page.get("/ui/shared/" + "z" * 32)
        assert shown.status_code == none.status_code == 404 and shown.text == none.text
        assert "Lisbon" not in shown.text


# -- hostile text in the pages ----------------------------------------------------------------


def test_hostile_titles_questions_and_quotes_are_escaped_in_every_page(env: Env, as_user: Env) -> None:
    hostile, _ = env.docs["hostile.pdf"]
    with browser(env) as client:
        csrf = sign_in(env, client, "ana", PUBLIC)
        ok = {"X-CSRF-Token": csrf}
        c = client.post("/v1/conversations", json={"title": XSS}, headers=ok).json()["conversation_id"]
        asked = client.post(f"/v1/conversations/{c}/ask", json={"question": f"Osprey fund {XSS}?"}, headers=ok)
        assert asked.status_code == 200 and XSS in asked.text.replace("\\", "")  # the API keeps it as data
        token = client.post(f"/v1/conversations/{c}/share", json={}, headers=ok).json()["token"]
        pages = {
            "documents": client.get("/ui/documents", params={"q": XSS}),
            "documents listed": client.get("/ui/documents"),
            "document": client.get(f"/ui/documents/{hostile}"),
            "history": client.get("/ui/history"),
            "shared": client.get(f"/ui/shared/{token}"),
            "not found": client.get(f"/ui/{XSS}"),
        }
    for name, r in pages.items():
        assert r.status_code in (200, 404), (name, r.status_code)
        assert "<script>alert" not in r.text and "<img src=x" not in r.text, name
        assert "'unsafe-inline'" not in r.headers["content-security-policy"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages["history"].text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages["document"].text


def test_docs_ignores_hostile_query_parameters(env: Env) -> None:
    plain = httpx.get(f"{env.url}/docs")
    hostile = httpx.get(
        f"{env.url}/docs", params={"url": "https://evil.example/spec.json", "configUrl": "javascript:alert(1)"}
    )
    assert plain.status_code == hostile.status_code == 200 and plain.text == hostile.text
    init = httpx.get(f"{env.url}/static/swagger/init.js").text
    assert "queryConfigEnabled" not in init  # Swagger UI's default: the page's query configures nothing
    traversal = httpx.get(f"{env.url}/static/swagger/..%2F..%2Fdocs.py")
    assert traversal.status_code == 404 and "content-security-policy" in traversal.headers


# -- headers on every response, errors included ----------------------------------------------


CONTENT_GETS = [
    "/v1/documents",
    "/v1/documents/{harbor}",
    "/v1/documents/{harbor}/versions/{harbor_v}/pages/1",
    "/v1/documents/{pdf}/versions/{pdf_v}/pages/1/image",
    "/v1/documents/{pdf}/versions/{pdf_v}/pages/1/highlight?start=0&end=5",
    "/v1/documents/{nowhere}",
    "/v1/jobs",
    "/v1/audit?limit=1",
    "/v1/keys",
    "/v1/conversations",
    "/v1/feedback/export",
    "/v1/models",
    "/v1/admin/audit/verify",
    "/openapi.json",
]


def test_no_content_response_may_be_cached(env: Env) -> None:
    harbor, harbor_v = env.docs["harbor.txt"]
    pdf, pdf_v = env.docs["hostile.pdf"]
    ids = {"harbor": harbor, "harbor_v": harbor_v, "pdf": pdf, "pdf_v": pdf_v, "nowhere": NOWHERE[:32]}
    with env.bearer(ROOT, sub="root") as root:
        responses = {path: root.get(path.format(**ids)) for path in CONTENT_GETS}
        responses["POST /v1/search"] = root.post("/v1/search", json={"query": "Harbor"})
        responses["POST /v1/ask"] = root.post("/v1/ask", json={"question": "Harbor Bank income?"})
        c = root.post("/v1/conversations", json={}).json()["conversation_id"]
        t = root.post(f"/v1/conversations/{c}/ask", json={"question": "Harbor Bank income?"}).json()["turn_id"]
        responses["feedback"] = root.post(f"/v1/conversations/{c}/turns/{t}/feedback", json={"rating": "up"})
        responses["share"] = root.post(f"/v1/conversations/{c}/share", json={})
        responses["401"] = httpx.get(f"{env.url}/v1/documents")
    for what, r in responses.items():
        assert r.status_code < 500, (what, r.status_code)
        assert "no-store" in r.headers.get("cache-control", ""), (what, r.headers.get("cache-control"))


def test_an_unhandled_error_carries_the_security_headers_and_a_request_id(env: Env) -> None:
    app = create_app(env.settings, service_settings(env.provider), embedder=HashEmbedder(64))

    async def boom() -> None:
        raise RuntimeError("a bug with a secret in its message: hunter2")

    app.add_api_route("/v1/boom", boom, methods=["GET"])
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/v1/boom")
    assert r.status_code == 500 and "hunter2" not in r.text
    assert (
        r.json()["error"]["message"] == f"internal error; quote request id {r.headers['x-request-id']} to the operator"
    )
    for name in ("content-security-policy", "x-content-type-options", "x-frame-options", "referrer-policy"):
        assert name in r.headers, name
    assert r.headers["cache-control"] == "no-store"


# -- the logs ---------------------------------------------------------------------------------


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.INFO:
            self.lines.append(f"{record.getMessage()} {record.__dict__}")


def test_info_logs_keep_no_secret_question_document_text_or_credential(env: Env, as_user: Env) -> None:
    keep = _Keep()
    # not httpx: this test's own client logs its URLs there
    loggers = [logging.getLogger(n) for n in ("strongroom", "uvicorn")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(keep)
        logger.setLevel(logging.DEBUG)  # as ``strongroom serve --log-level debug``: INFO and above are checked
    secret = "password: " + secrets.token_hex(8)
    try:
        with browser(env) as client:
            start = client.get("/ui/auth/login")
            callback = client.get(start.headers["location"]).headers["location"]
            code = parse_qs(urlsplit(callback).query)["code"][0]
            client.get(callback)
            csrf = csrf_of(client.get("/ui/ask").text)
            ok = {"X-CSRF-Token": csrf}
            c = client.post("/v1/conversations", json={"title": secret}, headers=ok).json()["conversation_id"]
            client.post(f"/v1/conversations/{c}/ask", json={"question": f"Harbor Bank income? {secret}"}, headers=ok)
            client.get(env.page_url("harbor.txt"))
            token = client.post(f"/v1/conversations/{c}/share", json={}, headers=ok).json()["token"]
            client.get(f"/v1/shared/{token}")
            sid = client.cookies["sr_session"]
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(keep)
            logger.setLevel(level)
    logged = "\n".join(keep.lines)
    assert keep.lines  # the request lines were seen: a test that cannot fail is a defect
    for value in (secret.split(": ")[1], "812 million", sid, csrf, code, token):
        assert value not in logged, value


# -- a session that outlives its credential --------------------------------------------------


def test_revoking_the_key_ends_a_session_it_started(env: Env) -> None:
    config = service_settings(env.provider, ui_client_id=CLIENT_ID, ui_api_key_login=True)
    with TestClient(create_app(env.settings, config, embedder=HashEmbedder(64)), follow_redirects=False) as dev:
        key = dev.post(
            "/v1/keys",
            json={"owner": "laptop", "groups": PUBLIC},
            headers={"Authorization": f"Bearer {env.provider.token(sub='root', groups=ROOT)}"},
        ).json()
        form = re.search(r'name="csrf_token" value="([^"]+)"', dev.get("/ui/signin").text)
        assert form
        signed = dev.post("/ui/auth/apikey", data={"api_key": key["key"], "csrf_token": form[1]})
        assert signed.status_code == 200 and dev.get("/v1/conversations").status_code == 200
        revoked = dev.delete(
            f"/v1/keys/{key['id']}",
            headers={"Authorization": f"Bearer {env.provider.token(sub='root', groups=ROOT)}"},
        )
        assert revoked.status_code == 200
        assert dev.get("/ui/documents").status_code == 303  # the pages send it to sign in
        assert dev.get("/v1/conversations").status_code == 401
