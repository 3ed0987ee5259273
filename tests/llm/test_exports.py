"""The public API of strongroom.llm is curated: this pins it."""

from __future__ import annotations

import strongroom.llm as llm

EXPECTED = {
    "BackendError", "BackendRejected", "BackendTimeout", "BackendUnavailable", "BadBackendResponse",
    "BreakerPolicy", "BreakerState", "BucketStore", "Budget", "BudgetExceeded", "BudgetUnavailable", "ChatMessage", "ChatModel",
    "ChatRequest", "ChatResult", "CircuitBreaker", "ContinuationMismatch", "Delta", "Deployment",
    "DeploymentBusy", "DeploymentSpec", "Failover", "FunctionModel", "Gateway", "GatewayError",
    "GatewayMetrics", "GatewayStream", "InProcessBuckets", "Limits", "LocalModel", "NoDeploymentAvailable",
    "OpenAICompatible", "PromptTooLarge", "Rate", "RateLimited", "RedisBuckets", "RequestRejected",
    "RetryPolicy", "Route", "RouteSource", "RouteStore", "StaticRoutes", "StreamInterrupted", "Target",
    "Timeouts", "ToolCall", "ToolSpec", "UnknownRoute", "Usage", "build_deployment", "complete",
    "complete_with_tools", "open_gateway",
}  # fmt: skip


def test_all_is_pinned_and_importable() -> None:
    assert set(llm.__all__) == EXPECTED
    for name in llm.__all__:
        assert getattr(llm, name) is not None


def test_every_gateway_error_is_a_strongroom_error() -> None:
    from strongroom.errors import StrongroomError

    errors = [getattr(llm, n) for n in llm.__all__ if isinstance(getattr(llm, n), type)]
    gateway_errors = [e for e in errors if issubclass(e, Exception)]
    assert gateway_errors and all(issubclass(e, llm.GatewayError) for e in gateway_errors)
    assert issubclass(llm.GatewayError, StrongroomError)
