"""OIDC bearer tokens: signature against the issuer's JWKS, then issuer, audience and times.

The signing keys come from the discovery document's ``jwks_uri``, are cached for
``oidc_jwks_ttl_s`` and refetched when a token names a ``kid`` the cache does not hold
(key rotation), at most once per ``oidc_jwks_min_refresh_s``. Only asymmetric algorithms
from an allow-list are accepted and the algorithm must match the key's type, so neither
``alg=none`` nor an HS256 token "signed" with the public key gets through.

>>> verifier = OidcVerifier(ServiceSettings(oidc_issuer="https://idp", oidc_audience="sr"))  # doctest: +SKIP
>>> claims = verifier.verify(token)  # doctest: +SKIP
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import httpx
import jwt
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from strongroom.auth.settings import ALLOWED_ALGORITHMS, ServiceSettings
from strongroom.errors import AuthenticationError, StrongroomError

__all__ = ["OidcVerifier", "groups_from_claims"]

_KTY_FOR_ALG = {"RS256": "RSA", "ES256": "EC"}


def groups_from_claims(claims: Mapping[str, Any], claim: str) -> frozenset[str]:
    """The groups under ``claim`` (dotted for nested, e.g. ``realm_access.roles``).

    >>> sorted(groups_from_claims({"realm_access": {"roles": ["a", "b"]}}, "realm_access.roles"))
    ['a', 'b']
    """
    value: Any = claims
    for part in claim.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise AuthenticationError(f"the token has no {claim!r} claim; ask the identity provider to include it")
        value = value[part]
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return frozenset(value)
    raise AuthenticationError(f"the token's {claim!r} claim is not a list of group names")


class OidcVerifier:
    """Validates bearer JWTs from one issuer; thread-safe, keys cached."""

    def __init__(self, settings: ServiceSettings, client: httpx.Client | None = None) -> None:
        if not settings.oidc_issuer or not settings.oidc_audience:
            raise StrongroomError("OIDC needs both STRONGROOM_OIDC_ISSUER and STRONGROOM_OIDC_AUDIENCE")
        bad = set(settings.oidc_algorithms) - ALLOWED_ALGORITHMS
        if bad:
            raise StrongroomError(f"algorithms {sorted(bad)} are not allowed; use RS256 and/or ES256")
        self.settings = settings
        self.algorithms = frozenset(settings.oidc_algorithms)
        self._client = client or httpx.Client(timeout=settings.oidc_timeout_s)
        self._lock = threading.Lock()
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = 0.0
        self._jwks_url = settings.oidc_jwks_url
        self.fetches = 0

    def close(self) -> None:
        self._client.close()

    # -- keys ------------------------------------------------------------------------------

    def _discover(self) -> str:
        url = self.settings.oidc_issuer.rstrip("/") + "/.well-known/openid-configuration"
        doc = self._client.get(url).raise_for_status().json()
        if doc.get("issuer") != self.settings.oidc_issuer:
            raise AuthenticationError("the discovery document names a different issuer; check STRONGROOM_OIDC_ISSUER")
        return str(doc["jwks_uri"])

    def _fetch(self) -> None:
        try:
            if not self._jwks_url:
                self._jwks_url = self._discover()
            jwks = self._client.get(self._jwks_url).raise_for_status().json()
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            raise AuthenticationError(
                f"cannot fetch the identity provider's signing keys: {type(exc).__name__}; try again later"
            ) from exc
        keys: dict[str, jwt.PyJWK] = {}
        for item in jwks.get("keys", []):
            if not isinstance(item, dict) or "kid" not in item or item.get("use", "sig") != "sig":
                continue
            try:
                keys[str(item["kid"])] = jwt.PyJWK(item)
            except jwt.PyJWTError:
                continue  # a key type we do not use
        self._keys = keys
        self._fetched_at = time.monotonic()
        self.fetches += 1

    def key_for(self, kid: str) -> jwt.PyJWK:
        """The signing key ``kid``, refetching the JWKS when stale or when ``kid`` is unknown."""
        with self._lock:
            now = time.monotonic()
            stale = now - self._fetched_at > self.settings.oidc_jwks_ttl_s
            unknown = kid not in self._keys and now - self._fetched_at >= self.settings.oidc_jwks_min_refresh_s
            if not self.fetches or stale or unknown:
                self._fetch()
            key = self._keys.get(kid)
        if key is None:
            raise AuthenticationError(f"the token's signing key {kid!r} is not one of the issuer's keys")
        return key

    # -- tokens ----------------------------------------------------------------------------

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims once signature, algorithm, issuer, audience, exp and nbf check out."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthenticationError("the bearer token is not a well-formed JWT") from exc
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise AuthenticationError(f"token algorithm {alg!r} is not allowed; allowed: {sorted(self.algorithms)}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthenticationError("the token header has no 'kid'; cannot pick a signing key")
        key = self.key_for(kid)
        if key.key_type != _KTY_FOR_ALG[alg] or not isinstance(key.Algorithm, RSAAlgorithm | ECAlgorithm):
            raise AuthenticationError(f"token algorithm {alg} does not match the type of key {kid!r}")
        s = self.settings
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=s.oidc_audience,
                issuer=s.oidc_issuer,
                leeway=s.oidc_leeway_s,
                options={"require": ["exp", "iss", "aud", s.principal_claim]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthenticationError("the token has expired; get a new one") from exc
        except jwt.ImmatureSignatureError as exc:
            raise AuthenticationError("the token is not valid yet (nbf/iat in the future)") from exc
        except jwt.InvalidIssuerError as exc:
            raise AuthenticationError("the token was issued by a different issuer") from exc
        except jwt.InvalidAudienceError as exc:
            raise AuthenticationError("the token is not issued for this service (audience)") from exc
        except jwt.InvalidSignatureError as exc:
            raise AuthenticationError("the token's signature does not verify") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise AuthenticationError(f"the token lacks the required claim {exc.claim!r}") from exc
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"the token is invalid: {type(exc).__name__}") from exc
        return claims
