"""One exception tree for strongroom. Every message says what happened and what to do.

    StrongroomError
    ├── ConfigError               bad settings, unknown backend name
    ├── IngestError               one input could not be ingested (the batch goes on)
    │   ├── UnsupportedFormat     no parser for this file type
    │   ├── CorruptDocument       the parser could not read the bytes (damaged, encrypted, empty)
    │   ├── TooLarge              over the configured size limit
    │   ├── DocumentRejected      the ingestion policy refused it (e.g. it holds a secret)
    │   ├── ParseStopped          parsing was stopped by a shutdown: ingest the file again
    │   └── WriteDenied           the principal may not add to this document, or asked for another ACL
    ├── StoreError                the store could not be opened, read or written (or --home holds none)
    ├── EmbeddingError            the embedding backend failed or is misconfigured
    ├── QueryError                a search or question was malformed (bad date, bad filter)
    │   └── NotErasable           audit records that cannot be erased (format 1/2, or missing)
    ├── NotFound                  no such thing, or none the principal may see (the same answer)
    ├── PermissionDenied          the principal lacks the role or entitlement for an operation
    │   └── DocumentHeld          a legal hold covers the document: no deletion (matter_id, hold_id)
    ├── ApprovalPending           four-eyes: the change was proposed, not made (proposal_id; HTTP 202)
    ├── AuthenticationError       a token or API key was refused (HTTP 401)
    ├── BusUnavailable            the message bus cannot be reached
    └── GatewayError              the model gateway could not answer
        ├── RequestRejected          the request itself breaks a rule: never retried, no failover
        │   ├── UnknownRoute         no route has this public model name
        │   ├── PromptTooLarge       prompt or max_tokens over the configured limit
        │   ├── BudgetExceeded       a per-principal or per-route budget is spent (retry_after)
        │   ├── BudgetUnavailable    the budget store (Redis) cannot be reached: calls are refused
        │   └── NotCleared           no deployment of the route is cleared for the context's sensitivity
        ├── BackendError             one deployment failed; the gateway may retry it or fail over
        │   ├── BackendUnavailable   connection refused or dropped, 5xx         (retryable)
        │   ├── RateLimited          429 from the backend (retry_after)         (retryable)
        │   ├── BackendTimeout       connect, first-token or total timeout      (retryable)
        │   ├── BadBackendResponse   malformed SSE or JSON                      (fails over)
        │   ├── BackendRejected      a 4xx other than 429                       (fails over)
        │   ├── ContinuationMismatch a fallback's replay does not start with the text sent
        │   └── DeploymentBusy       circuit open or concurrency cap reached    (fails over)
        ├── StreamInterrupted        a deployment failed after text reached the caller
        └── NoDeploymentAvailable    every deployment of the route failed or was skipped

Library exceptions are translated at the adapter: ``raise CorruptDocument(...) from exc``.
``retryable`` on a :class:`BackendError` says whether trying the *same* deployment again
(after a short backoff) may help; any :class:`BackendError` lets the gateway move on to the
next deployment, as long as no text has reached the caller yet. Every class strongroom
raises on purpose is here, so ``except`` clauses and the HTTP error mapping read one module.
"""

from __future__ import annotations

