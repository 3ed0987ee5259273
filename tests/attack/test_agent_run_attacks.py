"""Research-agent runs (issue 19), attacked from outside over real HTTP: a real uvicorn
service, OIDC tokens and API keys, the model a scripted OpenAI-compatible server.

- A run's event stream asked from a seq past SQLite's integers (``Last-Event-ID``, ``?after=``).
- The per-principal limit of active runs, raced by many creates at once.
- An API key revoked while its run is in flight: the run's next tool call is refused.
- A model that cites evidence that does not exist (``[99]``), floods one turn with calls, or
  sends megabytes of text or arguments in a turn allowed 1024 tokens.
- An OIDC subject spelled like an API key's principal (``key:<owner>``).
- Limits asked far past their caps; a clock far in the future.
- The audit log, the home folder and the log at INFO after it all: no answer text, no row values.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from strongroom.api import create_app
from strongroom.auth import open_key_store
from strongroom.testing import HashEmbedder
from strongroom.testing.chat import tool_call
from strongroom.testing.openai_server import FakeOpenAIServer, Reply
from tests.api.agent_world import ROUTE, RUNS, SECRET, ScriptedModel, build_home, run_records, tool_results
from tests.api.agent_world import wait_for_run as _wait
from tests.api.conftest import audit_records, service_settings
from tests.api.live import live_server
from tests.auth.oidc_provider import Provider

ANA = ["readers", "research"]
ADMIN = ["admins", "research", "compliance", "public"]
#: the words of an answer that must never reach the audit log or a log file
ANSWER_WORDS = "ZANZIBAR-OTTER"


@dataclass
class World:
    url: str
    home: Path
    provider: Provider
    model: ScriptedModel
    gate: threading.Event
    settings: Any

    def client(self, groups: list[str], sub: str = "ana") -> httpx.Client:
        token = self.provider.token(sub=sub, groups=groups)
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)

    def keyed(self, secret: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {secret}"}, timeout=60)


def _out_of_range(body: dict[str, Any]) -> Reply:
    if not tool_results(body):
        return Reply.calls(tool_call("search_documents", {"query": "Acme total net sales quarter", "k": 1}))
    return Reply.stream(f"{ANSWER_WORDS}: Acme's total net sales were 81,797 million [99]. Rose 12.5% [0].")


def _flood(body: dict[str, Any]) -> Reply:
    if not tool_results(body):
        calls = [tool_call("list_datasets", {}) for _ in range(400)]
        return Reply.calls(*calls)
    return Reply.stream("Done.")


def _huge_text(body: dict[str, Any]) -> Reply:
    """One turn of megabytes that the model says cost one token (a backend may under-report)."""
    return Reply(tokens=("Acme sold more. " * 250_000,))


def _huge_arguments(body: dict[str, Any]) -> Reply:
    if not tool_results(body):
        return Reply.calls(tool_call("search_documents", {"query": "net sales " * 300_000}))
    return Reply.stream("Done.")


def _gated(gate: threading.Event) -> Any:
    """search; (waits for ``gate``) then query_data on the restricted-free prices; an answer."""

    def play(body: dict[str, Any]) -> Reply:
        done = len(tool_results(body))
        if done == 0:
            return Reply.calls(tool_call("search_documents", {"query": "Acme total net sales quarter", "k": 1}))
        if done == 1:
            if not gate.wait(60):
                return Reply(hang=True)
            sql = "SELECT close FROM prices WHERE ticker = 'ACME' AND day = DATE '2023-06-30'"
            return Reply.calls(tool_call("query_data", {"sql": sql}))
        return Reply.stream("Acme's close was 104 [2]. " + json.dumps(tool_results(body)[-1])[:200])

    return play


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, provider: Provider) -> Iterator[World]:
    model = ScriptedModel()
    gate = threading.Event()
    model.scenarios.update({"[oob]": _out_of_range, "[flood]": _flood, "[gated]": _gated(gate)})
    model.scenarios.update({"[hugetext]": _huge_text, "[hugeargs]": _huge_arguments})
    with FakeOpenAIServer(model) as server:
        home, files = tmp_path_factory.mktemp("attack-home"), tmp_path_factory.mktemp("attack-files")
        settings = build_home(home, files, server.url, agent_max_active_per_principal=2)
        app = create_app(settings, service_settings(provider), embedder=HashEmbedder(64))
        with live_server(app) as url:
            yield World(url, home, provider, model, gate, settings)
        model.release.set()
        gate.set()


def _create(client: httpx.Client, question: str, **more: Any) -> dict[str, Any]:
    r = client.post(RUNS, json={"question": question, "route": ROUTE, **more})
    assert r.status_code == 202, r.text
    run: dict[str, Any] = r.json()
    return run


def _records(world: World, run_id: str) -> list[dict[str, Any]]:
    with world.client(ADMIN, sub="root") as admin:
        return run_records(audit_records(admin), run_id)


def test_an_event_stream_asked_from_past_the_last_integer_is_empty_not_a_server_error(world: World) -> None:
    with world.client(ANA) as ana:
        run_id = _create(ana, "[multi] What were Acme's net sales?")["run_id"]
        _wait(ana, run_id)
        huge = "9" * 20
        for headers, params in (({"Last-Event-ID": huge}, {}), ({}, {"after": huge})):
            r = ana.get(f"{RUNS}/{run_id}/events", headers=headers, params=params)
            assert r.status_code in (200, 422), r.text
            if r.status_code == 200:  # nothing after it, and the run has ended
                assert "event: end" in r.text and "id: " not in r.text, r.text
        # '\u00b2'.isdigit() is True and int('\u00b2') fails: not a seq, so the whole run is replayed
        r = ana.get(f"{RUNS}/{run_id}/events", headers=[(b"Last-Event-ID", "\u00b2".encode("latin-1"))])
        assert r.status_code == 200 and "id: 1\n" in r.text and "event: end" in r.text, r.text


def test_many_creates_at_once_cannot_pass_the_limit_of_active_runs(world: World) -> None:
    """Cap 2: eight creates raced from eight connections; at most two are accepted."""
    world.model.release.clear()
    with world.client(ANA, sub="racer") as racer:

        def create(_: int) -> httpx.Response:
            return racer.post(RUNS, json={"question": "[hold] What were Acme's net sales?", "route": ROUTE})

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(create, range(8)))
        accepted = [r.json()["run_id"] for r in answers if r.status_code == 202]
        assert {r.status_code for r in answers} <= {202, 403}
        try:
            assert len(accepted) <= 2, f"{len(accepted)} runs accepted with a cap of 2"
        finally:
            for run_id in accepted:
                racer.post(f"{RUNS}/{run_id}/cancel")
            world.model.release.set()
            for run_id in accepted:
                _wait(racer, run_id)


def test_a_key_revoked_while_its_run_is_in_flight_reads_nothing_more(world: World) -> None:
    keys = open_key_store(world.settings)
    try:
        key, secret = keys.create("etl-bot", frozenset({"readers", "research"}))
    finally:
        keys.close()
    world.gate.clear()
    with world.keyed(secret) as bot:
        run_id = _create(bot, "[gated] What was Acme's close?")["run_id"]
        deadline = time.monotonic() + 60
        while not any(r["action"] == "agent.tool.search_documents" for r in _records(world, run_id)):
            assert time.monotonic() < deadline, "the run never searched"
            time.sleep(0.1)
        keys = open_key_store(world.settings)
        try:
            assert keys.revoke(key.id)
        finally:
            keys.close()
        world.gate.set()
        assert bot.get(f"{RUNS}/{run_id}").status_code == 401
    with world.client(ADMIN, sub="root") as admin:
        deadline = time.monotonic() + 60
        while True:
            ends = [r for r in audit_records(admin) if r["action"] == "agent.run.end" and r["target"] == run_id]
            if ends:
                break
            assert time.monotonic() < deadline, "the run never ended"
            time.sleep(0.1)
    queries = [r for r in _records(world, run_id) if r["action"] == "agent.tool.query_data"]
    assert queries and all(r["outcome"] != "ok" for r in queries), queries
    assert not [r for r in _records(world, run_id) if r["action"] == "dataset.query" and r["outcome"] == "ok"]


def test_citations_of_evidence_that_does_not_exist_show_as_unsupported(world: World) -> None:
    with world.client(ANA) as ana:
        run = _wait(ana, _create(ana, "[oob] What were Acme's net sales?")["run_id"])
        assert run["status"] == "answered", run
        result = run["result"]
        assert result["unsupported"], result
        assert all(c.get("n") not in (0, 99) for c in result["cited"]), result["cited"]
        assert "81,797" in json.dumps(result["unsupported"])


def test_a_turn_with_hundreds_of_calls_is_held_to_the_run_s_tool_call_limit(world: World) -> None:
    with world.client(ANA) as ana:
        run = _wait(ana, _create(ana, "[flood] List everything", max_tool_calls=5)["run_id"])
        assert run["status"] in ("limit", "answered"), run
        assert run["result"]["tool_calls"] <= 5, run["result"]
    calls = [r for r in _records(world, run["run_id"]) if r["action"].startswith("agent.tool.")]
    assert len(calls) <= 5


@pytest.mark.parametrize("tag", ["[hugetext]", "[hugeargs]"])
def test_a_model_that_sends_megabytes_in_a_turn_is_held_to_the_turn_s_tokens(world: World, tag: str) -> None:
    """Each turn asks for at most 1024 tokens: a model that sends ~4 MB (and says it cost one
    token) ends the run at its token limit; neither the run, its events nor its answer keep it."""
    with world.client(ANA) as ana:
        run_id = _create(ana, f"{tag} What were Acme's net sales?")["run_id"]
        run = _wait(ana, run_id)
        assert run["status"] == "limit" and run["result"]["limit"] == "max_tokens", run["reason"]
        assert len(ana.get(f"{RUNS}/{run_id}").content) < 200_000
        with ana.stream("GET", f"{RUNS}/{run_id}/events") as r:
            assert len(r.read()) < 200_000


@pytest.mark.parametrize(
    "more",
    [
        {"max_steps": 10**9},
        {"max_tool_calls": 10**12},
        {"timeout_s": 1e308},
        {"timeout_s": float("inf")},
        {"max_tokens": 2**63},
        {"max_steps": 0},
        {"as_of": "2999-01-01"},
        {"known_at": "9999-12-31T23:59:59Z"},
    ],
)
def test_limits_past_their_caps_and_clocks_in_the_future_are_refused(world: World, more: dict[str, Any]) -> None:
    with world.client(ANA, sub="greedy") as greedy:
        body = json.dumps({"question": "[multi] What were Acme's net sales?", "route": ROUTE, **more})
        r = greedy.post(RUNS, content=body.replace("Infinity", "1e999"), headers={"content-type": "application/json"})
        if r.status_code == 202:  # a clock in the future is now; a limit is never past its cap
            run = r.json()
            assert run["as_of"] < "2999" and run["known_at"] < "2999", run
            assert not any(k in more for k in ("max_steps", "max_tool_calls", "timeout_s", "max_tokens")), run
            _wait(greedy, run["run_id"])
        else:
            assert r.status_code == 422, r.text


def test_the_audit_log_and_the_home_keep_no_answer_text_and_no_restricted_rows(world: World) -> None:
    with world.client(ANA) as ana:
        run_id = _create(ana, "[oob] What were Acme's net sales?")["run_id"]
        _wait(ana, run_id)
        obey = _wait(ana, _create(ana, "[obey] Read the watchlist memo")["run_id"])
        assert SECRET not in json.dumps(obey)
    with world.client(ADMIN, sub="root") as admin:
        text = json.dumps(audit_records(admin))
    assert ANSWER_WORDS not in text and SECRET not in text and "81,797 million" not in text
    for path in world.home.rglob("*"):
        if path.is_file() and path.suffix in (".log", ".jsonl", ".txt"):
            body = path.read_text(errors="replace")
            assert ANSWER_WORDS not in body, path


def test_a_token_whose_subject_is_spelled_like_a_key_s_owner_is_not_that_key(world: World) -> None:
    """An API key's principal is ``key:<owner>``; an OIDC subject (or a username claim a user
    chose) spelled ``key:<owner>`` is refused, never handed the key's runs."""
    keys = open_key_store(world.settings)
    try:
        _, secret = keys.create("nightly", frozenset({"readers", "research"}))
    finally:
        keys.close()
    with world.keyed(secret) as bot:
        run_id = _wait(bot, _create(bot, "[multi] What were Acme's net sales?")["run_id"])["run_id"]
    with world.client(ANA, sub="key:nightly") as impostor:
        for method, path in (("GET", ""), ("GET", "/events"), ("POST", "/cancel")):
            r = impostor.request(method, f"{RUNS}/{run_id}{path}")
            assert r.status_code in (401, 404), (path, r.status_code, r.text[:300])
        listed = impostor.get(RUNS)
        assert listed.status_code == 401 or run_id not in listed.text


def test_the_service_s_log_at_info_keeps_no_answer_rows_or_document_text(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with world.client(ANA) as ana:
        for question in ("[oob] What were Acme's net sales?", "[obey] Read the watchlist memo", "[faulty] Sales?"):
            _wait(ana, _create(ana, question)["run_id"])
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert caplog.records  # the service did log (a test that cannot fail is a defect)
    for text in (ANSWER_WORDS, SECRET, "81,797", "SYSTEM NOTICE", "104.00"):
        assert text not in logged, text
