"""Research-agent runs over real HTTP: ``/v1/agent/runs`` on uvicorn, OIDC tokens from a local
provider, the model a scripted OpenAI-compatible server over real HTTP configured as the
route's deployment, a real home (ingested documents, datasets loaded through the platform).

A multi-step run (search, query, calculate, an answer citing each), malformed tool calls and
a tool error, a model too slow for the run, a cancel mid-run, the prompt-injection case, who
may see, follow, cancel or resume a run, and the audit log of it all. The restart of the
service mid-run (a real process, SIGKILL) is in ``test_agent_restart.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from strongroom.api import create_app
from strongroom.llm.deployments import DeploymentSpec, save_deployment
from strongroom.llm.route_config import RouteStore
from strongroom.llm.routing import Target
from strongroom.testing import HashEmbedder
from strongroom.testing.openai_server import FakeOpenAIServer
from tests.api.agent_world import ROUTE, RUNS, SECRET, ScriptedModel, build_home, run_records
from tests.api.agent_world import wait_for_run as _wait
from tests.api.conftest import audit_records, service_settings
from tests.api.live import live_server
from tests.auth.oidc_provider import Provider

ANA = ["readers", "research"]
BOB = ["readers", "research"]  # the same entitlements as ana, another person
ADMIN = ["admins", "research", "compliance", "public"]
QUICK = "quick"


@dataclass
class Env:
    url: str
    provider: Provider
    model: ScriptedModel
    server: FakeOpenAIServer

    def client(self, groups: list[str] | None, sub: str = "ana") -> httpx.Client:
        headers = {} if groups is None else {"Authorization": f"Bearer {self.provider.token(sub=sub, groups=groups)}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, provider: Provider) -> Iterator[Env]:
    model = ScriptedModel()
    with FakeOpenAIServer(model) as server:
        home, files = tmp_path_factory.mktemp("agent-home"), tmp_path_factory.mktemp("agent-files")
        settings = build_home(home, files, server.url, agent_max_active_per_principal=2)
        # a second route, whose deployment gives a model 1 s for its first token
        quick = DeploymentSpec(
            backend="openai-compatible",
            url=server.url,
            model="fake",
            first_token_timeout_s=1.0,
            clearance="restricted",
            mnpi=True,
        )
        save_deployment(home, "fake-quick", quick)
        RouteStore(home).set_route(QUICK, [Target("fake-quick", 100)])
        settings = settings.model_copy(update={"route_groups": {ROUTE: ["research"], QUICK: ["research"]}})
        app = create_app(settings, service_settings(provider), embedder=HashEmbedder(64))
        with live_server(app) as url:
            yield Env(url, provider, model, server)
        model.release.set()


def _create(client: httpx.Client, question: str, **more: Any) -> dict[str, Any]:
    r = client.post(RUNS, json={"question": question, "route": ROUTE, **more})
    assert r.status_code == 202, r.text
    assert r.headers["cache-control"] == "private, no-store"
    run: dict[str, Any] = r.json()
    assert run["status"] in ("queued", "running") and r.headers["location"] == f"{RUNS}/{run['run_id']}"
    return run


def _events(client: httpx.Client, run_id: str, **kw: Any) -> list[dict[str, Any]]:
    """The run's SSE stream, read to its end: each event as {id, event, data}."""
    out: list[dict[str, Any]] = []
    with client.stream("GET", f"{RUNS}/{run_id}/events", **kw) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        current: dict[str, Any] = {}
        for line in r.iter_lines():
            if not line:
                if current:
                    out.append(current)
                current = {}
            elif line.startswith(":"):
                continue
            else:
                field, _, value = line.partition(": ")
                current[field] = json.loads(value) if field == "data" else value
    return out


def _records(env: Env, run_id: str) -> list[dict[str, Any]]:
    with env.client(ADMIN, sub="root") as admin:
        return run_records(audit_records(admin), run_id)


