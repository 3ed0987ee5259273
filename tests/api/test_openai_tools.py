"""Tool calling through the OpenAI-compatible front over real HTTP: the official ``openai``
client sends tools and tool results to a granted model route, and gets tool calls back,
streamed and not; a scripted OpenAI-compatible backend (over real HTTP too) plays the model
and records what it was sent. Refusals: routes not granted, the extractive model, malformed
tool conversations; the audit record names the tools, never their arguments."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from strongroom.api import create_app
from strongroom.config import Settings
from strongroom.llm.deployments import DeploymentSpec, save_deployment
from strongroom.llm.route_config import RouteStore, parse_target
from strongroom.testing import HashEmbedder, tool_call
from strongroom.testing.openai_server import FakeOpenAIServer, Reply
from tests.api.conftest import audit_records, service_settings
from tests.api.live import live_server
from tests.auth.oidc_provider import Provider

pytestmark = pytest.mark.integration

SECRET = "Osprey Holdings Confidential"
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "query_dataset",
            "description": "Run read-only SQL over an entitled dataset",
            "parameters": {"type": "object", "properties": {"sql": {"type": "string"}}, "required": ["sql"]},
        },
    },
    {"type": "function", "function": {"name": "search_documents", "description": "Search documents"}},
]
AGENT = ["readers", "public", "agents"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, provider: Provider) -> Iterator[tuple[str, FakeOpenAIServer]]:
    home = tmp_path_factory.mktemp("tools-home")
    settings = Settings(home=home, embedder="hash", route_groups={"agent": ["agents"]})
    with FakeOpenAIServer(Reply.stream("Nothing to call.")) as backend:
        save_deployment(home, "fake-vllm", DeploymentSpec(backend="openai-compatible", url=backend.url, model="m"))
        routes = RouteStore(home)
        routes.set_route("agent", [parse_target("fake-vllm:100")])
        routes.set_route("other", [parse_target("fake-vllm:100")])
        app = create_app(settings, service_settings(provider), embedder=HashEmbedder(64))
        with live_server(app) as url:
            yield url, backend


def _client(url: str, provider: Provider, groups: list[str], sub: str = "agent-1") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=provider.token(sub=sub, groups=groups), max_retries=0)


def _http(url: str, provider: Provider, groups: list[str], sub: str = "x") -> httpx.Client:
    token = provider.token(sub=sub, groups=groups)
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def test_tool_calls_come_back_whole_and_results_go_to_the_model(
    served: tuple[str, FakeOpenAIServer], provider: Provider
) -> None:
    url, backend = served
    args = json.dumps({"sql": f"select exposure from loans where borrower = '{SECRET}'"})
    backend.script(
        Reply.calls(
            tool_call("query_dataset", args, id="call_q"), tool_call("search_documents", "{}", id="call_s"), split=5
        ),
        Reply.stream("Exposure is 12 million."),
    )
    client = _client(url, provider, AGENT, sub="agent-whole")
    messages: list[Any] = [{"role": "user", "content": "What is our exposure to Osprey?"}]
    first = client.chat.completions.create(model="agent", messages=messages, tools=TOOLS, tool_choice="auto")
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [  # type: ignore[union-attr]
        ("call_q", "query_dataset", args),
        ("call_s", "search_documents", "{}"),
    ]
    sent = backend.requests[-1]
    assert [t["function"]["name"] for t in sent["tools"]] == ["query_dataset", "search_documents"]
    assert sent["tool_choice"] == "auto" and sent["user"] == "agent-whole"
    assert sent["messages"] == [{"role": "user", "content": "What is our exposure to Osprey?"}]

    messages.append(choice.message.model_dump(exclude_none=True))
    messages += [
        {"role": "tool", "tool_call_id": "call_q", "content": '{"rows": [[12000000]]}'},
        {"role": "tool", "tool_call_id": "call_s", "content": "[]"},
    ]
    second = client.chat.completions.create(model="agent", messages=messages, tools=TOOLS)
    assert second.choices[0].message.content == "Exposure is 12 million."
    assert second.choices[0].finish_reason == "stop"
    received = backend.requests[-1]["messages"]
    assert [m["role"] for m in received] == ["user", "assistant", "tool", "tool"]
    assert received[1]["tool_calls"][0]["function"] == {"name": "query_dataset", "arguments": args}
    assert received[2] == {"role": "tool", "content": '{"rows": [[12000000]]}', "tool_call_id": "call_q"}

    with _http(url, provider, ["admins"]) as admin:
        mine = [r for r in audit_records(admin) if r["principal"] == "agent-whole"]
    assert [r["action"] for r in mine] == ["chat.completion", "chat.completion"]
    assert mine[0]["filters"]["tools"] == ["query_dataset", "search_documents"]
    assert mine[0]["filters"]["answered_by"]["tool_calls"] == ["query_dataset", "search_documents"]
    assert mine[0]["generator"] == "fake-vllm" and mine[0]["answer_sha256"]
    assert not [r for r in mine if SECRET in json.dumps(r) or "12000000" in json.dumps(r)]


def test_streamed_tool_calls_in_openais_shape(served: tuple[str, FakeOpenAIServer], provider: Provider) -> None:
    url, backend = served
    backend.script(Reply.calls(tool_call("query_dataset", '{"sql": "select 1"}', id="c1"), text="Checking. ", split=3))
    client = _client(url, provider, AGENT)
    stream = client.chat.completions.create(
        model="agent",
        messages=[{"role": "user", "content": "Run it"}],
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "query_dataset"}},
        stream=True,
        stream_options={"include_usage": True},
    )
    text, calls, finish, usage = [], {}, None, None
    for chunk in stream:
        usage = chunk.usage or usage
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        text.append(delta.content or "")
        for c in delta.tool_calls or []:
            got = calls.setdefault(c.index, {"id": c.id, "name": "", "arguments": ""})
            got["name"] += (c.function and c.function.name) or ""
            got["arguments"] += (c.function and c.function.arguments) or ""
        finish = chunk.choices[0].finish_reason or finish
    assert "".join(text) == "Checking. " and finish == "tool_calls"
    assert calls == {0: {"id": "c1", "name": "query_dataset", "arguments": '{"sql": "select 1"}'}}
    assert usage is not None and usage.completion_tokens > 0
    assert backend.requests[-1]["tool_choice"] == {"type": "function", "function": {"name": "query_dataset"}}


def test_a_model_reacting_to_tool_results_over_several_steps(
    served: tuple[str, FakeOpenAIServer], provider: Provider
) -> None:
    url, backend = served

    def model(body: dict[str, Any]) -> Reply:
        results = [m for m in body["messages"] if m["role"] == "tool"]
        if len(results) < 2:
            return Reply.calls(tool_call("query_dataset", json.dumps({"sql": f"step {len(results)}"})))
        return Reply.stream(f"Done after {len(results)} results.")

    backend.script(model, model, model)
    client = _client(url, provider, AGENT)
    messages: list[Any] = [{"role": "user", "content": "Go"}]
    for _ in range(5):
        done = client.chat.completions.create(model="agent", messages=messages, tools=TOOLS)
        message = done.choices[0].message
        if done.choices[0].finish_reason != "tool_calls":
            break
        messages.append(message.model_dump(exclude_none=True))
        messages += [{"role": "tool", "tool_call_id": c.id, "content": '"ok"'} for c in message.tool_calls or []]
    assert message.content == "Done after 2 results."
    assert backend.failures == []


def test_refusals_never_reach_the_model(served: tuple[str, FakeOpenAIServer], provider: Provider) -> None:
    url, backend = served
    before = len(backend.requests)
    user = [{"role": "user", "content": "hi"}]
    outsider = _client(url, provider, ["readers", "public"])
    for model in ("agent", "other", "no-such-route"):
        with pytest.raises(openai.NotFoundError, match="no model route"):
            outsider.chat.completions.create(model=model, messages=user, tools=TOOLS)  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError, match="cannot call tools"):
        _client(url, provider, AGENT).chat.completions.create(model="strongroom-rag", messages=user, tools=TOOLS)  # type: ignore[arg-type]
    no_role = _client(url, provider, ["public", "agents"])
    with pytest.raises(openai.PermissionDeniedError):
        no_role.chat.completions.create(model="agent", messages=user, tools=TOOLS)  # type: ignore[arg-type]
    assert len(backend.requests) == before
    with _http(url, provider, ["admins"]) as admin:
        refused = [r for r in audit_records(admin) if r["action"] == "chat.completion" and r["outcome"] != "ok"]
    assert {r["outcome"] for r in refused} >= {"not_found", "denied"}


ASSISTANT_CALL = {
    "role": "assistant",
    "content": None,
    "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "query_dataset", "arguments": "{}"}}],
}


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, 422, "name"),
        ({"tools": [{"type": "retrieval"}]}, 422, "function"),
        ({"tools": [{"function": {"name": "x"}}]}, 422, "type"),
        ({"tools": [TOOLS[0]] * 129}, 422, "128"),
        ({"tools": TOOLS, "tool_choice": "sometimes"}, 422, "tool_choice"),
        ({"tools": [TOOLS[0], TOOLS[0]]}, 400, "same name"),
        ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "drop_table"}}}, 400, "drop_table"),
        ({"tool_choice": "required", "messages": [ASSISTANT_CALL]}, 400, "needs tools"),
        ({"messages": [{"role": "tool", "content": "x", "tool_call_id": "c1"}]}, 400, "answers no tool call"),
        ({"tools": TOOLS, "messages": [{"role": "user", "content": "x"}, {"role": "tool", "content": "1", "tool_call_id": "zz"}]}, 400, "answers no tool call"),
        ({"tools": TOOLS, "messages": [ASSISTANT_CALL, {"role": "tool", "content": "1"}]}, 400, "tool_call_id"),
        ({"tools": TOOLS, "messages": [{"role": "user", "content": "x", "tool_calls": ASSISTANT_CALL["tool_calls"]}]}, 400, "only an assistant"),
        ({"tools": TOOLS, "messages": [{"role": "wizard", "content": "x"}]}, 400, "unknown role"),
        ({"tools": TOOLS, "messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "q"}}]}]}, 422, "arguments"),
        ({"tools": TOOLS, "stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
        ({"tools": TOOLS, "temperature": 7}, 422, "temperature"),
    ],
)  # fmt: skip
def test_a_bad_tools_body_is_a_clear_client_error(
    served: tuple[str, FakeOpenAIServer], provider: Provider, body: dict[str, Any], status: int, says: str
) -> None:
    url, backend = served
    before = len(backend.requests)
    payload = {"model": "agent", "messages": [{"role": "user", "content": "hi"}], **body}
    with _http(url, provider, AGENT) as c:
        r = c.post("/v1/chat/completions", json=payload)
    assert r.status_code == status, r.text
    assert says in r.text
    assert len(backend.requests) == before


def test_a_failure_mid_stream_is_an_error_event(served: tuple[str, FakeOpenAIServer], provider: Provider) -> None:
    url, backend = served
    backend.script(Reply.stream("one two three four", drop_after=2))
    stream = _client(url, provider, AGENT).chat.completions.create(
        model="agent", messages=[{"role": "user", "content": "hi"}], tools=TOOLS, stream=True
    )
    got = []
    with pytest.raises(openai.APIError, match="StreamInterrupted"):
        for chunk in stream:
            if chunk.choices:
                got.append(chunk.choices[0].delta.content or "")
    assert "".join(got) == "one two "
    backend.script(*[Reply.error(500, "engine at http://10.0.0.7:8000 died")] * 2)  # the gateway tries twice
    with pytest.raises(openai.InternalServerError) as failed:
        _client(url, provider, AGENT).chat.completions.create(
            model="agent", messages=[{"role": "user", "content": "hi"}], tools=TOOLS
        )
    assert failed.value.status_code == 503 and "NoDeploymentAvailable" in str(failed.value)
    assert "10.0.0.7" not in str(failed.value) and "127.0.0.1" not in str(failed.value)
    again = _client(url, provider, AGENT).chat.completions.create(
        model="agent", messages=[{"role": "user", "content": "hi"}], tools=TOOLS
    )
    assert again.choices[0].message.content == "Nothing to call."  # the script is spent: nothing left over


def test_a_question_without_tools_is_still_answered_from_the_store(
    served: tuple[str, FakeOpenAIServer], provider: Provider
) -> None:
    url, backend = served
    before = len(backend.requests)
    done = _client(url, provider, AGENT).chat.completions.create(
        model="strongroom-rag", messages=[{"role": "user", "content": "What was revenue?"}]
    )
    assert done.choices[0].message.content and len(backend.requests) == before
