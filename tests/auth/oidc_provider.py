"""A local OIDC provider for tests: RSA and EC keys made at test time, a discovery
document and a JWKS served on loopback, tokens minted on demand, keys rotated at will.

It also runs the authorization code flow with PKCE for a browser: ``/authorize``
approves ``provider.user`` at once (no login form) and sends the browser back with a code
and the state; ``/token`` exchanges the code once, checking the client id (and secret,
when one is set), the redirect URI and the PKCE verifier against the S256 challenge, and
returns an ID token (audience: the client, with the nonce) and an access token (audience:
the API), both signed with the provider's first published key."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

AUDIENCE = "strongroom-tests"
CLIENT_ID = "strongroom-web-tests"


@dataclass
class Grant:
    """An issued authorization code and what it was issued for."""

    client_id: str
    redirect_uri: str
    challenge: str
    method: str
    nonce: str
    sub: str
    groups: list[str]
    used: bool = False


@dataclass
class User:
    """Who ``/authorize`` signs in (no form: tests set it)."""

    sub: str = "ana"
    groups: list[str] = field(default_factory=lambda: ["readers", "public"])


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Provider:
    """Holds signing keys by kid; ``jwks`` publishes the public halves of the current ones."""

    def __init__(self) -> None:
        self.keys: dict[str, tuple[str, Any]] = {}
        self.published: list[str] = []
        self.jwks_hits = 0
        self.issuer = ""
        self._counter = 0
        self.client_id = CLIENT_ID
        self.client_secret = ""  # set: /token requires it (HTTP Basic or form)
        self.user = User()
        self.grants: dict[str, Grant] = {}
        self.nonce_override: str | None = None  # a wrong nonce in the next ID tokens
        self.token_requests: list[dict[str, str]] = []

    def add_key(self, alg: str = "RS256", publish: bool = True) -> str:
        self._counter += 1
        kid = f"{alg.lower()}-{self._counter}"
        key: Any = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if alg == "RS256"
            else ec.generate_private_key(ec.SECP256R1())
        )
        self.keys[kid] = (alg, key)
        if publish:
            self.published.append(kid)
        return kid

    def rotate(self, alg: str = "RS256") -> str:
        """Publish a new key and withdraw all the old ones."""
        kid = self.add_key(alg, publish=False)
        self.published = [kid]
        return kid

    def jwks(self) -> dict[str, object]:
        out = []
        for kid in self.published:
            alg, key = self.keys[kid]
            algo = RSAAlgorithm if alg == "RS256" else ECAlgorithm
            jwk = json.loads(algo.to_jwk(key.public_key()))
            out.append({**jwk, "kid": kid, "alg": alg, "use": "sig"})
        return {"keys": out}

    def public_pem(self, kid: str) -> bytes:
        _, key = self.keys[kid]
        pem: bytes = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return pem

    def claims(self, sub: str = "ana", groups: list[str] | None = None, **extra: Any) -> dict[str, Any]:
        now = int(time.time())
        base: dict[str, Any] = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": sub,
            "iat": now,
            "nbf": now,
            "exp": now + 600,
        }
        if groups is not None:
            base["groups"] = groups
        base.update(extra)
        return {k: v for k, v in base.items() if v is not None}

    def token(self, sub: str = "ana", groups: list[str] | None = None, kid: str | None = None, **extra: Any) -> str:
        kid = kid or self.published[0]
        alg, key = self.keys[kid]
        return jwt.encode(self.claims(sub, groups, **extra), key, algorithm=alg, headers={"kid": kid})

    def hs256_with_public_key(self, kid: str, claims: dict[str, Any]) -> str:
        """The classic RS/HS confusion: an HMAC "signed" with the public key as secret."""
        header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
        payload = b64(json.dumps(claims).encode())
        sig = hmac.new(self.public_pem(kid), f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{b64(sig)}"

    def unsigned(self, kid: str, claims: dict[str, Any]) -> str:
        header = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode())
        return f"{header}.{b64(json.dumps(claims).encode())}."


def _s256(verifier: str) -> str:
    return b64(hashlib.sha256(verifier.encode("ascii")).digest())


def authorize(provider: Provider, query: dict[str, str]) -> tuple[int, dict[str, Any], str]:
    """``/authorize``: (status, JSON error body, redirect location)."""
    redirect_uri = query.get("redirect_uri", "")
    if query.get("client_id") != provider.client_id:
        return 400, {"error": "unauthorized_client"}, ""
    if not redirect_uri.startswith(("http://127.0.0.1:", "http://localhost:")):
        return 400, {"error": "invalid_request", "error_description": "unregistered redirect_uri"}, ""
    if query.get("response_type") != "code" or "openid" not in query.get("scope", "").split():
        return 400, {"error": "invalid_request"}, ""
    if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
        return 400, {"error": "invalid_request", "error_description": "PKCE S256 is required"}, ""
    code = secrets.token_urlsafe(24)
    user = provider.user
    provider.grants[code] = Grant(
        provider.client_id,
        redirect_uri,
        query["code_challenge"],
        "S256",
        query.get("nonce", ""),
        user.sub,
        list(user.groups),
    )
    back = {"code": code, "state": query.get("state", "")}
    return 302, {}, f"{redirect_uri}{'&' if '?' in redirect_uri else '?'}{urlencode(back)}"


def exchange(provider: Provider, form: dict[str, str], basic: tuple[str, str] | None) -> tuple[int, dict[str, Any]]:
    """``/token``: the code for an ID token and an access token, or an OAuth error."""
    provider.token_requests.append(dict(form))
    client_id, secret = basic if basic else (form.get("client_id", ""), form.get("client_secret", ""))
    if client_id != provider.client_id or (provider.client_secret and secret != provider.client_secret):
        return 401, {"error": "invalid_client"}
    if form.get("grant_type") != "authorization_code":
        return 400, {"error": "unsupported_grant_type"}
    grant = provider.grants.get(form.get("code", ""))
    if grant is None or grant.used or grant.client_id != client_id:
        return 400, {"error": "invalid_grant"}
    grant.used = True  # a code is good for one exchange, right or wrong
    if form.get("redirect_uri") != grant.redirect_uri:
        return 400, {"error": "invalid_grant", "error_description": "redirect_uri mismatch"}
    if not hmac.compare_digest(_s256(form.get("code_verifier", "")), grant.challenge):
        return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
    kid = provider.published[0]
    alg, key = provider.keys[kid]
    nonce = provider.nonce_override if provider.nonce_override is not None else grant.nonce
    id_claims = provider.claims(grant.sub, grant.groups, aud=provider.client_id, nonce=nonce)
    access_claims = provider.claims(grant.sub, grant.groups)
    return 200, {
        "token_type": "Bearer",
        "expires_in": 600,
        "id_token": jwt.encode(id_claims, key, algorithm=alg, headers={"kid": kid}),
        "access_token": jwt.encode(access_claims, key, algorithm=alg, headers={"kid": kid}),
    }


@contextmanager
def serve_provider() -> Iterator[Provider]:
    provider = Provider()
    provider.add_key("RS256")
    provider.add_key("ES256")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body: dict[str, object]
            url = urlsplit(self.path)
            if url.path == "/.well-known/openid-configuration":
                body = {
                    "issuer": provider.issuer,
                    "jwks_uri": f"{provider.issuer}/jwks.json",
                    "authorization_endpoint": f"{provider.issuer}/authorize",
                    "token_endpoint": f"{provider.issuer}/token",
                    "code_challenge_methods_supported": ["S256"],
                }
            elif url.path == "/jwks.json":
                provider.jwks_hits += 1
                body = provider.jwks()
            elif url.path == "/authorize":
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                status, error, location = authorize(provider, query)
                if location:
                    self.send_response(302)
                    self.send_header("location", location)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                self._json(status, error)
                return
            else:
                self.send_error(404)
                return
            self._json(200, body)

        def do_POST(self) -> None:
            if urlsplit(self.path).path != "/token":
                self.send_error(404)
                return
            length = int(self.headers.get("content-length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            basic = None
            scheme, _, value = (self.headers.get("authorization") or "").partition(" ")
            if scheme.lower() == "basic":
                user, _, password = base64.b64decode(value).decode().partition(":")
                basic = (unquote(user), unquote(password))
            status, body = exchange(provider, form, basic)
            self._json(status, body)

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("cache-control", "no-store")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    provider.issuer = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
