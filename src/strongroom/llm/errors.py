"""The model gateway's exception tree. Every message says what happened and what to do.

    StrongroomError
    └── GatewayError
        ├── RequestRejected          the request itself breaks a rule: never retried, no failover
        │   ├── UnknownRoute         no route has this public model name
        │   ├── PromptTooLarge       prompt or max_tokens over the configured limit
        │   ├── BudgetExceeded       a per-principal or per-route budget is spent (retry_after)
        │   └── BudgetUnavailable    the budget store (Redis) cannot be reached: calls are refused
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

``retryable`` on a :class:`BackendError` says whether trying the *same* deployment again
(after a short backoff) may help. Any :class:`BackendError` lets the gateway move on to the
next deployment, as long as no text has reached the caller yet. Backend adapters translate
library exceptions here: ``raise BackendUnavailable(...) from exc``.
"""

from __future__ import annotations

from strongroom.errors import StrongroomError

__all__ = [
    "BackendError",
    "BackendRejected",
    "BackendTimeout",
    "BackendUnavailable",
    "BadBackendResponse",
    "BudgetExceeded",
    "BudgetUnavailable",
    "ContinuationMismatch",
    "DeploymentBusy",
    "GatewayError",
    "NoDeploymentAvailable",
    "PromptTooLarge",
    "RateLimited",
    "RequestRejected",
    "StreamInterrupted",
    "UnknownRoute",
]


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
