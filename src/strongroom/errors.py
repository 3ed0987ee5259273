"""One exception tree for strongroom. Every message says what happened and what to do.

    StrongroomError
    ├── ConfigError            bad settings, unknown backend name, unusable home directory
    ├── IngestError            one input could not be ingested (the batch goes on)
    │   ├── UnsupportedFormat  no parser for this file type
    │   ├── CorruptDocument    the parser could not read the bytes (damaged, encrypted, empty)
    │   ├── TooLarge           over the configured size limit
    │   └── DocumentRejected   policy refused it (strongroom.understand: e.g. a secret to reject)
    │   └── WriteDenied        the principal may not add to this document, or asked for another ACL
    ├── StoreError             the store could not be read or written
    ├── EmbeddingError         the embedding backend failed or is misconfigured
    ├── QueryError             a search or question was malformed (bad date, bad filter)
    ├── NotFound               no such thing, or none the principal may see (the same answer)
    ├── PermissionDenied       the principal lacks the role or entitlement for an operation
    ├── AuthenticationError    a token or API key was refused (strongroom.auth.oidc)
    └── GatewayError           the model gateway could not answer (strongroom.llm.errors has the
                               subtree: RequestRejected, BackendError, StreamInterrupted, ...)

Library exceptions are translated at the adapter: ``raise CorruptDocument(...) from exc``.
Subtrees that belong to one package live in it, rooted here.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "CorruptDocument",
    "EmbeddingError",
    "IngestError",
    "NotFound",
    "PermissionDenied",
    "QueryError",
    "StoreError",
    "StrongroomError",
    "TooLarge",
    "UnsupportedFormat",
    "WriteDenied",
]


class StrongroomError(Exception):
    """Base of every error strongroom raises on purpose."""


class ConfigError(StrongroomError):
    """Settings are invalid or name something that does not exist."""


class IngestError(StrongroomError):
    """One input could not be ingested; the message says why and what to do."""


class UnsupportedFormat(IngestError):
    """No parser handles this file type."""


class CorruptDocument(IngestError):
    """The file could not be parsed: damaged, encrypted, empty or zero pages."""


class TooLarge(IngestError):
    """The file is over the configured size limit."""


class StoreError(StrongroomError):
    """The store could not be opened, read or written."""


class EmbeddingError(StrongroomError):
    """The embedding backend failed or is misconfigured."""


class QueryError(StrongroomError):
    """A search or question was malformed."""


class WriteDenied(IngestError):
    """A write the principal is not entitled to: a new version of a document it may not
    read, or bytes already stored under another ACL (change that with ``acl set``)."""


class NotFound(StrongroomError):
    """No such document, version, page, job or key, or none the principal may see: the two
    are deliberately the same answer, so a refusal reveals nothing."""


class PermissionDenied(StrongroomError):
    """The principal lacks the role (reader, ingester, admin) or the groups an operation needs."""
