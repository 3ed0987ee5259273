"""The tool-calling ``/v1/chat/completions`` over real HTTP carries the clearance of the
strongroom tool results in its messages: a client agent that got restricted (MNPI) passages
from the MCP ``search_documents`` tool and sends them back as a ``tool`` message reaches only
a deployment cleared for them — never the route's public-cleared champion, not even on
failover — is refused with 403 saying why when the route has none, and the audit record
names the clearance and the version that forced it. ``strongroom_sensitivity`` and
``strongroom_mnpi`` raise what a conversation needs, never lower it. Two scripted
OpenAI-compatible backends (over real HTTP) play the deployments and record what they got."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from strongroom.agent.base import Evidence, ToolOutput
from strongroom.api import create_app
from strongroom.api.mcp import tool_result
from strongroom.config import Settings
from strongroom.llm.deployments import DeploymentSpec, save_deployment
from strongroom.llm.route_config import RouteStore, parse_target
from strongroom.testing import HashEmbedder, tool_call
from strongroom.testing.openai_server import FakeOpenAIServer, Reply
from tests.api.conftest import audit_records, service_settings
from tests.api.live import live_server
from tests.auth.oidc_provider import Provider

pytestmark = pytest.mark.integration

PASSAGE = "Project Kestrel: the board approved the acquisition of Osprey at 41.20 a share"
VERSION = "v-kestrel-board-minutes"
TOOLS: list[Any] = [{"type": "function", "function": {"name": "search_documents", "description": "Search"}}]
AGENT = ["readers", "agents"]


def _failing(body: dict[str, Any]) -> Reply:
    """A deployment that fails every conversation whose first user message says ``[fail]``."""
    first = next(m["content"] for m in body["messages"] if m["role"] == "user")
    return Reply.error(500, "down") if "[fail]" in first else Reply.stream("From the cleared deployment.")


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, provider: Provider
) -> Iterator[tuple[str, FakeOpenAIServer, FakeOpenAIServer]]:
    home = tmp_path_factory.mktemp("clearance-home")
    groups = {"agent": ["agents"], "pair": ["agents"], "public-only": ["agents"]}
    settings = Settings(home=home, embedder="hash", route_groups=groups)
    with FakeOpenAIServer(Reply.stream("From outside.")) as outside, FakeOpenAIServer(_failing) as vault:
        save_deployment(home, "outside", DeploymentSpec(backend="openai-compatible", url=outside.url, model="m"))
        spec = DeploymentSpec(backend="openai-compatible", url=vault.url, model="m", clearance="restricted", mnpi=True)
        save_deployment(home, "vault", spec)
        routes = RouteStore(home)
        routes.set_route("agent", [parse_target("outside:100"), parse_target("vault")])  # the champion is public
        routes.set_route("pair", [parse_target("vault:100"), parse_target("outside")])  # fails over to public
        routes.set_route("public-only", [parse_target("outside:100")])
        app = create_app(settings, service_settings(provider), embedder=HashEmbedder(64))
        with live_server(app) as url:
            yield url, outside, vault


def _http(url: str, provider: Provider, groups: list[str], sub: str) -> httpx.Client:
    token = provider.token(sub=sub, groups=groups)
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _search_result(*, mnpi: bool = True) -> str:
    """What the MCP server sends a client for a search that found a restricted passage."""
    ref = {"document_id": "d-kestrel", "version_id": VERSION, "page": 2, "sensitivity": "restricted", "mnpi": mnpi}
    passage = {"n": 1, **ref, "title": "Board minutes", "text": PASSAGE}
    output = ToolOutput({"passages": [passage]}, (Evidence("page", ref, PASSAGE),))
    block = tool_result(output).content[0]
    assert block.type == "text"
    return block.text


def _conversation(result: str | None, question: str = "What did the board decide?") -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "user", "content": question}]
    if result is not None:
        call = tool_call("search_documents", '{"query": "board"}', id="call_1")
        wire = {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
        messages += [
            {"role": "assistant", "content": None, "tool_calls": [wire]},
            {"role": "tool", "tool_call_id": "call_1", "content": result},
        ]
    return messages


def _ask(client: httpx.Client, model: str, messages: list[dict[str, Any]], **more: Any) -> httpx.Response:
    return client.post("/v1/chat/completions", json={"model": model, "messages": messages, "tools": TOOLS, **more})


def _streamed(response: httpx.Response) -> str:
    chunks = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def _message(response: httpx.Response) -> str:
    return str(response.json()["error"]["message"])


def _sent_passage(backend: FakeOpenAIServer, since: int) -> bool:
    return any(PASSAGE in json.dumps(body) for body in backend.requests[since:])


def _records(url: str, provider: Provider, sub: str) -> list[dict[str, Any]]:
    with _http(url, provider, ["admins"], "auditor") as admin:
        return [r for r in audit_records(admin) if r["principal"] == sub]


def test_the_mcp_result_carries_a_clearance_marker() -> None:
    marker = json.loads(_search_result())["clearance"]
    assert marker == {"sensitivity": "restricted", "mnpi": True, "forced_by": [VERSION]}
    public = ToolOutput({"passages": []}, (Evidence("page", {"version_id": "v1", "sensitivity": "public"}, "x"),))
    assert "clearance" not in json.loads(tool_result(public).content[0].text)  # type: ignore[union-attr]


def test_restricted_tool_output_reaches_only_a_cleared_deployment(
    served: tuple[str, FakeOpenAIServer, FakeOpenAIServer], provider: Provider
) -> None:
    url, outside, vault = served
    with _http(url, provider, AGENT, "agent-route") as client:
        before = len(outside.requests), len(vault.requests)
        public = _ask(client, "agent", _conversation('{"passages": []}'))
        assert public.status_code == 200, public.text
        assert len(outside.requests) == before[0] + 1  # the champion answers a public conversation
        whole = _ask(client, "agent", _conversation(_search_result()))
        assert whole.status_code == 200, whole.text
        assert whole.json()["choices"][0]["message"]["content"] == "From the cleared deployment."
        # a client that forwards only the passages (no marker, no evidence): their labels still count
        passages = json.dumps(json.loads(_search_result())["content"])
        bare = _ask(client, "agent", _conversation(passages), stream=True)
        assert bare.status_code == 200 and _streamed(bare) == "From the cleared deployment."
    assert len(outside.requests) == before[0] + 1 and not _sent_passage(outside, 0)
    assert len(vault.requests) == before[1] + 2 and _sent_passage(vault, before[1])
    chats = _records(url, provider, "agent-route")
    assert [r["generator"] for r in chats] == ["outside", "vault", "vault"]
    assert "context_clearance" not in chats[0]["filters"]
    for record in chats[1:]:
        assert record["filters"]["context_clearance"] == "restricted (MNPI)"
        assert record["filters"]["clearance_forced_by"] == VERSION
    assert PASSAGE not in json.dumps(chats)


def test_failover_never_reaches_a_deployment_not_cleared(
    served: tuple[str, FakeOpenAIServer, FakeOpenAIServer], provider: Provider
) -> None:
    url, outside, _ = served
    with _http(url, provider, AGENT, "agent-failover") as client:
        before = len(outside.requests)
        public = _ask(client, "pair", _conversation('{"passages": []}', "[fail] What now?"))
        assert public.status_code == 200, public.text  # a public conversation fails over to the outside
        assert len(outside.requests) == before + 1
        secret = _ask(client, "pair", _conversation(_search_result(), "[fail] What did the board decide?"))
        assert secret.status_code == 503, secret.text  # the cleared one failed; the outside is never tried
    assert len(outside.requests) == before + 1 and not _sent_passage(outside, 0)


def test_no_cleared_deployment_is_a_403_that_says_why_and_is_recorded(
    served: tuple[str, FakeOpenAIServer, FakeOpenAIServer], provider: Provider
) -> None:
    url, outside, _ = served
    before = len(outside.requests)
    with _http(url, provider, AGENT, "agent-refused") as client:
        for stream in (False, True):
            refused = _ask(client, "public-only", _conversation(_search_result()), stream=stream)
            assert refused.status_code == 403, refused.text
            detail = _message(refused)
            assert "restricted (MNPI)" in detail and VERSION in detail and "'public-only'" in detail
            assert "outside" not in detail and PASSAGE not in detail  # no internal deployment names, no text
    assert len(outside.requests) == before
    records = _records(url, provider, "agent-refused")
    assert len(records) == 2 and all(r["outcome"] != "ok" for r in records)
    assert {(r["filters"]["context_clearance"], r["filters"]["clearance_forced_by"]) for r in records} == {
        ("restricted (MNPI)", VERSION)
    }


def test_a_declared_clearance_raises_it_and_never_lowers_it(
    served: tuple[str, FakeOpenAIServer, FakeOpenAIServer], provider: Provider
) -> None:
    url, outside, vault = served
    with _http(url, provider, AGENT, "agent-declared") as client:
        before = len(outside.requests)
        lowered = _ask(client, "agent", _conversation(_search_result()), strongroom_sensitivity="public")
        assert lowered.status_code == 200, lowered.text
        raised = _ask(client, "agent", _conversation(None), strongroom_sensitivity="confidential")
        assert raised.status_code == 200, raised.text
        mnpi = _ask(client, "agent", _conversation(None), strongroom_mnpi=True)
        assert mnpi.status_code == 200, mnpi.text
        assert len(outside.requests) == before  # all three went to the cleared deployment
        bad = _ask(client, "agent", _conversation(None), strongroom_sensitivity="top-secret")
        assert bad.status_code == 400 and "strongroom_sensitivity" in _message(bad)
        worse = _ask(client, "agent", _conversation(None), strongroom_mnpi="yes")
        assert worse.status_code == 400 and "strongroom_mnpi" in _message(worse)
    assert {b["messages"][0]["content"] for b in vault.requests[-3:]} == {"What did the board decide?"}
    filters = [r["filters"] for r in _records(url, provider, "agent-declared")]
    assert [(f["context_clearance"], f["clearance_forced_by"]) for f in filters] == [
        ("restricted (MNPI)", VERSION),
        ("confidential", "request"),
        ("public (MNPI)", "request"),
    ]
