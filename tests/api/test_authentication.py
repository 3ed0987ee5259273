"""Authentication over real HTTP: OIDC tokens (and the attacks on them), API keys, deny by default."""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest

from strongroom.auth.apikeys import SqliteApiKeyStore
from tests.api.conftest import Env
from tests.auth.oidc_provider import Provider, b64

SEARCH = {"query": "revenue net sales"}


def call(env: Env, token: str | None) -> httpx.Response:
    with env.client(token=token) as c:
        return c.post("/v1/search", json=SEARCH)


def test_a_valid_rs256_token_is_accepted(env: Env) -> None:
    r = call(env, env.token(["readers", "public"]))
    assert r.status_code == 200, r.text
    assert r.json()["hits"]


def test_a_valid_es256_token_is_accepted(env: Env) -> None:
    es_kid = next(k for k in env.provider.published if k.startswith("es256"))
    r = call(env, env.provider.token(groups=["readers", "public"], kid=es_kid))
    assert r.status_code == 200, r.text


def test_no_credentials_is_denied_by_default(env: Env) -> None:
    r = call(env, None)
    assert r.status_code == 401
    assert "authentication required" in r.json()["error"]["message"]
    assert r.headers["www-authenticate"].startswith("Bearer")


def _tamper(token: str) -> str:
    header, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["groups"] = [*claims["groups"], "admins", "research", "legal"]
    return f"{header}.{b64(json.dumps(claims).encode())}.{sig}"


def _attacks() -> dict[str, tuple[Callable[[Provider], str], str]]:
    now = int(time.time())
    reader = ["readers", "public"]

    def rs_kid(p: Provider) -> str:
        return next(k for k in p.published if k.startswith("rs256"))

    def ghost(p: Provider) -> str:
        kid = p.add_key("RS256", publish=False)  # signed with a key the issuer never published
        return p.token(groups=reader, kid=kid)

    return {
        "alg none": (lambda p: p.unsigned(rs_kid(p), p.claims(groups=reader)), "algorithm 'none' is not allowed"),
        "HS256 signed with the public key": (
            lambda p: p.hs256_with_public_key(rs_kid(p), p.claims(groups=reader)),
            "algorithm 'HS256' is not allowed",
        ),
        "expired": (lambda p: p.token(groups=reader, exp=now - 120, iat=now - 900, nbf=now - 900), "expired"),
        "not yet valid": (lambda p: p.token(groups=reader, nbf=now + 300, iat=now), "not valid yet"),
        "wrong issuer": (lambda p: p.token(groups=reader, iss="https://evil.example"), "different issuer"),
        "wrong audience": (lambda p: p.token(groups=reader, aud="another-service"), "audience"),
        "unknown kid": (ghost, "not one of the issuer's keys"),
        "tampered payload": (lambda p: _tamper(p.token(groups=reader)), "signature does not verify"),
        "missing groups claim": (lambda p: p.token(groups=None), "no 'groups' claim"),
        "garbage": (lambda p: "not.a.jwt", "not a well-formed JWT"),
        "no kid": (
            lambda p: jwt.encode(p.claims(groups=reader), p.keys[rs_kid(p)][1], algorithm="RS256"),
            "no 'kid'",
        ),
    }


@pytest.mark.parametrize("name", list(_attacks()))
def test_token_attacks_are_rejected_with_401_and_a_clear_error(env: Env, name: str) -> None:
    make, message = _attacks()[name]
    r = call(env, make(env.provider))
    assert r.status_code == 401, r.text
    assert message in r.json()["error"]["message"]
    assert r.json()["error"]["type"] == "authentication_error"


def test_key_rotation_fetches_the_new_key_and_drops_the_old(env: Env) -> None:
    p = env.provider
    old_kid = p.published[0]
    old_token = p.token(groups=["readers", "public"], kid=old_kid)
    assert call(env, old_token).status_code == 200
    saved = list(p.published)
    try:
        new_kid = p.rotate("RS256")
        hits = p.jwks_hits
        assert call(env, p.token(groups=["readers", "public"], kid=new_kid)).status_code == 200
        assert p.jwks_hits > hits  # the unknown kid made the service refetch the JWKS
        r = call(env, old_token)
        assert r.status_code == 401
        assert "not one of the issuer's keys" in r.json()["error"]["message"]
    finally:
        p.published = saved


def test_bearer_without_token_and_other_schemes_are_rejected(env: Env) -> None:
    with httpx.Client(base_url=env.url) as c:
        r = c.post("/v1/search", json=SEARCH, headers={"Authorization": "Basic YW5hOnB3"})
    assert r.status_code == 401
    assert "Bearer" in r.json()["error"]["message"]


