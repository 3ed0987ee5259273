"""Opening the agent's checkpoints: SQLite in the home folder, PostgreSQL, or memory."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from strongroom.agent.checkpoint import CHECKPOINT_FILE, default_checkpoint_path, open_checkpointer
from strongroom.agent.runner import AgentRunner
from strongroom.errors import ConfigError, StoreError
from strongroom.testing.chat import ScriptedChatModel
from tests.agent.fakes import FakeToolbox, research_turn
from tests.store.conftest import fresh_database


def test_the_default_file_is_in_the_home_folder(tmp_path: Path) -> None:
    assert default_checkpoint_path(tmp_path) == tmp_path / CHECKPOINT_FILE


def test_sqlite_checkpoints_in_wal_mode_and_usable_from_other_threads(tmp_path: Path) -> None:
    path = tmp_path / "home" / CHECKPOINT_FILE
    cp = open_checkpointer(path)
    try:
        runner = AgentRunner(ScriptedChatModel(default=research_turn), FakeToolbox(), checkpointer=cp)
        results = []

        def one(i: int) -> None:  # each thread its own event loop, all on one connection
            results.append(runner.run(f"run-{i}", "q?").status)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == ["answered"] * 4
        cp.delete("run-0")
        assert cp.get_tuple({"configurable": {"thread_id": "run-0"}}) is None
        assert cp.get_tuple({"configurable": {"thread_id": "run-1"}}) is not None
        assert len(list(cp.list({"configurable": {"thread_id": "run-1"}}))) > 1
    finally:
        cp.close()
        cp.close()  # idempotent
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT count(DISTINCT thread_id) FROM checkpoints").fetchone()[0] == 3


def test_the_async_listing_reads_through_the_worker_thread(tmp_path: Path) -> None:
    cp = open_checkpointer(tmp_path / CHECKPOINT_FILE)
    try:
        AgentRunner(ScriptedChatModel(default=research_turn), FakeToolbox(), checkpointer=cp).run("r", "q?")

        async def listed() -> int:
            return len([t async for t in cp.alist({"configurable": {"thread_id": "r"}})])

        assert asyncio.run(listed()) == len(list(cp.list({"configurable": {"thread_id": "r"}})))
    finally:
        cp.close()


def test_memory_checkpoints_do_not_outlive_the_object() -> None:
    cp = open_checkpointer("memory")
    runner = AgentRunner(ScriptedChatModel(default=research_turn), FakeToolbox(), checkpointer=cp)
    assert runner.run("r", "q?").status == "answered"
    assert repr(cp) == "AgentCheckpointer(memory)"
    assert open_checkpointer("memory").get_tuple({"configurable": {"thread_id": "r"}}) is None


def test_what_cannot_be_opened(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="postgresql:// URL"):
        open_checkpointer("redis://localhost:6379")
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(StoreError, match="could not open the agent's checkpoints"):
        open_checkpointer(tmp_path / "file" / CHECKPOINT_FILE)
    with pytest.raises(StoreError, match="could not connect to PostgreSQL"):
        open_checkpointer("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")


@pytest.mark.integration
def test_postgresql_checkpoints(server_url: str) -> None:
    url = fresh_database(server_url)
    cp = open_checkpointer(url)
    try:
        assert cp.name == "postgresql"
        runner = AgentRunner(ScriptedChatModel(default=research_turn), FakeToolbox(), checkpointer=cp)
        assert runner.run("pg-1", "q?").status == "answered"
        assert runner.result("pg-1").status == "answered"
        cp.delete("pg-1")
        assert cp.get_tuple({"configurable": {"thread_id": "pg-1"}}) is None
    finally:
        cp.close()
    again = open_checkpointer(url)  # setup is idempotent
    again.close()
