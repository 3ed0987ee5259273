"""Authentication and authorization: OIDC bearer tokens, API keys, roles from groups.

The default is deny: a request without valid credentials is refused, unless the service
was started in an explicit development mode (which logs a loud warning).
"""

from strongroom.auth.apikeys import ApiKey, ApiKeyStore, KeyBackend, SqliteApiKeyStore
from strongroom.auth.authenticator import Authenticator
from strongroom.auth.oidc import OidcVerifier, groups_from_claims
from strongroom.auth.principal import ROLE_ORDER, Caller, roles_for
from strongroom.auth.settings import ALLOWED_ALGORITHMS, Role, ServiceSettings
from strongroom.config import Settings
from strongroom.errors import AuthenticationError

__all__ = [
    "ALLOWED_ALGORITHMS",
    "ROLE_ORDER",
    "ApiKey",
    "ApiKeyStore",
    "AuthenticationError",
    "Authenticator",
    "Caller",
    "KeyBackend",
    "OidcVerifier",
    "Role",
    "ServiceSettings",
    "groups_from_claims",
    "open_key_store",
    "roles_for",
]


def open_key_store(settings: Settings) -> KeyBackend:
    """The deployment's key store: PostgreSQL when ``settings.store_url`` is set (shared by every
    replica), else the catalog's SQLite file."""
    if settings.store_url:
        from strongroom.auth.apikeys_postgres import PostgresApiKeyStore  # psycopg: the [postgres] extra

        return PostgresApiKeyStore(settings.store_url)
    return SqliteApiKeyStore(settings.catalog_path)
