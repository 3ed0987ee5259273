"""Turn an ``Authorization`` header into a :class:`Caller`, or refuse. Default: deny.

``Bearer sr_...`` is an API key; any other bearer token is an OIDC JWT. Without a header
the call is refused, unless development mode is on, in which case it runs as the
configured development principal (and the service warned loudly when it started).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from strongroom.auth.apikeys import KEY_PREFIX, ApiKeyStore, KeyBackend
from strongroom.auth.oidc import OidcVerifier, groups_from_claims
from strongroom.auth.principal import Caller, roles_for
from strongroom.auth.settings import ServiceSettings
from strongroom.errors import AuthenticationError
from strongroom.types import Principal

__all__ = ["KEY_OWNER_PREFIX", "Authenticator", "persons_of"]

#: how an API key's principal is named (``key:<owner>``): no token's subject may start with it
KEY_OWNER_PREFIX = "key:"


def persons_of(principal: Principal, keys: ApiKeyStore | None = None) -> frozenset[str]:
    """The persons who answer for what ``principal`` does: its person (an API key's owner,
    ``key:ana`` -> ``ana``, else its name) and, for a key, whoever created it (who saw its
    secret): ``Principal.created_by`` as the authenticator filled it and, given ``keys``, the
    creators recorded on the key itself (a principal rebuilt elsewhere, e.g. a web session)."""
    found = frozenset({principal.name.removeprefix(KEY_OWNER_PREFIX)}) | principal.created_by
    if keys is not None and principal.auth == "api-key" and principal.key_id:
        found |= next((k.created_by for k in keys.list() if k.id == principal.key_id), frozenset())
    return found


_CACHE_MAX = 10_000


def _digest(authorization: str) -> bytes:
    return hashlib.sha256(authorization.encode()).digest()


class Authenticator:
    """Checks credentials; safe to share between threads.

    API keys verified in the last ``settings.api_key_cache_s`` seconds are answered from
    memory by :meth:`cached`, without a read of the key table: the service calls it on the
    event loop and goes to :meth:`authenticate` (off the loop) only when it returns None.
    Any revocation, by any process, empties it at once (see ``KeyBackend.revocations``),
    and no entry outlives its key's expiry. It is keyed by a SHA-256 of the header, never
    the key itself.
    """

    def __init__(
        self,
        settings: ServiceSettings,
        keys: KeyBackend,
        verifier: OidcVerifier | None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.keys = keys
        self.verifier = verifier
        self._clock = clock
        # sha256(header) -> (caller, trusted until by the clock, the revocation stamp it was read under)
        self._verified: dict[bytes, tuple[Caller, float, tuple[int, int]]] = {}
        self._lock = threading.Lock()

    def cached(self, authorization: str | None) -> Caller | None:
        """The caller behind an API key verified recently and still unexpired, else None."""
        if not authorization or not self.settings.api_key_cache_s:
            return None
        entry = self._verified.get(_digest(authorization))
        if entry is None or self._clock() >= entry[1] or entry[2] != self.keys.revocations():
            return None
        return entry[0]

    def _remember(
        self, authorization: str, caller: Caller, expires_at: datetime | None, stamp: tuple[int, int]
    ) -> None:
        """Keep a verified key for :meth:`cached`, never past the key's own expiry."""
        trust_s = self.settings.api_key_cache_s
        if expires_at is not None:
            trust_s = min(trust_s, (expires_at - datetime.now(UTC)).total_seconds())
        if trust_s <= 0:
            return
        with self._lock:
            if len(self._verified) >= _CACHE_MAX:
                del self._verified[next(iter(self._verified))]  # the oldest
            self._verified[_digest(authorization)] = (caller, self._clock() + trust_s, stamp)

    def _caller(
        self, name: str, groups: frozenset[str], method: str, key_id: str = "", created_by: frozenset[str] = frozenset()
    ) -> Caller:
        roles = roles_for(groups, self.settings.role_groups)
        principal = Principal(name, groups, frozenset(roles), method, key_id, created_by)
        if method == "api-key":
            return Caller(principal, roles, "api-key", key_id)
        if method == "dev":
            return Caller(principal, roles, "dev")
        return Caller(principal, roles, "oidc")

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
            stamp = self.keys.revocations()  # before the read: a revocation during it voids the entry
            key = self.keys.check(token)
            caller = self._caller(f"{KEY_OWNER_PREFIX}{key.owner}", key.groups, "api-key", key.id, key.created_by)
            self._remember(authorization, caller, key.expires_at, stamp)
            return caller
        if self.verifier is None:
            raise AuthenticationError("bearer tokens are not accepted here: no OIDC issuer is configured")
        claims = self.verifier.verify(token)
        groups = groups_from_claims(claims, self.settings.groups_claim)
        name = str(claims[self.settings.principal_claim])
        if name.startswith(KEY_OWNER_PREFIX):  # an API key's principal: its runs, conversations, audit
            raise AuthenticationError(
                f"the token's {self.settings.principal_claim!r} claim starts with {KEY_OWNER_PREFIX!r}, "
                "which names API keys' owners here; ask the identity provider for another name"
            )
        return self._caller(name, groups, "oidc")
