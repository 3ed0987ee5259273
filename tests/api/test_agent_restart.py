"""A research-agent run survives its service: ``strongroom serve`` in its own process is
killed (SIGKILL) while a run waits on its model after a completed tool call; the next start
marks the run ``interrupted``; its owner resumes it (with a key that no longer carries the
group the data needs) and it ends, its completed tool call not made again and its next one
read under the narrowed entitlements. Another principal can neither see, cancel nor resume
it. A graceful stop (SIGTERM) leaves a running run ``interrupted`` too, never ``running``.

The model is a scripted OpenAI-compatible server in this process (it outlives the service),
configured as the route's deployment; API keys authenticate the callers.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest

from strongroom.service import Platform
from strongroom.service.agent_run_views import WITHHELD
from strongroom.testing import HashEmbedder
from strongroom.testing.openai_server import FakeOpenAIServer
from strongroom.types import Principal
from tests.api.agent_world import ROUTE, RUNS, ScriptedModel, build_home, question, tool_results
from tests.api.live import serve_process

pytestmark = pytest.mark.integration

ADMIN = Principal("root", frozenset({"strongroom-readers", "strongroom-admins", "research", "analysts"}),
                  frozenset({"reader", "ingester", "admin"}))  # fmt: skip


def _serve(home: Path) -> AbstractContextManager[tuple[subprocess.Popen[bytes], str]]:
    """``strongroom serve`` (API keys only) on a free port in its own process, until the block ends."""
    env = {
        **os.environ,
        "STRONGROOM_EMBEDDER": "hash",
        "STRONGROOM_ROUTE_GROUPS": json.dumps({ROUTE: ["research", "analysts"]}),
        "STRONGROOM_SHUTDOWN_GRACE_S": "5",
    }
    return serve_process(home, env)


def _client(url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def _status(home: Path, run_id: str) -> str:
    with sqlite3.connect(home / "catalog.sqlite3") as db:
        (status,) = db.execute("SELECT status FROM agent_runs WHERE id = ?", (run_id,)).fetchone()
    return str(status)


def _until(check: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _turns(server: FakeOpenAIServer, tag: str, tools_seen: int) -> int:
    """How many model requests of the runs tagged ``tag`` had ``tools_seen`` tool results."""
    return sum(1 for b in server.requests if tag in question(b) and len(tool_results(b)) == tools_seen)


def test_a_run_killed_with_its_service_is_resumed_from_its_checkpoint(tmp_path: Path) -> None:
    model = ScriptedModel()
    home, files = tmp_path / "home", tmp_path / "files"
    files.mkdir()
    with FakeOpenAIServer(model) as server:
        settings = build_home(home, files, server.url, route_groups=["research", "analysts"], embedder=HashEmbedder())
        with Platform.open(settings, embedder=HashEmbedder()) as p:
            ana = p.create_key(ADMIN, "ana", ["strongroom-readers", "research"], days=1).secret
            # ana later, moved out of research (the group the documents and prices need)
            ana_moved = p.create_key(ADMIN, "ana", ["strongroom-readers", "analysts"], days=1).secret
            bob = p.create_key(ADMIN, "bob", ["strongroom-readers", "research"], days=1).secret

        tag = "[restart]"
        with _serve(home) as (process, url), _client(url, ana) as client:
            r = client.post(RUNS, json={"question": f"{tag} What were Acme's net sales?", "route": ROUTE})
            assert r.status_code == 202, r.text
            run_id = r.json()["run_id"]
            # the search is done and checkpointed; the model's next turn hangs
            _until(lambda: _turns(server, tag, 1) == 1, "the second model turn")
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        assert _status(home, run_id) == "running"  # what a kill -9 leaves

        with (
            _serve(home) as (process, url),
            _client(url, ana_moved) as moved,
            _client(url, ana) as before,
            _client(url, bob) as other,
        ):
            run = moved.get(f"{RUNS}/{run_id}").json()
            assert run["status"] == "interrupted" and "resume" in run["reason"]
            for method, path in (("GET", ""), ("GET", "/events"), ("POST", "/cancel"), ("POST", "/resume")):
                assert other.request(method, f"{RUNS}/{run_id}{path}").status_code == 404, path
            model.release.set()
            resumed = moved.post(f"{RUNS}/{run_id}/resume")
            assert resumed.status_code == 202, resumed.text
            done = _until(lambda: (d := moved.get(f"{RUNS}/{run_id}").json())["status"] not in ("queued", "running")
                          and d, "the resumed run to end")  # fmt: skip
            events = [json.loads(line[6:]) for line in before.get(f"{RUNS}/{run_id}/events").text.splitlines()
                      if line.startswith("data: ")]  # fmt: skip
            # what the run read under research is not shown to ana without it, as to ana with it
            whole = before.get(f"{RUNS}/{run_id}").json()
            narrowed = moved.get(f"{RUNS}/{run_id}/events").text
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)

    assert done["status"] == whole["status"] == "answered", done
    assert whole["result"]["answer"].startswith("Acme's total net sales were 81,797 million [1].")
    assert done["result"]["answer"] == WITHHELD and done["result"]["evidence"] == []
    assert "81,797" not in narrowed and '"withheld":true' in narrowed
    assert any(e.get("steps") == 1 and e.get("tool_calls") == 1 for e in events)  # the "resumed" event
    # the completed turn and tool call were not made again
    assert _turns(server, tag, 0) == 1
    assert _turns(server, tag, 1) == 2  # the one that hung, and the one after the resume

    with Platform.open(settings, embedder=HashEmbedder()) as p:
        records = [r for r in p.audit_records(ADMIN) if r["target"] == run_id]
    actions = [r["action"] for r in records]
    assert actions.count("agent.tool.search_documents") == 1
    steps = ("agent.run.create", "agent.run.interrupted", "agent.run.resume", "agent.run.end")
    order = [r["action"] for r in records if r["action"] in steps and r["principal"] == "key:ana"]
    assert order == ["agent.run.create", "agent.run.interrupted", "agent.run.resume", "agent.run.end"]
    # the resumed run read as ana is now: the prices need research, which her new key lacks
    (query,) = [r for r in records if r["action"] == "agent.tool.query_data"]
    assert query["outcome"] == "error" and query["groups"] == ["analysts", "strongroom-readers"]
    search = next(r for r in records if r["action"] == "agent.tool.search_documents")
    assert "research" in search["groups"]
    refusals = [r["principal"] for r in records if r["outcome"] == "not_found"]
    assert refusals == ["key:bob"] * 4


def test_a_graceful_stop_leaves_a_running_run_interrupted(tmp_path: Path) -> None:
    model = ScriptedModel()
    home, files = tmp_path / "home", tmp_path / "files"
    files.mkdir()
    with FakeOpenAIServer(model) as server:
        settings = build_home(home, files, server.url, embedder=HashEmbedder())
        with Platform.open(settings, embedder=HashEmbedder()) as p:
            ana = p.create_key(ADMIN, "ana", ["strongroom-readers", "research"], days=1).secret
        with _serve(home) as (process, url), _client(url, ana) as client:
            r = client.post(RUNS, json={"question": "[hold] What were Acme's net sales?", "route": ROUTE})
            run_id = r.json()["run_id"]
            _until(lambda: _turns(server, "[hold]", 1) == 1, "the second model turn")
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)  # uvicorn raises the signal again once it has stopped
    assert _status(home, run_id) == "interrupted"