def test_a_multi_step_run_cites_a_page_a_query_and_a_calculation(env: Env) -> None:
    with env.client(ANA) as ana:
        run = _create(ana, "[multi] How do Acme's net sales compare with its share price?", as_of="2023-08-31")
        done = _wait(ana, run["run_id"])
        assert done["status"] == "answered", done
        result = done["result"]
        assert result["answer"].startswith("Acme's total net sales were 81,797 million [1].")
        assert result["unsupported"] == [] and result["cited"] == [1, 2, 3]
        page, query, calc = result["evidence"]
        assert page["kind"] == "page" and page["ref"]["page"] == 1 and "81,797" in page["text"]
        assert query["kind"] == "query" and [d[:2] for d in query["ref"]["datasets"]] == [["prices", 1]]
        assert "104" in query["text"] and query["ref"]["as_of"].startswith("2023-08-31T23:59:59")
        assert calc["kind"] == "calculation" and result["steps"] == 4 and result["tool_calls"] == 3

        events = _events(ana, run["run_id"])
        kinds = [e["event"] for e in events]
        assert kinds == ["started", "model", "tool", "model", "tool", "model", "tool", "model", "answer", "end"]
        assert [int(e["id"]) for e in events[:-1]] == list(range(1, 10)) and events[-1]["data"] == {
            "status": "answered"
        }
        assert [e["data"]["name"] for e in events if e["event"] == "tool"] == ["search_documents", "query_data",
                                                                                 "calculate"]  # fmt: skip
        # a reconnecting client replays from where it was
        again = _events(ana, run["run_id"], headers={"Last-Event-ID": "6"})
        assert [e.get("id") for e in again] == ["7", "8", "9", None]
        assert [e["event"] for e in _events(ana, run["run_id"], params={"after": 8})] == ["answer", "end"]

    records = _records(env, run["run_id"])
    actions = [r["action"] for r in records]
    assert actions[0] == "agent.run.create" and "agent.run.end" in actions
    assert actions.count("agent.run.model") == 4
    assert [a for a in actions if a.startswith("agent.tool.")] == [
        "agent.tool.search_documents", "agent.tool.query_data", "agent.tool.calculate"]  # fmt: skip
    models = [r for r in records if r["action"] == "agent.run.model"]
    assert [m["filters"]["tool_calls"] for m in models] == [["search_documents"], ["query_data"], ["calculate"], []]
    assert {m["filters"]["deployment"] for m in models} == {"fake"} and all(m["outcome"] == "ok" for m in models)
    end = next(r for r in records if r["action"] == "agent.run.end")
    assert end["filters"]["status"] == "answered" and end["filters"]["unsupported"] == 0 and end["answer_sha256"]
    assert [c["kind"] for c in end["filters"]["cited"]] == ["page", "query", "calculation"]
    assert "81,797" not in json.dumps(end) and "Sales per point" not in json.dumps(models)  # ids and counts, never text
    create = records[0]
    assert create["principal"] == "ana" and "share price" in create["query"] and create["query_hmac"]


def test_malformed_calls_and_tool_errors_go_back_to_the_model_and_the_run_carries_on(env: Env) -> None:
    with env.client(ANA) as ana:
        run = _create(ana, "[faulty] What were Acme's net sales?")
        done = _wait(ana, run["run_id"])
        assert done["status"] == "answered", done
        assert done["result"]["answer"].startswith("Acme's total net sales were 81,797 million [1].")
        tools = [e["data"] for e in _events(ana, run["run_id"]) if e["event"] == "tool"]
    assert [(t["name"], t["ok"]) for t in tools] == [("query_data", False), ("query_data", False),
                                                     ("search_documents", True)]  # fmt: skip
    assert "JSON" in tools[0]["error"] and "no_such_prices" in tools[1]["error"]
    records = [r for r in _records(env, run["run_id"]) if r["action"].startswith("agent.tool.")]
    # the malformed call never reached the toolbox: the run audits it; the toolbox audits the rest
    assert [(r["action"], r["outcome"]) for r in records] == [
        ("agent.tool.query_data", "error"),
        ("agent.tool.query_data", "error"),
        ("agent.tool.search_documents", "ok"),
    ]


def test_a_model_too_slow_for_the_run_ends_it_at_its_time_limit(env: Env) -> None:
    env.model.slow_s = 5.0
    with env.client(ANA) as ana:
        run = _create(ana, "[slow] What were Acme's net sales?", timeout_s=2)
        done = _wait(ana, run["run_id"])
    assert done["status"] == "limit" and done["result"]["limit"] == "timeout", done
    assert done["result"]["tool_calls"] == 1 and "2 s" in done["reason"]
    models = [r for r in _records(env, run["run_id"]) if r["action"] == "agent.run.model"]
    assert [m["outcome"] for m in models] == ["ok", "error"] and "stopped" in models[1]["detail"]


def test_a_deployment_that_times_out_mid_run_ends_the_run_with_the_reason(env: Env) -> None:
    env.model.slow_s = 3.0
    with env.client(ANA) as ana:
        run = _create(ana, "[slow] What were Acme's net sales?", route=QUICK)
        done = _wait(ana, run["run_id"])
    assert done["status"] == "error" and "could not answer" in done["reason"], done
    assert done["result"]["tool_calls"] == 1 and done["result"]["steps"] == 1  # the first step stands
    models = [r for r in _records(env, run["run_id"]) if r["action"] == "agent.run.model"]
    assert [m["outcome"] for m in models] == ["ok", "error"] and "Timeout" in models[1]["detail"]
    assert models[0]["filters"]["deployment"] == "fake-quick"


