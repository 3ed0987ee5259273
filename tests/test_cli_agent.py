"""``strongroom agent ask | runs | show | resume | cancel`` over a real home, the model a
scripted OpenAI-compatible server over real HTTP configured as the route's deployment.

The run executes in the CLI's process: on a thread of its own, while the thread that opened
the platform (whose SQLite store is bound to it) runs each tool call; the tests run the
command as a real process where that matters (the steps and the answer, Ctrl-C, a kill and a
resume) and through typer's runner otherwise.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from strongroom.cli import app
from strongroom.cli.agent import NO_ROUTE
from strongroom.config import Settings
from strongroom.service import Platform
from strongroom.testing import HashEmbedder
from strongroom.testing.openai_server import FakeOpenAIServer
from tests.api.agent_world import LOADER, ROUTE, SECRET, ScriptedModel, build_home, question, tool_results


@dataclass
class World:
    home: Path
    model: ScriptedModel
    server: FakeOpenAIServer

    def env(self, **more: str) -> dict[str, str]:
        return {
            "STRONGROOM_HOME": str(self.home),
            "STRONGROOM_EMBEDDER": "hash",
            "STRONGROOM_ROUTE_GROUPS": json.dumps({ROUTE: ["research"]}),
            "STRONGROOM_CLI_USER": "ana",
            "STRONGROOM_CLI_GROUPS": '["research"]',
            **more,
        }

    def cli(self, *args: str, **env: str) -> Result:
        return CliRunner().invoke(app, ["agent", *args], env=self.env(**env))

    def process(self, *args: str, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "strongroom.cli", "agent", *args],
            env={**os.environ, **self.env(**env)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # Ctrl-C reaches it as in a terminal, even when the tests run where SIGINT is ignored
            # (a shell's background job): an ignored SIGINT is left ignored by the CLI
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )

    def turns(self, tag: str, tools_seen: int) -> int:
        return sum(1 for b in self.server.requests if tag in question(b) and len(tool_results(b)) == tools_seen)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    model = ScriptedModel()
    with FakeOpenAIServer(model) as server:
        home, files = tmp_path_factory.mktemp("cli-agent-home"), tmp_path_factory.mktemp("cli-agent-files")
        build_home(home, files, server.url, embedder=HashEmbedder())
        yield World(home, model, server)
        model.release.set()


def _status(home: Path, run_id: str) -> str:
    with sqlite3.connect(home / "catalog.sqlite3") as db:
        (status,) = db.execute("SELECT status FROM agent_runs WHERE id = ?", (run_id,)).fetchone()
    return str(status)


def _latest_run(home: Path) -> str:
    with sqlite3.connect(home / "catalog.sqlite3") as db:
        (run_id,) = db.execute("SELECT id FROM agent_runs ORDER BY created_at DESC LIMIT 1").fetchone()
    return str(run_id)


def _until(check: Any, what: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while not check():
        if process.poll() is not None:
            raise AssertionError(f"the command ended ({process.returncode}): {process.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_ask_prints_each_step_then_the_answer_with_its_numbered_citations(world: World) -> None:
    done = world.process("ask", "[multi] How do Acme's net sales compare with its price?", "--as-of", "2023-08-31")
    out, errors = done.communicate(timeout=120)
    assert done.returncode == 0, errors
    lines = out.splitlines()
    assert lines[0].startswith("Acme's total net sales were 81,797 million [1].")
    assert lines[2].startswith("[1] page: ") and "acme-10q.md page 1, characters 0-" in lines[2]
    assert (
        lines[3].startswith("[2] query: SELECT close FROM prices")
        and "[prices v1; as of 2023-08-31T23:59:59" in lines[3]
    )
    assert lines[4].startswith("[3] calculation: ") and "786.51" in lines[4]
    steps = errors.splitlines()
    assert steps[0].startswith("run ") and steps[0].endswith(": started")
    assert steps[1:3] == ["step 1: the model calls search_documents", "  search_documents: 1 evidence item(s)"]
    assert "step 4: the model answers (stop)" in steps and steps[-1].endswith(": answered")


def test_ask_as_json_then_list_and_show_only_your_own(world: World) -> None:
    asked = world.cli("ask", "[faulty] What were Acme's net sales?", "--json")
    assert asked.exit_code == 0, asked.output
    run = json.loads(asked.stdout)
    assert run["status"] == "answered" and run["result"]["answer"].startswith("Acme's total net sales")
    assert {e["kind"] for e in run["result"]["evidence"]} == {"page"} and run["result"]["cited"] == [1]
    listed = json.loads(world.cli("runs", "--json").stdout)
    assert run["run_id"] in [r["run_id"] for r in listed]
    shown = world.cli("show", run["run_id"])
    assert shown.exit_code == 0 and shown.stdout.startswith("Acme's total net sales were 81,797 million [1].")
    bobs = world.cli("show", run["run_id"], STRONGROOM_CLI_USER="bob")
    assert bobs.exit_code == 1 and "no agent run" in bobs.output
    assert run["run_id"] not in world.cli("runs", "--json", STRONGROOM_CLI_USER="bob").stdout
    assert world.cli("cancel", run["run_id"]).exit_code == 2  # it has ended
    assert world.cli("resume", run["run_id"]).exit_code == 2  # nothing to resume


def test_a_run_that_stops_at_a_limit_exits_1(world: World) -> None:
    world.model.slow_s = 4.0
    stopped = world.cli("ask", "[slow] What were Acme's net sales?", "--timeout", "1")
    assert stopped.exit_code == 1 and "limit" in stopped.output and "timeout" not in stopped.stdout


def test_without_a_route_it_says_how_to_configure_one(world: World) -> None:
    none = world.cli("ask", "[multi] What were Acme's net sales?", STRONGROOM_CLI_GROUPS='["public"]')
    assert none.exit_code == 2 and "configure a model route: strongroom models set-route" in none.output
    assert NO_ROUTE.split(":")[0] in none.output
    named = world.cli(
        "ask", "[multi] What were Acme's net sales?", "--route", ROUTE, STRONGROOM_CLI_GROUPS='["public"]'
    )
    assert named.exit_code == 1 and "strongroom models set-route" in named.output


def test_ctrl_c_cancels_the_run_at_its_next_step(world: World) -> None:
    world.model.slow_s = 8.0  # wide enough that a loaded machine still cancels before the model answers
    asking = world.process("ask", "[slow] What were Acme's net sales in the quarter?")
    _until(lambda: world.turns("sales in the quarter", 1) == 1, "the slow model turn", asking)
    asking.send_signal(signal.SIGINT)
    _, errors = asking.communicate(timeout=60)
    assert asking.returncode == 1, errors
    assert (
        ": cancelled (the run was cancelled)" in errors and _status(world.home, _latest_run(world.home)) == "cancelled"
    )


def test_a_killed_run_is_resumed_from_its_checkpoint(world: World) -> None:
    world.model.release.clear()
    asking = world.process("ask", "[restart] What were Acme's net sales?")
    _until(lambda: world.turns("[restart]", 1) == 1, "the held model turn", asking)
    asking.kill()
    asking.communicate(timeout=30)
    run_id = _latest_run(world.home)
    assert _status(world.home, run_id) == "running"  # what a kill -9 leaves
    assert world.cli("resume", run_id, STRONGROOM_CLI_USER="bob").exit_code == 1  # not bob's

    world.model.release.set()
    resumed = world.process("resume", run_id)
    out, errors = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, errors
    assert out.startswith("Acme's total net sales were 81,797 million [1].") and "resumed" in errors
    assert world.turns("[restart]", 0) == 1  # the first turn was not asked again
    with Platform.open(Settings(home=world.home, embedder="hash"), embedder=HashEmbedder()) as p:
        records = [r for r in p.audit_records(LOADER) if r["target"] == run_id]
    actions = [r["action"] for r in records]
    assert actions.count("agent.tool.search_documents") == 1 and actions.count("agent.tool.query_data") == 1
    assert "agent.run.interrupted" in actions and actions[-1] == "agent.run.end"
    assert SECRET not in json.dumps(records)
