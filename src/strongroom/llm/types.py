"""The gateway's vocabulary: frozen values that flow between callers, the gateway and backends.

ChatRequest --ChatModel.stream--> Delta, Delta, ..., Delta(finish_reason, usage)
ChatRequest --Gateway.chat-----> ChatResult (text, usage, deployment, route_version, failovers)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "ChatMessage",
    "ChatRequest",
    "ChatResult",
    "Delta",
    "Failover",
    "ToolCall",
    "ToolSpec",
    "Usage",
    "estimate_tokens",
    "prompt_tokens_estimate",
]

#: the rough characters-per-token of English text under BPE tokenizers
CHARS_PER_TOKEN = 4
#: tokens a chat template adds around each message (role markers, separators)
TOKENS_PER_MESSAGE = 4


def estimate_tokens(text: str) -> int:
    """Estimate the token count of ``text`` at ~4 characters per token (used without ``usage``)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool a model may call (OpenAI's ``{"type": "function", "function": ...}``):
    its name, what it does, and its arguments as a JSON Schema object."""

    name: str
    description: str
    parameters: dict[str, object]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A model's call of a tool. ``arguments`` is the JSON text exactly as the model wrote
    it (it may be malformed: the caller parses and validates it, never the backend)."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of a conversation. ``role`` is ``system``, ``user``, ``assistant`` or
    ``tool``. An assistant message may carry ``tool_calls``; a ``tool`` message answers the
    call named by ``tool_call_id`` (its ``content`` is the tool's result, sent as data)."""

    role: str
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


def prompt_tokens_estimate(messages: Iterable[ChatMessage]) -> int:
    """Estimate the prompt tokens of ``messages`` including per-message template overhead
    (and the names and arguments of the tool calls an assistant message carries)."""
    total = 0
    for m in messages:
        total += estimate_tokens(m.content) + TOKENS_PER_MESSAGE
        if m.tool_calls:
            total += sum(estimate_tokens(c.name + c.arguments) for c in m.tool_calls)
    return total


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What a caller asks of a chat model.

    ``model`` is the public model name (the route) when sent to the gateway; a backend
    ignores it and uses its own configured model id. ``user`` names the principal for
    budgets and is forwarded as OpenAI's ``user`` field. ``request_id`` makes the
    champion/challenger split deterministic. ``allow_mid_stream_failover`` lets the gateway
    replay the request on another deployment after text was already streamed; it then
    only continues if the new answer starts with exactly the text already sent.

        ChatRequest((ChatMessage("user", "Summarise the Q3 filing"),), model="chat", user="alice")
        ChatRequest.of("Summarise the Q3 filing", model="chat", system="Cite pages.", max_tokens=300)
    """

    messages: tuple[ChatMessage, ...]
    model: str = "default"
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    user: str | None = None
    request_id: str | None = None
    allow_mid_stream_failover: bool = False
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: str | None = None  # "auto", "none", "required", or a tool's name (None: the backend's default)

    @classmethod
    def of(cls, prompt: str, *, model: str = "default", system: str | None = None, **kw: object) -> ChatRequest:
        """A one-turn request: an optional system message and one user message."""
        msgs = ((ChatMessage("system", system),) if system else ()) + (ChatMessage("user", prompt),)
        return cls(msgs, model, **kw)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens a call used. ``estimated`` is true when the backend reported none and we counted."""

    prompt_tokens: int
    completion_tokens: int
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Delta:
    """A piece of a streamed answer. The last delta of a stream carries ``finish_reason``
    (``stop``, ``length``, ``tool_calls``, ...) and, when the backend reports it, ``usage``.
    ``tool_calls``: whole tool calls (a backend assembles the streamed fragments and yields
    each call once, complete, before or with the last delta)."""

    text: str
    finish_reason: str | None = None
    usage: Usage | None = None
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True, slots=True)
class Failover:
    """One deployment the gateway tried and left, and why (the error class and message)."""

    deployment: str
    error: str
    message: str


@dataclass(frozen=True, slots=True)
class ChatResult:
    """A finished answer and what produced it, for the caller and the audit record.

    ``model`` is the public model name asked for; ``deployment`` the one that answered;
    ``route_version`` the version of the route configuration that served the call.
    """

    text: str
    usage: Usage
    model: str
    deployment: str
    route_version: int
    finish_reason: str
    failovers: tuple[Failover, ...] = ()
    first_token_s: float | None = None
    latency_s: float = 0.0
    request_id: str | None = None
    attempts: int = 1
    tool_calls: tuple[ToolCall, ...] = ()
