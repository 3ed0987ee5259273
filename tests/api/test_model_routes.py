"""Answers through model-gateway routes over HTTP: `/v1/ask` and `/v1/chat/completions` take a
route the caller is granted (a scripted OpenAI-compatible backend over real HTTP plays the
model); `/v1/models` lists exactly those; a route not granted is as absent as one that does
not exist; the audit record names the deployment that answered and the prompt version."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from strongroom.api import create_app
from strongroom.config import Settings
from strongroom.ingest.pipeline import IngestOptions, ingest
from strongroom.llm.deployments import DeploymentSpec, save_deployment
from strongroom.llm.route_config import RouteStore, parse_target
from strongroom.runtime import open_runtime
from strongroom.testing import HashEmbedder
from strongroom.testing.openai_server import FakeOpenAIServer, Reply
from tests.api.conftest import audit_records, service_settings
from tests.api.live import live_server
from tests.auth.oidc_provider import Provider

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, provider: Provider) -> Iterator[tuple[str, FakeOpenAIServer]]:
    home = tmp_path_factory.mktemp("routes-home")
    docs = tmp_path_factory.mktemp("routes-docs")
    (docs / "q1.txt").write_text("Quarterly revenue was 1,234 million, up 5%.\nCosts were flat.\n")
    settings = Settings(home=home, embedder="hash", route_groups={"chat": ["research"]})
    runtime = open_runtime(settings, HashEmbedder(64))
    try:
        assert ingest([docs], runtime.store, runtime.embedder, IngestOptions(acl=frozenset({"public"}))).ok
    finally:
        runtime.close()
    with FakeOpenAIServer(Reply.stream("Quarterly revenue was 1,234 million [1].")) as backend:
        save_deployment(
            home,
            "fake-vllm",
            DeploymentSpec(backend="openai-compatible", url=backend.url, model="m", clearance="internal"),
        )
        routes = RouteStore(home)
        routes.set_route("chat", [parse_target("fake-vllm:100")])
        routes.set_route("other", [parse_target("fake-vllm:100")])
        app = create_app(settings, service_settings(provider), embedder=HashEmbedder(64))
        with live_server(app) as url:
            yield url, backend


def _client(url: str, provider: Provider, groups: list[str], sub: str = "ana") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=provider.token(sub=sub, groups=groups), max_retries=0)


def test_models_lists_only_the_routes_the_caller_may_use(
    served: tuple[str, FakeOpenAIServer], provider: Provider
) -> None:
    url, _ = served
    assert [m.id for m in _client(url, provider, ["readers", "public"]).models.list()] == ["strongroom-rag"]
    granted = [m.id for m in _client(url, provider, ["readers", "public", "research"]).models.list()]
    assert granted == ["strongroom-rag", "chat"]  # "other" is granted to nobody


def test_a_granted_route_writes_the_answer_and_the_record_names_what_answered(
    served: tuple[str, FakeOpenAIServer], provider: Provider
) -> None:
    url, backend = served
    backend.script(Reply.stream("Quarterly revenue was 1,234 million [1]."))
    client = _client(url, provider, ["readers", "public", "research"], sub="routed")
    done = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "Quarterly revenue?"}])
    text = done.choices[0].message.content or ""
    assert "Quarterly revenue was 1,234 million. [1]" in text and done.system_fingerprint == "fake-vllm"
    assert backend.requests and "Question: Quarterly revenue?" in backend.requests[-1]["messages"][-1]["content"]
    with httpx_client(url, provider, ["readers", "public", "research"]) as c:
        backend.script(Reply.stream("Costs were flat [1]."))
        asked = c.post("/v1/ask", json={"question": "What happened to costs?", "model": "chat"}).json()
    assert asked["found"] and asked["metadata"]["deployment"] == "fake-vllm"
    assert asked["metadata"]["prompt_template_version"] == "rag-cite-v1"
    with httpx_client(url, provider, ["admins"]) as admin:
        mine = [r for r in audit_records(admin) if r["principal"] == "routed" and r["action"] == "chat"][-1]
    assert mine["generator"] == "fake-vllm" and mine["filters"]["model"] == "chat"
    assert mine["filters"]["answered_by"]["route_version"] == "1"


def test_a_route_not_granted_is_as_absent_as_one_that_does_not_exist(
    served: tuple[str, FakeOpenAIServer], provider: Provider
) -> None:
    url, backend = served
    calls = len(backend.requests)
    outsider = _client(url, provider, ["readers", "public"])
    for model in ("chat", "other", "no-such-route"):
        with pytest.raises(openai.NotFoundError) as refused:
            outsider.chat.completions.create(model=model, messages=[{"role": "user", "content": "revenue?"}])
        assert f"no model route '{model}' that you may use" in str(refused.value)
    assert len(backend.requests) == calls  # the model was never asked


def httpx_client(url: str, provider: Provider, groups: list[str]) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {provider.token(sub='x', groups=groups)}"})
