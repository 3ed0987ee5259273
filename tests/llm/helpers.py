"""Small builders shared by the gateway tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from strongroom.errors import BackendRejected, GatewayError
from strongroom.llm.function import FunctionModel
from strongroom.llm.gateway import Deployment, Gateway
from strongroom.llm.openai_compat import OpenAICompatible, Timeouts
from strongroom.llm.routing import RetryPolicy, Route, StaticRoutes, Target
from strongroom.llm.types import ChatRequest
from strongroom.testing.chat import ScriptedReply
from strongroom.testing.chat_contract import Calls, Refusal, Script
from strongroom.testing.openai_server import FakeOpenAIServer, Reply

FAST_RETRY = RetryPolicy(attempts=2, base_s=0.001, max_s=0.01)


def http(name: str, server: FakeOpenAIServer, *, first_token_s: float = 2.0, **kw: Any) -> Deployment:
    """A deployment backed by a scripted server."""
    timeouts = Timeouts(first_token=first_token_s)
    return Deployment(name, OpenAICompatible(server.url, f"{name}-model", name=name, timeouts=timeouts), **kw)


def scripted_entry(entry: Script) -> str | ScriptedReply | GatewayError:
    """A contract script entry as the scripted model's (it yields calls whole: no fragments)."""
    if isinstance(entry, Refusal):
        return BackendRejected(entry.message)
    if isinstance(entry, Calls):
        return ScriptedReply.calls(*entry.calls, text=entry.text)
    return entry


def server_reply(entry: Script) -> Reply:
    """A contract script entry as the scripted server's (tool calls in fragments)."""
    if isinstance(entry, Calls):
        return Reply.calls(*entry.calls, text=entry.text, split=entry.split)
    return Reply.error(400, entry.message) if isinstance(entry, Refusal) else Reply.stream(entry)


def function(name: str, answer: str | Callable[[ChatRequest], str]) -> Deployment:
    fn = answer if callable(answer) else (lambda _request: answer)
    return Deployment(name, FunctionModel(fn, name=name))


def gateway(targets: list[tuple[str, float]], deployments: list[Deployment], **kw: Any) -> Gateway:
    """A gateway with one route 'chat' v1 over ``targets`` (name, weight)."""
    route = Route("chat", 1, tuple(Target(n, w) for n, w in targets))
    kw.setdefault("retry", FAST_RETRY)
    return Gateway(StaticRoutes([route]), deployments, **kw)


def ask(text: str = "What is the CET1 ratio?", **kw: Any) -> ChatRequest:
    kw.setdefault("model", "chat")
    return ChatRequest.of(text, **kw)
