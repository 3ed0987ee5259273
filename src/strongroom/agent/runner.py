"""Running the research agent: start a run, resume one after a restart, read its result.

::

    checkpointer = open_checkpointer(default_checkpoint_path(home))
    runner = AgentRunner(gateway, toolbox, checkpointer=checkpointer, route="chat", on_event=events.append)
    result = await runner.arun("run-42", "How did Apple's net sales change from Q2 to Q3 2023?")
    result.status, result.answer, result.unsupported     # "answered", "... [1][3]", ()
    # the process died mid-run? in the next one, with a toolbox for the same principal:
    result = await runner.aresume("run-42")

The toolbox is bound to the run's principal by the application layer; the runner knows
nothing of principals, stores or HTTP. A run never raises for what happens inside it: a
limit, a cancellation, a refused tool or a failing model ends it with a status
(:class:`AgentResult`), and its events say what happened. ``run``/``resume`` are the
synchronous forms (they start an event loop: call them outside one).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver

from strongroom.agent.base import AgentLimits, Evidence, RunEvent, Toolbox
from strongroom.agent.citations import NumberCheck
from strongroom.agent.decide import initial_state
from strongroom.agent.graph import build_graph
from strongroom.agent.nodes import RunContext
from strongroom.agent.prompt import PROMPT_VERSION, evidence_of
from strongroom.agent.tools import CALCULATE
from strongroom.errors import NotFound, QueryError
from strongroom.llm.protocol import ChatModel

__all__ = ["AgentResult", "AgentRunner", "result_of"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgentResult:
    """What a run came to.

    ``status``: ``answered``; ``limit`` (``limit`` names it: ``max_steps``,
    ``max_tool_calls``, ``max_tokens``, ``timeout``), ``cancelled`` or ``error``, with
    ``reason`` saying why and ``answer`` the model's draft if it had written one (often "");
    ``running`` for a run read while in progress. ``answer`` ends with a line naming its
    unsupported numbers when there are any; ``evidence`` is everything the run gathered,
    numbered from 1 in this order, and ``cited`` the numbers the answer cites.
    """

    run_id: str
    question: str
    status: str
    answer: str
    evidence: tuple[Evidence, ...] = ()
    cited: tuple[int, ...] = ()
    supported: tuple[NumberCheck, ...] = ()
    unsupported: tuple[NumberCheck, ...] = ()
    reason: str = ""
    limit: str = ""
    steps: int = 0
    tool_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    elapsed_s: float = 0.0
    prompt_version: str = PROMPT_VERSION

    @property
    def citations(self) -> tuple[tuple[int, Evidence], ...]:
        """The evidence the answer cites, with its numbers."""
        return tuple((n, self.evidence[n - 1]) for n in self.cited if 1 <= n <= len(self.evidence))


def _checks(report: Mapping[str, Any]) -> list[NumberCheck]:
    return [
        NumberCheck(str(n["text"]), int(n["start"]), int(n["end"]), tuple(n["cited"]), tuple(n["supported_by"]))
        for n in report.get("numbers", [])
    ]


def result_of(state: Mapping[str, Any]) -> AgentResult:
    """An :class:`AgentResult` from a run's state (finished or not)."""
    report = state.get("report") or {}
    checks = _checks(report)
    return AgentResult(
        run_id=str(state.get("run_id", "")),
        question=str(state.get("question", "")),
        status=str(state.get("status") or "running"),
        answer=str(state.get("answer", "")),
        evidence=tuple(evidence_of(e) for e in state.get("evidence", [])),
        cited=tuple(int(n) for n in report.get("cited", [])),
        supported=tuple(c for c in checks if c.supported),
        unsupported=tuple(c for c in checks if not c.supported),
        reason=str(state.get("reason", "")),
        limit=str(state.get("limit", "")),
        steps=int(state.get("steps", 0)),
        tool_calls=int(state.get("tool_calls", 0)),
        prompt_tokens=int(state.get("prompt_tokens", 0)),
        completion_tokens=int(state.get("completion_tokens", 0)),
        elapsed_s=float(state.get("elapsed_s", 0.0)),
        prompt_version=str(state.get("prompt_version", PROMPT_VERSION)),
    )


def _never() -> bool:
    return False


def _ignore(event: RunEvent) -> None:
    return None


