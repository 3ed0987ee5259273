"""A local OIDC provider for tests: RSA and EC keys made at test time, a discovery
document and a JWKS served on loopback, tokens minted on demand, keys rotated at will."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

AUDIENCE = "strongroom-tests"


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


@contextmanager
def serve_provider() -> Iterator[Provider]:
    provider = Provider()
    provider.add_key("RS256")
    provider.add_key("ES256")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body: dict[str, object]
            if self.path == "/.well-known/openid-configuration":
                body = {"issuer": provider.issuer, "jwks_uri": f"{provider.issuer}/jwks.json"}
            elif self.path == "/jwks.json":
                provider.jwks_hits += 1
                body = provider.jwks()
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
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
