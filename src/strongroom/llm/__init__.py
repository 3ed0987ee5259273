"""Chat models and the model gateway: one governed entry point for every LLM backend.

    from strongroom.llm import (ChatRequest, Deployment, FunctionModel, Gateway, OpenAICompatible,
                                Route, StaticRoutes, Target)

    gateway = Gateway(
        StaticRoutes([Route("chat", 1, (Target("vllm", 1), Target("extractive")))]),
        [Deployment("vllm", OpenAICompatible("http://gpu1:8000/v1", "llama-3.1-8b")),
         Deployment("extractive", FunctionModel(extract))],
    )
    result = await gateway.chat(ChatRequest.of("Summarise the 10-Q", model="chat", user="alice"))
    result.text, result.deployment, result.route_version

``LocalModel`` (transformers) and ``RedisBuckets`` (redis) load their heavy dependencies
only when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strongroom.errors import (
    BackendError,
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
    BadBackendResponse,
    BudgetExceeded,
    BudgetUnavailable,
    ContinuationMismatch,
    DeploymentBusy,
    GatewayError,
    NoDeploymentAvailable,
    PromptTooLarge,
    RateLimited,
    RequestRejected,
    StreamInterrupted,
    UnknownRoute,
)
from strongroom.llm.breaker import BreakerPolicy, BreakerState, CircuitBreaker
from strongroom.llm.deployments import DeploymentSpec, build_deployment, open_gateway
from strongroom.llm.function import FunctionModel
from strongroom.llm.gateway import Deployment, Gateway, GatewayStream
from strongroom.llm.limits import BucketStore, Budget, InProcessBuckets, Limits, Rate
from strongroom.llm.metrics import GatewayMetrics
from strongroom.llm.openai_compat import OpenAICompatible, Timeouts
from strongroom.llm.protocol import ChatModel, complete, complete_with_tools
from strongroom.llm.route_config import RouteStore
from strongroom.llm.routing import RetryPolicy, Route, RouteSource, StaticRoutes, Target
from strongroom.llm.types import ChatMessage, ChatRequest, ChatResult, Delta, Failover, ToolCall, ToolSpec, Usage

if TYPE_CHECKING:
    from strongroom.llm.local import LocalModel
    from strongroom.llm.redis_limits import RedisBuckets

__all__ = [
    "BackendError",
    "BackendRejected",
    "BackendTimeout",
    "BackendUnavailable",
    "BadBackendResponse",
    "BreakerPolicy",
    "BreakerState",
    "BucketStore",
    "Budget",
    "BudgetExceeded",
    "BudgetUnavailable",
    "ChatMessage",
    "ChatModel",
    "ChatRequest",
    "ChatResult",
    "CircuitBreaker",
    "ContinuationMismatch",
    "Delta",
    "Deployment",
    "DeploymentBusy",
    "DeploymentSpec",
    "Failover",
    "FunctionModel",
    "Gateway",
    "GatewayError",
    "GatewayMetrics",
    "GatewayStream",
    "InProcessBuckets",
    "Limits",
    "LocalModel",
    "NoDeploymentAvailable",
    "OpenAICompatible",
    "PromptTooLarge",
    "Rate",
    "RateLimited",
    "RedisBuckets",
    "RequestRejected",
    "RetryPolicy",
    "Route",
    "RouteSource",
    "RouteStore",
    "StaticRoutes",
    "StreamInterrupted",
    "Target",
    "Timeouts",
    "ToolCall",
    "ToolSpec",
    "UnknownRoute",
    "Usage",
    "build_deployment",
    "complete",
    "complete_with_tools",
    "open_gateway",
]


def __getattr__(name: str) -> Any:
    if name == "LocalModel":
        from strongroom.llm.local import LocalModel

        return LocalModel
    if name == "RedisBuckets":
        from strongroom.llm.redis_limits import RedisBuckets

        return RedisBuckets
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
