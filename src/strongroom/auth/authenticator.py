"""Turn an ``Authorization`` header into a :class:`Caller`, or refuse. Default: deny.

``Bearer sr_...`` is an API key; any other bearer token is an OIDC JWT. Without a header
the call is refused, unless development mode is on, in which case it runs as the
configured development principal (and the service warned loudly when it started).
"""

from __future__ import annotations

from strongroom.auth.apikeys import KEY_PREFIX, ApiKeyStore
from strongroom.auth.oidc import AuthenticationError, OidcVerifier, groups_from_claims
from strongroom.auth.principal import Caller, roles_for
from strongroom.auth.settings import ServiceSettings
from strongroom.types import Principal

__all__ = ["Authenticator"]


class Authenticator:
    """Checks credentials; holds no per-request state, safe to share between threads."""

    def __init__(self, settings: ServiceSettings, keys: ApiKeyStore, verifier: OidcVerifier | None) -> None:
        self.settings = settings
        self.keys = keys
        self.verifier = verifier

    def _caller(self, name: str, groups: frozenset[str], method: str, key_id: str = "") -> Caller:
        roles = roles_for(groups, self.settings.role_groups)
        if method == "api-key":
            return Caller(Principal(name, groups), roles, "api-key", key_id)
        if method == "dev":
            return Caller(Principal(name, groups), roles, "dev")
        return Caller(Principal(name, groups), roles, "oidc")

    def authenticate(self, authorization: str | None) -> Caller:
        """The caller behind an ``Authorization`` header value, or :class:`AuthenticationError`."""
        if not authorization:
            if self.settings.dev_mode:
                return self._caller(self.settings.dev_principal, frozenset(self.settings.dev_groups), "dev")
            raise AuthenticationError("authentication required: send 'Authorization: Bearer <token or API key>'")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthenticationError("use the Bearer scheme: 'Authorization: Bearer <token or API key>'")
        if token.startswith(KEY_PREFIX):
            key = self.keys.check(token)
            return self._caller(f"key:{key.owner}", key.groups, "api-key", key.id)
        if self.verifier is None:
            raise AuthenticationError("bearer tokens are not accepted here: no OIDC issuer is configured")
        claims = self.verifier.verify(token)
        groups = groups_from_claims(claims, self.settings.groups_claim)
        return self._caller(str(claims[self.settings.principal_claim]), groups, "oidc")
