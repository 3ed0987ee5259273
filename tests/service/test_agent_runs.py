"""Agent runs in the application layer: the run store, the rules of :class:`AgentRuns` (who
may create, read, cancel and resume; clocks; limits; runs of dead processes) and a run
executed in-process over :class:`~strongroom.service.Platform` (the thread that opened the
platform runs every tool call), with the scripted OpenAI-compatible server as the model.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from strongroom.agent.base import AgentLimits, RunEvent
from strongroom.agent.runner import AgentRunner
from strongroom.agent.tools import CALCULATE
from strongroom.errors import NotFound, PermissionDenied, QueryError
from strongroom.service import Platform
from strongroom.service.agent_execution import RunToolbox, ThreadBridge, run_here
from strongroom.service.agent_local import LocalAgentRuns
from strongroom.service.agent_run_store import AgentRun, SqliteRunStore
from strongroom.service.agent_run_views import WITHHELD
from strongroom.service.agent_runs import AgentRunRequest, AgentRuns, worker_id
from strongroom.service.agent_tools import toolbox_for
from strongroom.testing import HashEmbedder
from strongroom.testing.openai_server import FakeOpenAIServer
from strongroom.types import Principal, utcnow
from tests.api.agent_world import LOADER, ROUTE, SECRET, ScriptedModel, build_home

ANA = Principal("ana", frozenset({"research"}), frozenset({"reader"}))
BOB = Principal("bob", frozenset({"research"}), frozenset({"reader"}))
ROOT = Principal("root", frozenset({"research"}), frozenset({"reader", "ingester", "admin"}))
NOBODY = Principal("nobody", frozenset({"research"}), frozenset())
EVE = Principal("eve", frozenset({"public"}), frozenset({"reader"}))  # not granted the route


@dataclass
class World:
    platform: Platform
    agent: LocalAgentRuns
    model: ScriptedModel

    @property
    def runs(self) -> AgentRuns:
        return self.agent.runs

    def audit(self, run_id: str) -> list[dict[str, object]]:
        return [r for r in self.platform.audit_records(LOADER) if r["target"] == run_id]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    model = ScriptedModel()
    with FakeOpenAIServer(model) as server:
        home, files = tmp_path_factory.mktemp("runs-home"), tmp_path_factory.mktemp("runs-files")
        settings = build_home(home, files, server.url, agent_max_active_per_principal=2)
        with Platform.open(settings, embedder=HashEmbedder(64)) as p, LocalAgentRuns(p) as agent:
            yield World(p, agent, model)
        model.release.set()


def _run(owner: str = "ana", **more: object) -> AgentRun:
    now = utcnow()
    base = AgentRun("r1", owner, ("research",), ("reader",), "q?", ROUTE, now.isoformat(), now.isoformat(),
                    AgentLimits(), "queued", now, now)  # fmt: skip
    return replace(base, **more)  # type: ignore[arg-type]


# -- the store -------------------------------------------------------------------------------


def test_the_store_keeps_runs_and_events_and_changes_a_status_only_from_the_states_named(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.sqlite3"
    store, other = SqliteRunStore(catalog), SqliteRunStore(catalog)  # two handles: two processes
    try:
        store.save(_run(result={"answer": "x"}, limits=AgentLimits(max_steps=3, timeout_s=9.5)))
        store.save(_run(id="r2", owner="bob"))
        assert other.get("r1") == store.get("r1") and other.get("r1").limits.max_steps == 3  # type: ignore[union-attr]
        assert [r.id for r in store.runs("ana")] == ["r1"] and store.get("nope") is None
        assert store.transition("r1", ("running",), status="answered") is None  # it is queued
        running = other.transition("r1", ("queued",), status="running", worker="w")
        assert running is not None and running.status == "running" and running.worker == "w"
        assert store.get("r1").status == "running"  # type: ignore[union-attr]
        assert [r.id for r in store.runs(None, ("running",))] == ["r1"]
        with pytest.raises(ValueError, match="owner"):
            store.transition("r1", ("running",), owner="eve")  # only status and its companions change

        store.add_event(RunEvent("r1", 1, "started", {"question": "q?"}))
        store.add_event(RunEvent("r1", 2, "model", {"step": 1}))
        store.add_event(RunEvent("r1", 2, "model", {"step": 1, "again": True}))  # a resumed step sent again
        assert [(e.seq, dict(e.data)) for e in other.events("r1")] == [(1, {"question": "q?"}),
                                                                       (2, {"step": 1, "again": True})]  # fmt: skip
        assert [e.seq for e in store.events("r1", after=1)] == [2] and store.events("r2") == []
    finally:
        store.close()
        other.close()


# -- the rules -------------------------------------------------------------------------------


def test_who_may_create_a_run_and_with_what(world: World) -> None:
    runs = world.runs
    ask = AgentRunRequest("[multi] What were Acme's net sales?", ROUTE)
    with pytest.raises(PermissionDenied):
        runs.create(NOBODY, ask).result()
    with pytest.raises(NotFound, match="strongroom models set-route") as not_granted:
        runs.create(EVE, ask).result()
    with pytest.raises(NotFound) as missing:
        runs.create(ANA, replace(ask, route="nope")).result()
    assert str(not_granted.value).replace(ROUTE, "X") == str(missing.value).replace("nope", "X")
    for bad in (replace(ask, question="  "), replace(ask, question="x" * 4001), replace(ask, max_steps=0),
                replace(ask, timeout_s=99_999), replace(ask, as_of="last tuesday")):  # fmt: skip
        with pytest.raises(QueryError):
            runs.create(ANA, bad).result()
    refused = runs.create(EVE, ask)
    assert refused.events[0].outcome == "not_found" and refused.events[0].action == "agent.run.create"


def test_the_clocks_are_fixed_when_the_run_is_created_and_never_later_than_then(world: World) -> None:
    before = utcnow()
    later = (before + timedelta(days=400)).isoformat()
    run = world.runs.create(ANA, AgentRunRequest("q [none]", ROUTE, as_of="2023-08-31", known_at=later)).result()
    try:
        assert run.as_of == "2023-08-31T23:59:59.999999+00:00"
        assert before <= datetime.fromisoformat(run.known_at) <= utcnow()  # the future is now
        assert run.clocks["known_at"] == datetime.fromisoformat(later).astimezone(UTC).isoformat()  # as asked
        assert run.groups == ("research",) and run.roles == ("reader",) and run.status == "queued"
    finally:
        world.runs.cancel(ANA, run.id).result()


def test_a_run_is_its_owners_and_an_admin_may_only_cancel_it(world: World) -> None:
    runs = world.runs
    run = runs.create(ANA, AgentRunRequest("q [none]", ROUTE)).result()
    for read in (runs.get, lambda who, i: runs.events(who, i), runs.resume):
        with pytest.raises(NotFound) as theirs:
            read(BOB, run.id).result()
        with pytest.raises(NotFound) as missing:
            read(BOB, "0" * 32).result()
        assert str(theirs.value).replace(run.id, "X") == str(missing.value).replace("0" * 32, "X")
    with pytest.raises(NotFound):
        runs.cancel(BOB, run.id).result()
    assert run.id not in [r.id for r in runs.mine(BOB).result()]
    assert runs.get(ANA, run.id).result().question == "q [none]"
    cancelled = runs.cancel(ROOT, run.id).result()  # an admin stops a runaway
    assert cancelled.status == "cancelled" and cancelled.reason == "cancelled by root"
    with pytest.raises(NotFound):
        runs.get(ROOT, run.id).result()
    with pytest.raises(QueryError, match="has ended"):
        runs.cancel(ANA, run.id).result()


def test_a_principal_may_have_only_so_many_active_runs(world: World) -> None:
    runs = world.runs
    carol = Principal("carol", frozenset({"research"}), frozenset({"reader"}))
    held = [runs.create(carol, AgentRunRequest("q [none]", ROUTE)).result() for _ in range(2)]
    with pytest.raises(PermissionDenied, match="at once"):
        runs.create(carol, AgentRunRequest("q [none]", ROUTE)).result()
    runs.cancel(carol, held[0].id).result()
    runs.create(carol, AgentRunRequest("q [none]", ROUTE)).result()


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_runs_of_a_dead_process_become_interrupted_and_no_others(world: World) -> None:
    store, runs = world.runs.store, world.runs
    host = socket.gethostname()
    me = worker_id()
    parent = f"{host}:{os.getppid()}:"  # alive (start time unknown: trusted)
    reused = f"{host}:{os.getpid()}:1"  # this pid, but another process's start time
    workers = {"dead": f"{host}:{_dead_pid()}:5", "alive": parent, "elsewhere": "other-host:1:1", "mine": me,
               "reused": reused}  # fmt: skip
    for name, worker in workers.items():
        store.save(_run(id=f"w-{name}", owner="dora", status="running", worker=worker))
    assert sorted(runs.recover(owner="dora").result()) == ["w-dead", "w-reused"]
    assert sorted(runs.recover(owner="dora", starting=True).result()) == ["w-mine"]  # a restart: none is ours
    statuses = {r.id: r.status for r in store.runs("dora")}
    assert statuses == {"w-dead": "interrupted", "w-reused": "interrupted", "w-mine": "interrupted",
                        "w-alive": "running", "w-elsewhere": "running"}  # fmt: skip
    interrupted = runs.recover(owner="dora")
    assert interrupted.result() == [] and interrupted.events == ()


# -- a run in this process ---------------------------------------------------------------------


def test_a_run_in_process_uses_the_platform_only_on_its_own_thread(world: World) -> None:
    events: list[RunEvent] = []
    request = AgentRunRequest("[multi] How do Acme's sales compare with its price?", ROUTE, as_of="2023-08-31")
    run = world.agent.ask(ANA, request, on_event=events.append)
    assert run.status == "answered" and run.result is not None and run.result["cited"] == [1, 2, 3]
    assert [e.kind for e in events] == [e.kind for e in world.agent.events(ANA, run.id)]
    assert [e.seq for e in events] == list(range(1, 10)) and events[-1].kind == "answer"
    actions = [r["action"] for r in world.audit(run.id)]
    assert actions.count("agent.run.model") == 4 and actions.count("agent.run.end") == 1
    assert [a for a in actions if a.startswith("agent.tool.")] == [
        "agent.tool.search_documents", "agent.tool.query_data", "agent.tool.calculate"]  # fmt: skip


def test_an_owner_without_the_groups_a_run_read_under_sees_its_status_not_what_it_read(world: World) -> None:
    run = world.agent.ask(ANA, AgentRunRequest("[faulty] What were Acme's net sales?", ROUTE))
    assert run.result is not None and "81,797" in run.result["answer"]
    moved = Principal("ana", frozenset({"analysts"}), frozenset({"reader"}))  # out of research since
    later = world.runs.get(moved, run.id).result()
    assert later.status == "answered" and later.result is not None and later.result["answer"] == WITHHELD
    assert later.result["evidence"] == [] and later.result["steps"] == run.result["steps"]
    assert [r.result for r in world.runs.mine(moved).result() if r.id == run.id] == [later.result]
    _, events = world.runs.events(moved, run.id).result()
    assert "81,797" not in json.dumps([dict(e.data) for e in events]) and events[-1].data == {"withheld": True}
    wider = Principal("ana", frozenset({"research", "analysts"}), frozenset({"reader"}))
    assert world.runs.get(wider, run.id).result() == run


def test_the_toolboxs_calculate_gives_way_to_the_agents_own(world: World) -> None:
    toolbox = toolbox_for(world.platform, ANA)
    assert "calculate" in [s.name for s in toolbox.specs()]
    wrapped = RunToolbox(toolbox)
    names = [s.name for s in wrapped.specs()]
    assert "calculate" not in names and "query_data" in names
    runner = AgentRunner(ScriptedModelStub(), wrapped)  # type: ignore[arg-type]
    assert [s for s in runner.specs if s.name == "calculate"] == [CALCULATE]  # the agent's, bound to its evidence


class ScriptedModelStub:
    """A ChatModel never asked (the runner above is only built)."""

    async def stream(self, request: object) -> Iterator[object]:  # pragma: no cover - never called
        raise AssertionError("not called")


def test_a_refused_query_in_a_run_reads_nothing_and_is_audited(world: World) -> None:
    run = world.agent.ask(ANA, AgentRunRequest("[obey] What does the watchlist memo say?", ROUTE))
    tools = [dict(e.data) for e in world.agent.events(ANA, run.id) if e.kind == "tool"]
    assert [(t["name"], t["ok"]) for t in tools] == [("search_documents", True), ("query_data", False)]
    assert SECRET not in json.dumps(run.result) and SECRET not in json.dumps(tools)
    records = world.audit(run.id)
    (query,) = [r for r in records if r["action"] == "agent.tool.query_data"]
    assert query["outcome"] == "error" and SECRET not in json.dumps(records)


def test_the_bridge_runs_calls_on_its_owner_thread() -> None:
    owner = threading.get_ident()

    def where() -> int:
        return threading.get_ident()

    def fails() -> int:
        raise QueryError("refused")

    def work(bridge: ThreadBridge) -> tuple[int, int, str]:
        try:
            bridge.call(fails)
        except QueryError as exc:
            error = str(exc)
        return bridge.call(where), threading.get_ident(), error

    ran_on, worker, error = run_here(work)
    assert ran_on == owner != worker and error == "refused"


def test_a_ctrl_c_during_a_call_on_the_owner_thread_asks_to_cancel_and_fails_nothing() -> None:
    """The Ctrl-C lands while the owner thread runs a call for the run (a store write, say): the
    call still returns, and the run is asked to cancel (once). Raised inside the call, it failed
    that call instead, and the run went on to answer."""
    asked: list[str] = []

    def interrupted_while_working() -> str:
        os.kill(os.getpid(), signal.SIGINT)  # the signal arrives in the middle of this call
        return "recorded"

    def work(bridge: ThreadBridge) -> list[str]:
        return [bridge.call(interrupted_while_working), bridge.call(lambda: "next step")]

    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (CI may ignore SIGINT)
    try:
        assert run_here(work, interrupted=lambda: asked.append("cancel")) == ["recorded", "next step"]
        assert asked == ["cancel"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back afterwards
    finally:
        signal.signal(signal.SIGINT, before)


def test_each_model_turns_record_says_what_clearance_it_needed_and_what_forced_it(world: World) -> None:
    events: list[RunEvent] = []
    request = AgentRunRequest("[multi] How do Acme's sales compare with its price?", ROUTE, as_of="2023-08-31")
    run = world.agent.ask(ANA, request, on_event=events.append)
    assert run.status == "answered"
    turns = {str(e.data["step"]): e.data for e in events if e.kind == "model"}
    models: list[Any] = [r for r in world.audit(run.id) if r["action"] == "agent.run.model"]
    records: dict[str, Any] = {str(r["filters"]["step"]): r["filters"] for r in models}
    assert records.keys() == turns.keys() and len(turns) == 4
    keys = ("context_clearance", "clearance_forced_by")
    # the audit log says what the run's events say: the level each turn needed and the ids that forced it
    assert {s: tuple(f.get(k) for k in keys) for s, f in records.items()} == {
        s: tuple(t.get(k) for k in keys) for s, t in turns.items()
    }
    last = records[max(records, key=int)]
    assert str(last["context_clearance"]).startswith("confidential")  # after the dataset rows
    assert any(i.startswith("dataset:") for i in str(last["clearance_forced_by"]).split(","))
    assert SECRET not in json.dumps(records)