def test_a_cancel_mid_run_stops_it_at_its_next_step(env: Env) -> None:
    env.model.slow_s = 8.0  # wide enough that a loaded machine still cancels before the model answers
    with env.client(ANA) as ana, env.client(BOB, sub="bob") as bob, env.client(ADMIN, sub="root") as admin:
        run = _create(ana, "[slow] What were Acme's net sales?")
        run_id = run["run_id"]
        _wait_for_event(ana, run_id, "tool")  # the first step is done; the model is thinking
        assert bob.post(f"{RUNS}/{run_id}/cancel").status_code == 404  # not bob's: no such run
        cancelling = ana.post(f"{RUNS}/{run_id}/cancel")
        assert cancelling.status_code == 202 and cancelling.json()["cancel_requested"] is True
        done = _wait(ana, run_id)
        assert done["status"] == "cancelled", done
        assert done["result"]["steps"] == 2 and done["result"]["tool_calls"] == 1  # no step after the cancel
        assert ana.post(f"{RUNS}/{run_id}/cancel").status_code == 422  # it has ended
        assert admin.post(f"{RUNS}/{run_id}/cancel").status_code == 422  # an admin sees it exists, no more
        assert admin.get(f"{RUNS}/{run_id}").status_code == 404  # and may not read it
    cancels = [r for r in _records(env, run_id) if r["action"] == "agent.run.cancel"]
    assert [(r["principal"], r["outcome"]) for r in cancels] == [("bob", "not_found"), ("ana", "ok"),
                                                                  ("ana", "error"), ("root", "error")]  # fmt: skip


def _wait_for_event(client: httpx.Client, run_id: str, kind: str) -> None:
    with client.stream("GET", f"{RUNS}/{run_id}/events") as r:
        for line in r.iter_lines():
            if line == f"event: {kind}":
                return
    raise AssertionError(f"run {run_id} ended without a {kind} event")


def test_a_document_that_gives_orders_cannot_widen_what_the_run_reads(env: Env) -> None:
    with env.client(ANA) as ana:
        run = _create(ana, "[obey] What does the watchlist housekeeping memo say?")
        done = _wait(ana, run["run_id"])
        events = _events(ana, run["run_id"])
    assert done["status"] == "answered", done
    tools = [e["data"] for e in events if e["event"] == "tool"]
    assert [(t["name"], t["ok"]) for t in tools] == [("search_documents", True), ("query_data", False)]
    assert "mnpi_watchlist" in tools[1]["error"] and tools[1]["evidence"] == []
    assert SECRET not in json.dumps(done) and SECRET not in json.dumps(events)
    records = _records(env, run["run_id"])
    refused = [r for r in records if r["action"] == "agent.tool.query_data"]
    assert len(refused) == 1 and refused[0]["outcome"] == "error" and "mnpi_watchlist" in refused[0]["query"]
    with env.client(ADMIN, sub="root") as admin:
        queries = [r for r in audit_records(admin) if r["action"] == "datasets.query" and r["principal"] == "ana"]
    assert any(q["outcome"] != "ok" and "mnpi_watchlist" in q["query"] for q in queries)
    assert SECRET not in json.dumps(records)


def test_runs_are_their_owners_alone(env: Env) -> None:
    with env.client(ANA) as ana, env.client(BOB, sub="bob") as bob:
        run = _create(ana, "[multi] What were Acme's net sales?")
        run_id = run["run_id"]
        _wait(ana, run_id)
        mine = [r["run_id"] for r in ana.get(RUNS).json()["runs"]]
        assert run_id in mine and run_id not in [r["run_id"] for r in bob.get(RUNS).json()["runs"]]
        for method, path in (("GET", ""), ("GET", "/events"), ("POST", "/cancel"), ("POST", "/resume")):
            theirs = bob.request(method, f"{RUNS}/{run_id}{path}")
            missing = bob.request(method, f"{RUNS}/{'0' * 32}{path}")
            assert theirs.status_code == missing.status_code == 404, (path, theirs.text)
            assert theirs.json()["error"]["message"].replace(run_id, "X") == missing.json()["error"]["message"].replace(
                "0" * 32, "X"
            )
        assert ana.post(f"{RUNS}/{run_id}/resume").status_code == 422  # answered: nothing to resume


def test_who_may_start_a_run(env: Env) -> None:
    question = {"question": "[multi] What were Acme's net sales?", "route": ROUTE}
    with env.client(None) as nobody, env.client(["research"], sub="norole") as norole:
        assert nobody.post(RUNS, json=question).status_code == 401
        assert norole.post(RUNS, json=question).status_code == 403
    with env.client(["readers", "public"], sub="eve") as eve:  # not granted the route
        refused = eve.post(RUNS, json=question)
        assert refused.status_code == 404 and "strongroom models set-route" in refused.text
    with env.client(ANA) as ana:
        assert ana.post(RUNS, json={**question, "route": "nope"}).status_code == 404
        assert ana.post(RUNS, json={**question, "question": ""}).status_code == 422
        assert ana.post(RUNS, json={**question, "max_steps": 99}).status_code == 422
        assert ana.post(RUNS, json={**question, "as_of": "yesterday-ish"}).status_code == 422
        assert ana.post(RUNS, json={**question, "tools": ["sql"]}).status_code == 422  # no such field


def test_a_principal_may_have_only_so_many_runs_at_once(env: Env) -> None:
    env.model.slow_s = 3.0
    with env.client(["readers", "research"], sub="carol") as carol:
        busy = [_create(carol, "[slow] What were Acme's net sales?") for _ in range(2)]
        refused = carol.post(RUNS, json={"question": "[multi] And now?", "route": ROUTE})
        assert refused.status_code == 403 and "at once" in refused.text
        assert {_wait(carol, r["run_id"])["status"] for r in busy} == {"answered"}
        assert _wait(carol, _create(carol, "[multi] And now?")["run_id"])["status"] == "answered"