class AgentRunner:
    """Runs the research agent with one model, one toolbox and one checkpointer.

    ``model``: a :class:`ChatModel` (the gateway, asked for ``route``); ``toolbox``: the
    tools of the run's principal (``calculate`` is the agent's own, replacing any the
    toolbox offers: it checks each input against the run's evidence);
    ``checkpointer``: where steps are kept (:func:`~strongroom.agent.checkpoint.open_checkpointer`;
    None keeps them in memory, so nothing survives a restart); ``user``: sent with each
    model request (the gateway's per-principal budgets); ``turn_max_tokens``: the most one
    model turn may write (keep it within the gateway's ``max_tokens`` limit); ``on_event``:
    called with each :class:`RunEvent` as it happens.
    """

    def __init__(
        self,
        model: ChatModel,
        toolbox: Toolbox,
        *,
        checkpointer: BaseCheckpointSaver[Any] | None = None,
        limits: AgentLimits | None = None,
        route: str = "default",
        on_event: Callable[[RunEvent], None] | None = None,
        user: str | None = None,
        turn_max_tokens: int | None = 1024,
    ) -> None:
        # the agent's calculate binds each input to the run's evidence, which a toolbox cannot
        # see: it replaces a toolbox's own (one for MCP clients, say)
        specs = tuple(s for s in toolbox.specs() if s.name != CALCULATE.name)
        self.model = model
        self.toolbox = toolbox
        self.specs = (*specs, CALCULATE)
        self.checkpointer = checkpointer if checkpointer is not None else InMemorySaver()
        self.limits = limits or AgentLimits()
        self.route = route
        self.on_event = on_event or _ignore
        self.user = user
        self.turn_max_tokens = turn_max_tokens

    def _context(self, run_id: str, cancelled: Callable[[], bool] | None) -> RunContext:
        return RunContext(
            run_id=run_id,
            model=self.model,
            toolbox=self.toolbox,
            specs=self.specs,
            limits=self.limits,
            route=self.route,
            on_event=self.on_event,
            cancelled=cancelled or _never,
            turn_max_tokens=self.turn_max_tokens,
        )

    def _config(self, run_id: str) -> Any:
        # each tool call is a step of its own: leave room for all the limits allow
        steps = 3 * (self.limits.max_steps + self.limits.max_tool_calls) + 10
        return {"configurable": {"thread_id": run_id}, "recursion_limit": steps}

    async def _drive(self, ctx: RunContext, state: Any, question: str) -> AgentResult:
        graph = build_graph(self.checkpointer)
        config = self._config(ctx.run_id)
        try:
            final = await graph.ainvoke(state, config, context=ctx, durability="sync")
        except Exception as exc:
            log.exception("agent run %s stopped with an error", ctx.run_id)
            snapshot = await graph.aget_state(config)
            values = dict(snapshot.values or {})
            reason = str(exc) if isinstance(exc, QueryError | NotFound) else f"{type(exc).__name__}: {exc}"
            seq = int(values.get("seq", 1)) + 1
            try:
                self.on_event(RunEvent(ctx.run_id, seq, "error", {"reason": reason}))
            except Exception:
                log.exception("agent run %s: the error event could not be sent", ctx.run_id)
            return result_of(
                {"run_id": ctx.run_id, "question": question, **values, "status": "error", "reason": reason}
            )
        return result_of(final)

    async def arun(self, run_id: str, question: str, *, cancelled: Callable[[], bool] | None = None) -> AgentResult:
        """Run the agent on ``question`` as run ``run_id`` (new: resume an existing one).

        ``cancelled`` is asked between steps; when it returns True the run ends ``cancelled``.
        """
        if not question.strip():
            raise QueryError("the question is empty; ask something")
        ctx = self._context(run_id, cancelled)
        graph = build_graph(self.checkpointer)
        if (await graph.aget_state(self._config(run_id))).values:
            raise QueryError(f"run {run_id!r} already exists; resume it or start a run with a new id")
        state = initial_state(run_id, question, self.user)
        self.on_event(RunEvent(run_id, 1, "started", {"question": question, "prompt_version": PROMPT_VERSION}))
        return await self._drive(ctx, state, question)

    async def aresume(self, run_id: str, *, cancelled: Callable[[], bool] | None = None) -> AgentResult:
        """Continue run ``run_id`` from its last checkpoint (after its process died): completed
        tool calls are not made again. A finished run's result is returned as it is."""
        ctx = self._context(run_id, cancelled)
        graph = build_graph(self.checkpointer)
        snapshot = await graph.aget_state(self._config(run_id))
        values = snapshot.values or {}
        if not values:
            raise NotFound(f"there is no run {run_id!r} to resume in {self.checkpointer!r}; check the id")
        if not snapshot.next:
            return result_of(values)
        ctx.base_elapsed_s = float(values.get("elapsed_s", 0.0))
        ctx.resumed = True
        return await self._drive(ctx, None, str(values.get("question", "")))

    async def aresult(self, run_id: str) -> AgentResult:
        """Run ``run_id`` as its last checkpoint has it (``status`` ``running`` if unfinished)."""
        graph = build_graph(self.checkpointer)
        values = (await graph.aget_state(self._config(run_id))).values
        if not values:
            raise NotFound(f"there is no run {run_id!r} in {self.checkpointer!r}; check the id")
        return result_of(values)

    def run(self, run_id: str, question: str, *, cancelled: Callable[[], bool] | None = None) -> AgentResult:
        """:meth:`arun`, for callers without an event loop."""
        return asyncio.run(self.arun(run_id, question, cancelled=cancelled))

    def resume(self, run_id: str, *, cancelled: Callable[[], bool] | None = None) -> AgentResult:
        """:meth:`aresume`, for callers without an event loop."""
        return asyncio.run(self.aresume(run_id, cancelled=cancelled))

    def result(self, run_id: str) -> AgentResult:
        """:meth:`aresult`, for callers without an event loop."""
        return asyncio.run(self.aresult(run_id))