__all__ = [
    "ApprovalPending",
    "AuthenticationError",
    "BackendError",
    "BackendRejected",
    "BackendTimeout",
    "BackendUnavailable",
    "BadBackendResponse",
    "BudgetExceeded",
    "BudgetUnavailable",
    "BusUnavailable",
    "ConfigError",
    "ContinuationMismatch",
    "CorruptDocument",
    "DeploymentBusy",
    "DocumentHeld",
    "DocumentRejected",
    "EmbeddingError",
    "GatewayError",
    "IngestError",
    "NoDeploymentAvailable",
    "NotCleared",
    "NotErasable",
    "NotFound",
    "ParseStopped",
    "PermissionDenied",
    "PromptTooLarge",
    "QueryError",
    "RateLimited",
    "RequestRejected",
    "StoreError",
    "StreamInterrupted",
    "StrongroomError",
    "TooLarge",
    "UnknownRoute",
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


class NotErasable(QueryError):
    """Audit records asked to be erased that cannot be: ``legacy`` are format 1 or 2 (their
    hash covers their text, so erasing it would break the chain), ``missing`` do not exist.
    Nothing was erased."""

    def __init__(self, message: str, *, legacy: tuple[int, ...] = (), missing: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.legacy = legacy
        self.missing = missing


class PermissionDenied(StrongroomError):
    """The principal lacks the role (reader, ingester, admin) or the groups an operation needs."""


class DocumentHeld(PermissionDenied):
    """A legal hold (of matter ``matter_id``, hold ``hold_id``) covers the document: it is
    deleted neither by retention nor by hand until the hold is released."""

    def __init__(self, message: str, *, matter_id: str, hold_id: str) -> None:
        super().__init__(message)
        self.matter_id = matter_id
        self.hold_id = hold_id


class ApprovalPending(StrongroomError):
    """Four-eyes approval is on: the change was kept as proposal ``proposal_id`` and takes
    effect only when another person with the approver role approves it."""

    def __init__(self, message: str, proposal_id: str) -> None:
        super().__init__(message)
        self.proposal_id = proposal_id


class DocumentRejected(IngestError):
    """The policy refuses this document (for example it holds a payment card number).

    The message names the finding types and counts, never the values.
    """


class ParseStopped(IngestError):
    """Parsing (or drawing a page) was stopped by :func:`stop_parses` (the process is shutting
    down): the file is not bad, it should be ingested (or drawn) again."""


class AuthenticationError(StrongroomError):
    """The caller's credentials were missing or invalid (HTTP 401). The message is safe to show."""


class BusUnavailable(StrongroomError):
    """The bus cannot be reached."""


class GatewayError(StrongroomError):
    """Base of every error the model gateway and its backends raise."""


class RequestRejected(GatewayError):
    """The request breaks a rule of the gateway; sending it elsewhere would not help."""


class UnknownRoute(RequestRejected):
    """No route is configured under the requested public model name."""


class PromptTooLarge(RequestRejected):
    """The prompt, or the completion it asks for, is over the configured limit."""


class BudgetExceeded(RequestRejected):
    """A request or token budget is spent; ``retry_after`` says when it refills enough."""

    def __init__(self, message: str, *, retry_after: float, scope: str) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.scope = scope


class BudgetUnavailable(RequestRejected):
    """The shared budget store could not be read; the gateway refuses calls it cannot meter."""


class NotCleared(RequestRejected):
    """The request's context is above every deployment's clearance (sensitivity level, or
    MNPI): the gateway sends it nowhere rather than to a deployment not cleared for it."""


class BackendError(GatewayError):
    """One deployment failed to answer. ``retryable``: trying it again may help."""

    retryable: bool = False
    #: whether the failure says something about the deployment's health (feeds its breaker)
    counts_against_health: bool = True


class BackendUnavailable(BackendError):
    """The backend could not be reached, dropped the connection, or answered 5xx."""

    retryable = True


class RateLimited(BackendError):
    """The backend answered 429. ``retry_after`` is its hint in seconds, when it gave one."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BackendTimeout(BackendError):
    """The backend took too long to connect, to send its first token, or to finish."""

    retryable = True


class BadBackendResponse(BackendError):
    """The backend answered something that is not valid OpenAI-style SSE or JSON."""


class BackendRejected(BackendError):
    """The backend refused the request (a 4xx other than 429): check its URL, key and model."""

    counts_against_health = False


class ContinuationMismatch(BackendError):
    """After a mid-stream failure, a fallback's answer did not start with the text already
    sent, so it cannot continue the answer; the gateway tries the next one."""

    counts_against_health = False


class DeploymentBusy(BackendError):
    """The deployment was skipped: its circuit breaker is open or its concurrency cap is reached."""

    counts_against_health = False


class StreamInterrupted(GatewayError):
    """A deployment failed after part of the answer had reached the caller.

    ``sent_text`` is what the caller already has. The gateway does not fail over at that
    point unless the request set ``allow_mid_stream_failover``, and never repeats text.
    """

    def __init__(self, message: str, *, deployment: str, sent_text: str) -> None:
        super().__init__(message)
        self.deployment = deployment
        self.sent_text = sent_text


class NoDeploymentAvailable(GatewayError):
    """Every deployment of the route failed or was skipped; ``attempts`` says why for each."""

    def __init__(self, message: str, *, attempts: tuple[tuple[str, str], ...]) -> None:
        super().__init__(message)
        self.attempts = attempts
