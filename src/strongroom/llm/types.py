"""The gateway's vocabulary: frozen values that flow between callers, the gateway and backends.

ChatRequest --ChatModel.stream--> Delta, Delta, ..., Delta(finish_reason, usage)
ChatRequest --Gateway.chat-----> ChatResult (text, usage, deployment, route_version, failovers)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "SENSITIVITY_LEVELS",
    "ChatMessage",
    "ChatRequest",
    "ChatResult",
    "Delta",
    "Failover",
    "Sensitivity",
    "ToolCall",
    "ToolSpec",
    "Usage",
    "cleared",
    "estimate_tokens",
    "prompt_tokens_estimate",
]

#: the rough characters-per-token of English text under BPE tokenizers
CHARS_PER_TOKEN = 4
#: tokens a chat template adds around each message (role markers, separators)
TOKENS_PER_MESSAGE = 4


#: the sensitivity levels, lowest first: the same four the ingestion policy derives
#: (:mod:`strongroom.ingest.understand.policy`, which sits above this layer)
Sensitivity = Literal["public", "internal", "confidential", "restricted"]
SENSITIVITY_LEVELS: tuple[Sensitivity, ...] = ("public", "internal", "confidential", "restricted")


def cleared(clearance: str, mnpi_cleared: bool, sensitivity: str | None, mnpi: bool) -> bool:
    """Whether a deployment cleared for ``clearance`` (and for MNPI when ``mnpi_cleared``) may
    see a context of ``sensitivity`` (None: nothing above public) that holds MNPI when ``mnpi``.
    A level this module does not know counts as the highest on either side: deny, never guess."""
    top = len(SENSITIVITY_LEVELS) - 1
    need = 0 if sensitivity is None else _level(sensitivity, top)
    have = _level(clearance, -1)  # an unknown clearance clears nothing
    return need <= have and (mnpi_cleared or not mnpi)


def _level(name: str, unknown: int) -> int:
    return SENSITIVITY_LEVELS.index(name) if name in SENSITIVITY_LEVELS else unknown


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
    ``sensitivity`` and ``mnpi`` say what the request's context holds (the highest level of
    the retrieved documents or tool results it carries, and whether any of them is MNPI):
    the gateway sends it only to deployments cleared for that (None: nothing above public).

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
    sensitivity: str | None = None  # the highest sensitivity level of the context (None: public)
    mnpi: bool = False  # the context holds material non-public information

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
