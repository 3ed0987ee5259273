"""Signing a browser in with the OIDC authorization code flow and PKCE (RFC 7636, S256).

The flow, against the same issuer the API trusts for bearer tokens:

1. :func:`start` makes a state, a nonce and a PKCE verifier, and the URL of the identity
   provider's authorization endpoint (from its discovery document) with the state, nonce and
   the verifier's S256 challenge.
2. The provider sends the browser back with ``code`` and ``state``; the caller checks the
   state against the pending sign-in (:mod:`strongroom.api.web.sessions`).
3. :meth:`OidcClient.exchange` posts the code and the verifier (and the client secret, for
   a confidential client) to the token endpoint; the provider refuses a verifier that does
   not match the challenge, so a stolen code is useless.
4. The ID token is verified (signature, issuer, audience = the client id, expiry) and its
   nonce compared with the one sent; the access token is then authenticated by the API's own
   :class:`~strongroom.auth.Authenticator`, exactly as a bearer token, so a browser user gets
   the same principal, groups and roles as an API call with that token.

>>> challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM'
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from strongroom.api.web.sessions import PendingLogin
from strongroom.auth import Authenticator, Caller, OidcVerifier, ServiceSettings
from strongroom.errors import AuthenticationError, StrongroomError

__all__ = ["OidcClient", "challenge", "start"]


def challenge(verifier: str) -> str:
    """The S256 code challenge of a PKCE verifier: base64url(SHA-256(verifier)), unpadded."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


def start(next_path: str) -> PendingLogin:
    """A fresh pending sign-in: random state, nonce and a 43-character PKCE verifier."""
    return PendingLogin(secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(32), next_path)


class OidcClient:
    """The web workspace as an OIDC client of the API's issuer."""

    def __init__(self, config: ServiceSettings, authenticator: Authenticator) -> None:
        if not (config.oidc_issuer and config.oidc_audience and config.ui_client_id):
            raise StrongroomError(
                "browser sign-in needs STRONGROOM_OIDC_ISSUER, STRONGROOM_OIDC_AUDIENCE and STRONGROOM_UI_CLIENT_ID"
            )
        self.config = config
        self.authenticator = authenticator
        # ID tokens are issued for the client, not for the API: same issuer and keys, other audience
        self.id_tokens = OidcVerifier(config.model_copy(update={"oidc_audience": config.ui_client_id}))
        self._http = httpx.AsyncClient(timeout=config.oidc_timeout_s)
        self._endpoints: dict[str, str] = {}

    async def aclose(self) -> None:
        await self._http.aclose()
        self.id_tokens.close()

    async def _endpoint(self, name: str) -> str:
        if name not in self._endpoints:
            url = self.config.oidc_issuer.rstrip("/") + "/.well-known/openid-configuration"
            try:
                doc = (await self._http.get(url)).raise_for_status().json()
            except (httpx.HTTPError, ValueError) as exc:
                raise AuthenticationError(
                    f"cannot read the identity provider's discovery document: {type(exc).__name__}; try again later"
                ) from exc
            if doc.get("issuer") != self.config.oidc_issuer:
                raise AuthenticationError(
                    "the discovery document names a different issuer; check STRONGROOM_OIDC_ISSUER"
                )
            for key in ("authorization_endpoint", "token_endpoint"):
                if isinstance(doc.get(key), str):
                    self._endpoints[key] = doc[key]
        if name not in self._endpoints:
            raise AuthenticationError(f"the identity provider's discovery document has no {name}")
        return self._endpoints[name]

    async def authorization_url(self, pending: PendingLogin, redirect_uri: str) -> str:
        """Where to send the browser to sign in."""
        query = {
            "response_type": "code",
            "client_id": self.config.ui_client_id,
            "redirect_uri": redirect_uri,
            "scope": self.config.ui_scopes,
            "state": pending.state,
            "nonce": pending.nonce,
            "code_challenge": challenge(pending.verifier),
            "code_challenge_method": "S256",
        }
        endpoint = await self._endpoint("authorization_endpoint")
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(query)}"

    async def exchange(self, code: str, pending: PendingLogin, redirect_uri: str) -> Caller:
        """The caller behind an authorization code, or :class:`AuthenticationError`."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self.config.ui_client_id,
            "code_verifier": pending.verifier,
        }
        secret = self.config.ui_client_secret
        # client_secret_basic: each part form-encoded before base64 (RFC 6749, section 2.3.1)
        auth = httpx.BasicAuth(quote(self.config.ui_client_id, safe=""), quote(secret, safe="")) if secret else None
        try:
            endpoint = await self._endpoint("token_endpoint")
            response = await self._http.post(endpoint, data=form, auth=auth or httpx.USE_CLIENT_DEFAULT)
        except httpx.HTTPError as exc:
            raise AuthenticationError(f"the identity provider's token endpoint failed: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise AuthenticationError(f"the identity provider refused the sign-in ({_reason(response)})")
        try:
            tokens: dict[str, Any] = response.json()
        except ValueError as exc:
            raise AuthenticationError("the token endpoint did not answer JSON") from exc
        id_token, access_token = tokens.get("id_token"), tokens.get("access_token")
        if not isinstance(id_token, str) or not isinstance(access_token, str):
            raise AuthenticationError("the token endpoint returned no id_token or no access_token")
        claims = await asyncio.to_thread(self.id_tokens.verify, id_token)
        if not isinstance(claims.get("nonce"), str) or not secrets.compare_digest(claims["nonce"], pending.nonce):
            raise AuthenticationError("the ID token's nonce is not the one this sign-in sent (a replayed token?)")
        caller = await asyncio.to_thread(self.authenticator.authenticate, f"Bearer {access_token}")
        if caller.method != "oidc":
            raise AuthenticationError("the access token is not an OIDC token")
        if self.config.principal_claim == "sub" and claims.get("sub") != caller.name:
            raise AuthenticationError("the ID token and the access token name different users")
        return caller


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    error = body.get("error") if isinstance(body, dict) else None
    return f"{error}" if isinstance(error, str) else f"HTTP {response.status_code}"
