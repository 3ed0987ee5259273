"""Browser sign-in over real HTTP: the OIDC code flow with PKCE through the local provider,
the server-side session and its cookie, CSRF, timeouts, logout, the dev API-key mode."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from strongroom.api import create_app
from strongroom.auth import ServiceSettings
from strongroom.testing import HashEmbedder
from tests.api.conftest import service_settings
from tests.web.conftest import PUBLIC, RESEARCH, WebEnv, sign_in

pytestmark = pytest.mark.integration

QUESTION = {"question": "What was Harbor Bank net interest income?"}


def csrf_of(html: str) -> str:
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', html)
    assert match, "the page carries no CSRF token"
    return match.group(1)


def signed_in(web: WebEnv, client: httpx.Client) -> str:
    """Sign ``client`` in; the session's CSRF token."""
    done = sign_in(web, client)
    assert done.status_code == 200, done.text
    return csrf_of(client.get("/ui/ask").text)


def test_sign_in_through_the_provider_end_to_end(user: WebEnv, browser_client: httpx.Client) -> None:
    start = browser_client.get("/ui/auth/login")
    query = parse_qs(urlsplit(start.headers["location"]).query)
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert query["client_id"] == ["strongroom-web-tests"] and query["response_type"] == ["code"]
    assert query["state"][0] and query["nonce"][0] and "openid" in query["scope"][0].split()
    assert query["redirect_uri"] == [f"{user.url}/ui/auth/callback"]
    back = browser_client.get(browser_client.get(start.headers["location"]).headers["location"])
    assert back.status_code == 200 and 'http-equiv="refresh"' in back.text
    cookie = next(c for c in back.headers.get_list("set-cookie") if c.startswith("sr_session="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http here; under https it is Secure (below)
    sent = user.provider.token_requests[-1]
    assert sent["code_verifier"] and sent["grant_type"] == "authorization_code"
    ask = browser_client.get("/ui/ask")
    assert ask.status_code == 200 and ">ana<" in ask.text and "reader" in ask.text
    # the session calls the same JSON API, as the user the token named
    r = browser_client.post("/v1/ask", json=QUESTION, headers={"X-CSRF-Token": csrf_of(ask.text)})
    assert r.status_code == 200 and r.json()["found"], r.text


def test_groups_and_roles_come_from_the_token_as_for_the_api(user: WebEnv, browser_client: httpx.Client) -> None:
    kestrel = {"question": "What would Project Kestrel acquire?"}
    user.as_user("rita", RESEARCH)
    csrf = signed_in(user, browser_client)
    by_session = browser_client.post("/v1/ask", json=kestrel, headers={"X-CSRF-Token": csrf}).json()
    token = user.provider.token(sub="rita", groups=RESEARCH)
    by_token = httpx.post(f"{user.url}/v1/ask", json=kestrel, headers={"Authorization": f"Bearer {token}"}).json()
    assert by_session["found"] and by_session["citations"] == by_token["citations"]
    assert any(c["document_id"] == user.doc_ids["kestrel.txt"] for c in by_session["citations"])
    models = browser_client.get("/v1/models").json()
    assert [m["id"] for m in models["data"]] == ["strongroom-rag", "chat"]  # the route granted to research


def test_a_user_outside_the_group_never_sees_the_restricted_document(
    user: WebEnv, browser_client: httpx.Client
) -> None:
    csrf = signed_in(user, browser_client)  # ana: public only
    answer = browser_client.post(
        "/v1/ask", json={"question": "What would Project Kestrel acquire?"}, headers={"X-CSRF-Token": csrf}
    ).json()
    kestrel = user.doc_ids["kestrel.txt"]
    assert "Lisbon" not in str(answer) and all(c["document_id"] != kestrel for c in answer["citations"])
    assert [m["id"] for m in browser_client.get("/v1/models").json()["data"]] == ["strongroom-rag"]
    assert browser_client.get(f"/v1/documents/{kestrel}").status_code == 404


def test_a_stolen_code_is_refused_without_its_pkce_verifier(user: WebEnv) -> None:
    """An attacker injects a victim's code into their own sign-in: the code was issued for the
    victim's challenge, so the provider refuses the attacker's verifier and no session starts."""
    with httpx.Client(base_url=user.url) as victim, httpx.Client(base_url=user.url) as attacker:
        victim_code = parse_qs(
            urlsplit(victim.get(victim.get("/ui/auth/login").headers["location"]).headers["location"]).query
        )["code"][0]
        back = urlsplit(attacker.get(attacker.get("/ui/auth/login").headers["location"]).headers["location"])
        state = parse_qs(back.query)["state"][0]
        refused = attacker.get("/ui/auth/callback", params={"code": victim_code, "state": state})
        assert refused.status_code == 401 and "PKCE verification failed" not in refused.text
        assert "identity provider refused the sign-in (invalid_grant)" in refused.text
        assert not any(c.startswith("sr_session=") for c in refused.headers.get_list("set-cookie"))
        assert attacker.get("/ui/ask").status_code == 303


def test_a_wrong_state_is_refused_and_the_sign_in_cannot_be_retried(user: WebEnv, browser_client: httpx.Client) -> None:
    back = urlsplit(browser_client.get(browser_client.get("/ui/auth/login").headers["location"]).headers["location"])
    got = parse_qs(back.query)
    forged = browser_client.get("/ui/auth/callback", params={"code": got["code"][0], "state": "forged"})
    assert forged.status_code == 400 and "could not be matched" in forged.text
    again = browser_client.get("/ui/auth/callback", params={"code": got["code"][0], "state": got["state"][0]})
    assert again.status_code == 400  # the pending sign-in was used up by the failed try
    assert browser_client.get("/ui/ask").status_code == 303


def test_a_callback_in_a_browser_that_did_not_start_the_sign_in_is_refused(user: WebEnv) -> None:
    """Login CSRF: a victim's browser is sent an attacker's code and state."""
    with httpx.Client(base_url=user.url) as attacker, httpx.Client(base_url=user.url) as victim:
        location = attacker.get(attacker.get("/ui/auth/login").headers["location"]).headers["location"]
        refused = victim.get(location)
        assert refused.status_code == 400
        assert victim.get("/ui/ask").status_code == 303


def test_an_id_token_with_another_nonce_is_refused(user: WebEnv, browser_client: httpx.Client) -> None:
    user.provider.nonce_override = "replayed"
    refused = sign_in(user, browser_client)
    assert refused.status_code == 401 and "nonce" in refused.text
    assert browser_client.get("/ui/ask").status_code == 303


def test_the_provider_refuses_a_wrong_verifier(user: WebEnv) -> None:
    """The local provider itself checks PKCE (a test double that always agreed would prove nothing)."""
    redirect = f"{user.url}/ui/auth/callback"
    authorize = {
        "response_type": "code",
        "client_id": "strongroom-web-tests",
        "redirect_uri": redirect,
        "scope": "openid",
        "state": "s",
        "nonce": "n",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
    }
    code = parse_qs(
        urlsplit(httpx.get(f"{user.provider.issuer}/authorize", params=authorize).headers["location"]).query
    )["code"][0]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect,
        "client_id": "strongroom-web-tests",
    }
    wrong = httpx.post(f"{user.provider.issuer}/token", data={**form, "code_verifier": "x" * 43})
    assert wrong.status_code == 400 and wrong.json()["error_description"] == "PKCE verification failed"
    code2 = parse_qs(
        urlsplit(httpx.get(f"{user.provider.issuer}/authorize", params=authorize).headers["location"]).query
    )["code"][0]
    right = httpx.post(
        f"{user.provider.issuer}/token",
        data={**form, "code": code2, "code_verifier": "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"},
    )
    assert right.status_code == 200 and right.json()["id_token"]


def test_state_changing_calls_need_the_csrf_token(user: WebEnv, browser_client: httpx.Client) -> None:
    csrf = signed_in(user, browser_client)
    missing = browser_client.post("/v1/ask", json=QUESTION)
    assert missing.status_code == 403 and "X-CSRF-Token" in missing.json()["error"]["message"]
    wrong = browser_client.post("/v1/ask", json=QUESTION, headers={"X-CSRF-Token": csrf[:-2] + "xx"})
    assert wrong.status_code == 403
    assert browser_client.post("/v1/ask", json=QUESTION, headers={"X-CSRF-Token": csrf}).status_code == 200
    assert browser_client.get("/v1/models").status_code == 200  # reading needs no token
    # the sign-out form too: without its hidden field it is refused and the session lives on
    assert browser_client.post("/ui/auth/logout").status_code == 403
    assert browser_client.get("/ui/ask").status_code == 200


def test_every_form_carries_the_csrf_token(user: WebEnv, browser_client: httpx.Client) -> None:
    signed_in(user, browser_client)
    html = browser_client.get("/ui/ask").text
    for form in re.findall(r"<form\b.*?</form>", html, flags=re.S):
        assert 'name="csrf_token"' in form, form


@pytest.fixture
def clock(user: WebEnv) -> Iterator[list[float]]:
    """The session store's clock, moved by hand (no sleeping)."""
    now = [1_900_000_000.0]
    store = user.sessions
    real = store.clock
    store.clock = lambda: now[0]
    yield now
    store.clock = real


def test_a_session_idle_too_long_ends(user: WebEnv, browser_client: httpx.Client, clock: list[float]) -> None:
    signed_in(user, browser_client)
    clock[0] += 29 * 60
    assert browser_client.get("/v1/models").status_code == 200  # used: the idle clock restarts
    clock[0] += 29 * 60
    assert browser_client.get("/ui/ask").status_code == 200
    clock[0] += 30 * 60
    expired = browser_client.get("/v1/models")
    assert expired.status_code == 401 and "expired" in expired.json()["error"]["message"]
    assert browser_client.get("/ui/ask").headers["location"] == "/ui/signin?next=/ui/ask"


def test_a_session_ends_after_the_absolute_timeout_however_busy(
    user: WebEnv, browser_client: httpx.Client, clock: list[float]
) -> None:
    signed_in(user, browser_client)
    for _ in range(24 * 2 - 1):  # every 15 minutes for 11 h 45 min
        clock[0] += 15 * 60
        assert browser_client.get("/v1/models").status_code == 200
    clock[0] += 15 * 60
    assert browser_client.get("/v1/models").status_code == 401


def test_logout_kills_the_session_on_the_server(user: WebEnv, browser_client: httpx.Client) -> None:
    csrf = signed_in(user, browser_client)
    sid = browser_client.cookies["sr_session"]
    out = browser_client.post("/ui/auth/logout", data={"csrf_token": csrf})
    assert out.status_code == 303 and out.headers["location"] == "/ui/signin"
    assert user.sessions.lookup(sid) is None
    # the old cookie, replayed by someone who kept it, is dead
    with httpx.Client(base_url=user.url, cookies={"sr_session": sid}) as replay:
        assert replay.get("/v1/models").status_code == 401
        assert replay.get("/ui/ask").status_code == 303


def test_the_root_sends_a_stranger_to_sign_in(user: WebEnv, browser_client: httpx.Client) -> None:
    assert browser_client.get("/").headers["location"] == "/ui/signin"
    page = browser_client.get("/ui/signin")
    assert page.status_code == 200 and 'href="/ui/auth/login?next=/ui/ask"' in page.text
    signed_in(user, browser_client)
    assert browser_client.get("/").headers["location"] == "/ui/ask"


def test_api_key_sign_in_is_off_by_default(user: WebEnv, browser_client: httpx.Client) -> None:
    assert ServiceSettings().ui_api_key_login is False
    page = browser_client.get("/ui/signin").text
    assert 'name="api_key"' not in page and "/ui/auth/apikey" not in page
    token = re.search(r'name="csrf_token" value="([^"]*)"', page)
    refused = browser_client.post("/ui/auth/apikey", data={"api_key": user.api_key, "csrf_token": token and token[1]})
    assert refused.status_code == 404 and "switched off" in refused.text
    assert browser_client.get("/ui/ask").status_code == 303


@pytest.fixture
def dev_app(user: WebEnv) -> Iterator[TestClient]:
    """A second app over the same home with the dev API-key sign-in on, behind https."""
    config = service_settings(user.provider, ui_client_id="strongroom-web-tests", ui_api_key_login=True)
    app = create_app(user.settings, config, embedder=HashEmbedder(64))
    with TestClient(app, base_url="https://workspace.test", follow_redirects=False) as c:
        yield c


def test_the_dev_api_key_sign_in_when_switched_on(dev_app: TestClient, user: WebEnv) -> None:
    page = dev_app.get("/ui/signin")
    assert 'name="api_key"' in page.text and "Development only" in page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    no_token = dev_app.post("/ui/auth/apikey", data={"api_key": user.api_key})
    assert no_token.status_code == 403
    jwt = user.provider.token(groups=PUBLIC)
    assert dev_app.post("/ui/auth/apikey", data={"api_key": jwt, "csrf_token": token[1]}).status_code == 401
    ok = dev_app.post("/ui/auth/apikey", data={"api_key": user.api_key, "csrf_token": token[1]})
    assert ok.status_code == 200, ok.text
    cookie = next(c for c in ok.headers.get_list("set-cookie") if c.startswith("sr_session="))
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie  # https: Secure
    assert "key:dev" in dev_app.get("/ui/ask").text
    assert ok.headers["strict-transport-security"].startswith("max-age=")


def test_cookies_are_secure_behind_a_tls_proxy_when_told(user: WebEnv) -> None:
    config = service_settings(user.provider, ui_api_key_login=True, ui_secure_cookies=True)
    with TestClient(create_app(user.settings, config, embedder=HashEmbedder(64)), follow_redirects=False) as c:
        token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/ui/signin").text)
        assert token
        # the test client, like a browser on http, keeps a Secure cookie to itself: send it as the proxy would
        login_csrf = {"cookie": f"sr_login_csrf={token[1]}"}
        ok = c.post("/ui/auth/apikey", data={"api_key": user.api_key, "csrf_token": token[1]}, headers=login_csrf)
    cookie = next(c for c in ok.headers.get_list("set-cookie") if c.startswith("sr_session="))
    assert ok.status_code == 200 and "Secure" in cookie  # http to the service, https to the browser