def test_api_keys_work_until_revoked_or_expired_and_only_hashes_are_stored(env: Env) -> None:
    keys = SqliteApiKeyStore(env.settings.catalog_path)
    try:
        key, secret = keys.create("etl-bot", frozenset({"readers", "public"}))
        _expired, expired_secret = keys.create("old-bot", frozenset({"readers"}), datetime.now(UTC) - timedelta(days=1))
        assert call(env, secret).status_code == 200
        r = call(env, expired_secret)
        assert r.status_code == 401 and "not valid" in r.json()["error"]["message"]
        wrong = secret[:-4] + ("AAAA" if not secret.endswith("AAAA") else "BBBB")
        assert call(env, wrong).status_code == 401
        assert keys.revoke(key.id)
        assert call(env, secret).status_code == 401
    finally:
        keys.close()
    with sqlite3.connect(env.settings.catalog_path) as db:
        dump = "\n".join(db.iterdump())
    assert secret.split("_", 2)[2] not in dump
    assert expired_secret.split("_", 2)[2] not in dump


def test_tokens_and_keys_never_reach_the_audit_log(env: Env) -> None:
    token = env.token(["readers", "public"], sub="auditee")
    assert call(env, token).status_code == 200
    with sqlite3.connect(env.settings.catalog_path) as db:
        bodies = [row[0] for row in db.execute("SELECT body FROM audit")]
    assert bodies
    signature = token.rsplit(".", 1)[1]
    assert not any(signature in b or token in b for b in bodies)


def test_request_logs_are_json_with_a_request_id_and_no_secrets(env: Env) -> None:
    import logging

    from strongroom.api.middleware import JsonFormatter

    lines: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(JsonFormatter().format(record))

    logger = logging.getLogger("strongroom.api")
    handler, level = Capture(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        token = env.token(["readers", "public"], sub="logged")
        with env.client(token=token) as c:
            r = c.post("/v1/search", json=SEARCH, headers={"X-Request-Id": "req-123"})
        bad = call(env, token + "x")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert r.headers["x-request-id"] == "req-123"
    assert bad.status_code == 401 and bad.headers["x-request-id"]
    records = [json.loads(line) for line in lines]
    mine = [x for x in records if x.get("request_id") == "req-123"]
    assert mine and mine[0]["route"] == "/v1/search" and mine[0]["status"] == 200 and mine[0]["principal"] == "logged"
    assert not any(token.rsplit(".", 1)[1] in line for line in lines)


def test_admins_manage_keys_over_http_and_the_secret_is_shown_once(env: Env) -> None:
    with env.client(["readers"], sub="not-admin") as c:
        assert c.post("/v1/keys", json={"owner": "x", "groups": ["readers"]}).status_code == 403
    with env.client(["admins", "readers", "public"], sub="key-admin") as admin:
        # a key may carry only groups its creator holds
        beyond = admin.post("/v1/keys", json={"owner": "report-bot", "groups": ["readers", "legal"]})
        assert beyond.status_code == 403 and "legal" in beyond.text
        forever = admin.post("/v1/keys", json={"owner": "report-bot", "groups": ["readers"], "days": 400})
        assert forever.status_code == 422
        made = admin.post("/v1/keys", json={"owner": "report-bot", "groups": ["readers", "public"]})
        assert made.status_code == 201
        assert made.json()["expires_at"] is not None  # keys expire by default
        secret, key_id = made.json()["key"], made.json()["id"]
        assert call(env, secret).status_code == 200
        listed = admin.get("/v1/keys")
        assert key_id in listed.text and secret not in listed.text
        assert admin.delete(f"/v1/keys/{key_id}").status_code == 200
        assert admin.delete(f"/v1/keys/{key_id}").status_code == 404
        assert secret.split("_", 2)[2] not in admin.get("/v1/audit").text
    assert call(env, secret).status_code == 401


def test_a_key_with_a_blank_owner_is_refused_not_a_server_error(env: Env) -> None:
    with env.client(["admins"], sub="key-admin") as admin:
        refused = admin.post("/v1/keys", json={"owner": " \t", "groups": ["readers"]})
    assert refused.status_code == 422 and "owner" in refused.text
    with env.client(["admins"], sub="key-admin") as admin:
        refused = admin.post("/v1/keys", json={"owner": "\x1f\x1c", "groups": ["readers"]})  # blank to str.strip
    assert refused.status_code == 422 and "owner" in refused.text
