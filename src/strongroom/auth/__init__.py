"""Authentication and authorization: OIDC bearer tokens, API keys, roles from groups.

The default is deny: a request without valid credentials is refused, unless the service
was started in an explicit development mode (which logs a loud warning).
"""

from strongroom.auth.apikeys import ApiKey, ApiKeyStore
from strongroom.auth.authenticator import Authenticator
from strongroom.auth.oidc import AuthenticationError, OidcVerifier, groups_from_claims
from strongroom.auth.principal import ROLE_ORDER, Caller, roles_for
from strongroom.auth.settings import ALLOWED_ALGORITHMS, Role, ServiceSettings

__all__ = [
    "ALLOWED_ALGORITHMS",
    "ROLE_ORDER",
    "ApiKey",
    "ApiKeyStore",
    "AuthenticationError",
    "Authenticator",
    "Caller",
    "OidcVerifier",
    "Role",
    "ServiceSettings",
    "groups_from_claims",
    "roles_for",
]
