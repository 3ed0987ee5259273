"""Research-agent runs in this process, over a :class:`~strongroom.service.Platform`: what
``strongroom agent`` and Python programs use.

A run executes on a thread of its own (its event loop, its gateway) while the thread that
uses the platform runs each tool call and audit write the run hands it
(:func:`~strongroom.service.agent_execution.run_here`): the platform's embedded store is used
only by the thread that opened it. A Ctrl-C during a run cancels it (it ends ``cancelled`` at
its next step); a second one stops waiting. A run whose process is killed is left
``running``: the next ``strongroom serve`` (or a count of the owner's active runs) marks it
``interrupted``, and ``resume`` continues it from its checkpoint.

    with Platform.open(settings) as platform:
        agent = LocalAgentRuns(platform)
        run = agent.ask(ana, AgentRunRequest("How did net sales change?", route="research"))
        run.status, run.result["answer"]
        agent.close()
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

from strongroom.agent.base import RunEvent
from strongroom.agent.checkpoint import AgentCheckpointer, checkpoint_target, open_checkpointer
from strongroom.errors import NotFound
from strongroom.llm.deployments import open_gateway
from strongroom.llm.route_config import RouteStore
from strongroom.service.agent_execution import RunToolbox, RunWiring, ThreadBridge, execute_run, run_here
from strongroom.service.agent_run_store import AgentRun, open_run_store
from strongroom.service.agent_runs import AgentRunRequest, AgentRuns
from strongroom.service.agent_tools import toolbox_for
from strongroom.service.operations import Outcome
from strongroom.service.platform import Platform
from strongroom.types import Principal

__all__ = ["LocalAgentRuns", "checkpoint_target"]

T = TypeVar("T")


class LocalAgentRuns:
    """The run operations over one :class:`Platform`, with runs executed in this process.
    Use it on the thread that uses the platform; close it when done."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.runs = AgentRuns(platform.ops, open_run_store(platform.settings), RouteStore(platform.settings.home))
        self._checkpointer: AgentCheckpointer | None = None

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
        self.runs.close()

    def __enter__(self) -> LocalAgentRuns:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _done(self, outcome: Outcome[T]) -> T:
        return self.platform._done(outcome)

    # -- reading and changing runs -----------------------------------------------------------

    def routes(self, principal: Principal) -> list[str]:
        """The model routes ``principal`` may run the agent with (the extractive one cannot call tools)."""
        return [r.name for r in self.platform.models(principal) if r.version is not None]

    def get(self, principal: Principal, run_id: str) -> AgentRun:
        return self._done(self.runs.get(principal, run_id))

    def mine(self, principal: Principal, limit: int = 100) -> list[AgentRun]:
        return self._done(self.runs.mine(principal, limit))

    def events(self, principal: Principal, run_id: str, after: int = 0) -> list[RunEvent]:
        return self._done(self.runs.events(principal, run_id, after))[1]

    def cancel(self, principal: Principal, run_id: str) -> AgentRun:
        return self._done(self.runs.cancel(principal, run_id))

    # -- running -----------------------------------------------------------------------------

    def ask(
        self, principal: Principal, request: AgentRunRequest, *, on_event: Callable[[RunEvent], None] | None = None
    ) -> AgentRun:
        """Run the agent on ``request`` here, to its end; ``on_event`` sees each step as it happens."""
        run = self._done(self.runs.create(principal, request, status="running"))
        return self._execute(run, principal, resume=False, on_event=on_event)

    def resume(
        self, principal: Principal, run_id: str, *, on_event: Callable[[RunEvent], None] | None = None
    ) -> AgentRun:
        """Continue an interrupted run of ``principal`` here, with ``principal``'s entitlements now."""
        run = self._done(self.runs.resume(principal, run_id, status="running"))
        return self._execute(run, principal, resume=True, on_event=on_event)

    def _execute(
        self, run: AgentRun, principal: Principal, *, resume: bool, on_event: Callable[[RunEvent], None] | None
    ) -> AgentRun:
        if self._checkpointer is None:
            self._checkpointer = open_checkpointer(checkpoint_target(self.platform.settings))
        checkpointer = self._checkpointer
        toolbox = toolbox_for(self.platform, principal, as_of=run.as_of, known_at=run.known_at, run_id=run.id)
        home = self.platform.settings.home

        def execute(bridge: ThreadBridge) -> AgentRun | None:
            wiring = RunWiring(
                runs=self.runs,
                checkpointer=checkpointer,
                commit=lambda outcome: bridge.call(functools.partial(self._done, outcome)),
                gateway=lambda: open_gateway(home),
            )
            tools = RunToolbox(toolbox, call_on=bridge.call)
            return execute_run(wiring, run, principal, tools, resume=resume, on_event=on_event)

        def interrupted() -> None:
            self._done(self.runs.cancel(principal, run.id))

        ended = run_here(execute, interrupted=interrupted)
        if ended is None:
            raise NotFound(f"agent run {run.id} vanished while it ran; check the store")
        return ended
