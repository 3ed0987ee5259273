"""Settings of the service: identity provider, role mapping, dev mode and limits.

Read from the environment with the prefix ``STRONGROOM_`` (``STRONGROOM_OIDC_ISSUER``,
``STRONGROOM_ROLE_GROUPS='{"admin": ["sr-admins"]}'``, ...), apart from the core
:class:`~strongroom.config.Settings`, which says where the store lives.

>>> ServiceSettings(oidc_issuer="https://idp.example", oidc_audience="strongroom").groups_claim
'groups'
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from strongroom.config import QueryEncoderName

__all__ = ["ALLOWED_ALGORITHMS", "Role", "ServiceSettings"]

Role = Literal["reader", "ingester", "admin", "approver", "auditor"]
#: the only JWT algorithms ever accepted: asymmetric, so a public key can never sign
ALLOWED_ALGORITHMS = frozenset({"RS256", "ES256"})


class ServiceSettings(BaseSettings):
    """How the HTTP service authenticates, authorizes and limits callers. Default: deny."""

    model_config = SettingsConfigDict(env_prefix="STRONGROOM_", extra="ignore")

    oidc_issuer: str = Field(default="", description="The identity provider's issuer URL; empty: no OIDC.")
    oidc_audience: str = Field(default="", description="The audience tokens must be issued for.")
    oidc_jwks_url: str = Field(default="", description="JWKS URL; empty: taken from the discovery document.")
    oidc_algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"])
    oidc_leeway_s: float = Field(default=30.0, ge=0, le=300, description="Clock skew allowed on exp and nbf.")
    oidc_jwks_ttl_s: float = Field(default=300.0, ge=0, description="How long fetched signing keys are trusted.")
    oidc_jwks_min_refresh_s: float = Field(
        default=10.0, ge=0, description="At most one refetch per this interval on an unknown kid (no fetch storms)."
    )
    oidc_timeout_s: float = Field(default=5.0, gt=0)
    groups_claim: str = Field(default="groups", description="Claim with the groups; dotted for nested claims.")
    principal_claim: str = Field(default="sub", description="Claim naming the principal in audit records.")
    role_groups: dict[str, list[str]] = Field(
        default_factory=lambda: {
            "reader": ["strongroom-readers"],
            "ingester": ["strongroom-ingesters"],
            "admin": ["strongroom-admins"],
            "approver": ["strongroom-approvers"],
            "auditor": ["strongroom-auditors"],
        },
        description="Groups granting each role; admin implies ingester implies reader; approver (four-eyes "
        "checker) and auditor (reads any answer's lineage) imply nothing.",
    )
    api_key_cache_s: float = Field(
        default=2.0,
        ge=0,
        le=60,
        description="How long a verified API key is trusted without reading the key table again (0: "
        "never). Revocations (by this service or `strongroom keys revoke`) apply at once; this bounds "
        "what no revocation announces (a key table restored from a backup).",
    )
    dev_mode: bool = Field(default=False, description="Accept unauthenticated calls as dev_principal. Never in prod.")
    dev_principal: str = "developer"
    dev_groups: list[str] = Field(default_factory=lambda: ["public", "strongroom-admins"])
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, description="Largest JSON request body.")
    max_upload_bytes: int = Field(default=50 * 1024 * 1024, ge=1024, description="Largest document upload.")
    rate_per_s: float = Field(default=20.0, gt=0, description="Requests per second per principal (refill).")
    rate_burst: int = Field(default=40, ge=1, description="Burst size of the per-principal token bucket.")
    rate_limit_redis_url: str = Field(
        default="",
        description="Redis URL (redis://host:6379/0) for rate limits shared by every replica; empty: in process.",
    )
    bus_url: str = Field(
        default="",
        description=(
            "Queue uploads on this bus for `strongroom worker`: sqlite:///path/bus.sqlite3 (one host), "
            "redis://host:6379/0 or kafka://broker:9092; empty: ingest in the service process."
        ),
    )
    bus_stream: str = Field(default="strongroom:ingest", description="The job stream's name on the bus.")
    upload_dir: str = Field(
        default="", description="Where uploads wait for ingestion; with a bus, a folder every worker can read."
    )
    request_timeout_s: float = Field(
        default=60.0, gt=0, le=3600, description="Longest a request may take to start its response before a 504."
    )
    query_encoder: QueryEncoderName = Field(
        default="model",
        description="What embeds query text: the embedder's model, or its int8 ONNX copy (2.3x less CPU per query; "
        "needs the onnx extra and a local sentence-transformers embedder). Documents always use the model.",
    )
    query_encoder_threads: int = Field(default=1, ge=1, le=64, description="CPU threads of the int8 query encoder.")
    query_batch_max: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="Most queries embedded in one call when requests arrive together. None: 64 for the model "
        "(batches amortise its cost), 4 for onnx-int8 (no batch gain; small batches keep retrieval fed).",
    )
    max_k: int = Field(default=50, ge=1, le=1000)
    auth_refusal_window_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="Refused logins are written to the audit log as one record per reason, client and "
        "credential kind per this many seconds (a flood costs a few records, never one per request).",
    )
    shutdown_grace_s: float = Field(
        default=20.0, gt=0, le=600, description="On SIGTERM, how long in-flight requests may finish before the stop."
    )
    metrics_public: bool = Field(default=True, description="Serve /metrics without authentication.")
    # -- the web workspace (strongroom.api.web): sign-in against the same issuer as the API --
    ui_client_id: str = Field(
        default="", description="The web workspace's OIDC client id; empty: no single sign-on in the browser."
    )
    ui_client_secret: str = Field(
        default="", description="Its client secret, for a confidential client; empty: a public client (PKCE only)."
    )
    ui_redirect_uri: str = Field(
        default="",
        description="The redirect URI registered at the identity provider (https://host/ui/auth/callback); "
        "empty: derived from the request's host.",
    )
    ui_scopes: str = Field(default="openid profile email", description="Scopes asked for at sign-in.")
    ui_idle_timeout_s: float = Field(
        default=30 * 60, gt=0, le=24 * 3600, description="A browser session ends after this long without a request."
    )
    ui_absolute_timeout_s: float = Field(
        default=12 * 3600, gt=0, le=7 * 24 * 3600, description="A browser session ends this long after sign-in."
    )
    ui_secure_cookies: bool = Field(
        default=False,
        description="Mark the workspace's cookies Secure even when the request arrived over plain http (behind a "
        "proxy that terminates TLS); over https they always are.",
    )
    ui_api_key_login: bool = Field(
        default=False,
        description="LOCAL DEVELOPMENT ONLY: the sign-in page also takes an API key (STRONGROOM_UI_API_KEY_LOGIN=1).",
    )
