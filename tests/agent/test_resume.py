"""Resuming a run after its process was killed (SIGKILL, no clean-up), from the SQLite or the
PostgreSQL checkpoints: completed tool calls are not made again, the answer arrives and the
events line up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from strongroom.agent.base import RunEvent
from strongroom.agent.checkpoint import open_checkpointer
from strongroom.agent.runner import AgentRunner
from strongroom.testing.chat import ScriptedChatModel
from tests.agent.crash_run import QUESTION, RUN_ID, append_event
from tests.agent.fakes import ANSWER, FakeToolbox, research_turn
from tests.store.conftest import fresh_database

ROOT = Path(__file__).resolve().parents[2]


def kill_mid_run(checkpoints: str, folder: Path, hang: str) -> None:
    """Start the run in a child process, wait until it hangs, then SIGKILL it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.agent.crash_run", checkpoints, str(folder), "--hang", hang],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 180  # a bound on the wait, not a measurement
        while not (folder / "hanging").exists():
            if proc.poll() is not None:
                _, err = proc.communicate()
                pytest.fail(f"the run's process ended (status {proc.returncode}) before it hung:\n{err.decode()}")
            if time.monotonic() > deadline:
                pytest.fail("the run's process never reached the point where it hangs")
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def resume_and_check(checkpoints: str, folder: Path, hang: str, kind: str) -> None:
    kill_mid_run(checkpoints, folder, hang)
    done_before = [c["tool"] for c in lines(folder / "tools.jsonl")]
    assert done_before == ["search"]  # the search completed in the killed process; the SQL had not

    checkpointer = open_checkpointer(checkpoints)
    assert checkpointer.name.startswith(kind)
    try:
        toolbox = FakeToolbox(log=folder / "tools.jsonl")
        model = ScriptedChatModel(default=research_turn)  # a fresh model: it reads the history it is sent
        runner = AgentRunner(
            model,
            toolbox,
            checkpointer=checkpointer,
            on_event=lambda e: append_event(folder / "events.jsonl", e),
        )
        before = runner.result(RUN_ID)
        assert before.status == "running" and before.tool_calls == 1
        result = runner.resume(RUN_ID)
    finally:
        checkpointer.close()

    assert result.status == "answered", result.reason
    assert result.answer == ANSWER and result.unsupported == ()
    assert result.question == QUESTION
    assert [e.kind for e in result.evidence] == ["page", "query", "calculation"]
    # the completed search was not made again; the SQL ran once, here
    assert [name for name, _ in toolbox.calls] == ["sql"]
    assert [c["tool"] for c in lines(folder / "tools.jsonl")] == ["search", "sql"]
    # the first request of this process carried the search's result from the checkpoint
    # (and, where the SQL call was cut, the SQL result this process got)
    first = model.requests[0]
    assert sum(1 for m in first.messages if m.role == "tool") == (1 if hang == "model" else 2)
    assert "Total net sales 81,797" in next(m.content for m in first.messages if m.role == "tool")
    assert (result.steps, result.tool_calls) == (4, 3)

    # events stored by (run_id, seq), later replacing earlier, read as one run
    events: dict[int, str] = {}
    for e in lines(folder / "events.jsonl"):
        assert e["run_id"] == RUN_ID
        events[e["seq"]] = e["kind"]
    assert sorted(events) == list(range(1, max(events) + 1))
    ordered = [events[s] for s in sorted(events)]
    assert ordered[0] == "started" and ordered[-1] == "answer"
    assert ordered.count("resumed") == 1
    assert ordered.count("tool") == 3


@pytest.mark.parametrize("hang", ["model", "sql"])
def test_a_killed_run_resumes_from_its_sqlite_checkpoint(tmp_path: Path, hang: str) -> None:
    resume_and_check(str(tmp_path / "agent_checkpoints.sqlite3"), tmp_path, hang, "sqlite")


@pytest.mark.integration
def test_a_killed_run_resumes_from_its_postgresql_checkpoint(tmp_path: Path, server_url: str) -> None:
    url = fresh_database(server_url)  # a libpq key=value string
    resume_and_check(url, tmp_path, "model", "postgresql")
    with psycopg.connect(url) as conn:  # the checkpoints are in the database, not in a file
        assert conn.execute("SELECT count(*) FROM checkpoints WHERE thread_id = %s", (RUN_ID,)).fetchone()[0] > 0


def test_events_of_a_resumed_run_continue_its_numbering(tmp_path: Path) -> None:
    """In one process: a run stopped by a failing event sink resumes with the next numbers."""
    sent: list[RunEvent] = []

    def failing(event: RunEvent) -> None:
        sent.append(event)
        if event.kind == "tool" and event.data["name"] == "sql":
            raise OSError("disk full")

    checkpointer = open_checkpointer(tmp_path / "cp.sqlite3")
    try:
        runner = AgentRunner(ScriptedChatModel(default=research_turn), FakeToolbox(), checkpointer=checkpointer)
        runner.on_event = failing
        assert runner.run("r", QUESTION).status == "error"
        runner.on_event = sent.append
        assert runner.resume("r").status == "answered"
    finally:
        checkpointer.close()
    by_seq = {e.seq: e.kind for e in sent}
    assert sorted(by_seq) == list(range(1, max(by_seq) + 1))
    assert [by_seq[s] for s in sorted(by_seq)][-1] == "answer"
    assert "resumed" in by_seq.values()
