"""Executing one research-agent run: the runner wired to the run's principal, a gateway, the
checkpoints, the run store and the audit log; on whichever thread a driver gives it.

:func:`execute_run` runs one run to its end on the calling thread, in an event loop of its
own, with a gateway of its own (a gateway lives on one loop). Around the
:class:`~strongroom.agent.runner.AgentRunner` it puts:

- :class:`RunToolbox`: the principal's entitled toolbox without its ``calculate`` (the agent
  brings its own, bound to the run's evidence), counting the calls that reach it; a driver
  may hand each call to the thread that owns its platform (``call_on``);
- :class:`AuditedModel`: the gateway, with one ``agent.run.model`` record per model turn
  (route, deployment, tokens, finish reason, the names of the tools called; above public,
  the clearance the turn needed and the version ids or datasets that forced it: never text);
- the events: each kept in the run store (replaced by seq, as the runner asks), passed on to
  the driver (``notify``, ``on_event``); a tool call that never reached the toolbox (a
  ``calculate``, a malformed or unknown call) is audited here as ``agent.tool.<name>``;
- cancellation: the run store's ``cancel_requested``, read between steps; and a stop of the
  service (:meth:`RunWiring.stop_all`), which cancels the run's task, so the step it was in
  is not checkpointed: the run is ``interrupted`` and can be resumed where it was.

:class:`ThreadBridge` and :func:`run_here` serve a driver whose platform is bound to one
thread (the CLI's :class:`~strongroom.service.Platform`, whose SQLite store is used only by
the thread that opened it): the run executes on a thread of its own while the calling thread
runs each tool call and audit write it is handed.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from queue import Empty, SimpleQueue
from typing import Any, ParamSpec, TypeVar

from langgraph.checkpoint.base import BaseCheckpointSaver

from strongroom.agent.base import RunEvent, Toolbox, ToolOutput
from strongroom.agent.runner import AgentResult, AgentRunner
from strongroom.agent.tools import CALCULATE
from strongroom.errors import NotFound, StrongroomError
from strongroom.ingest.understand.redaction import redact_value
from strongroom.llm.clearance import ContextClearance
from strongroom.llm.gateway import Gateway
from strongroom.llm.types import SENSITIVITY_LEVELS, ChatRequest, Delta, Sensitivity, ToolSpec
from strongroom.service.agent_run_store import AgentRun
from strongroom.service.agent_runs import AgentRuns
from strongroom.service.agent_tools import TOOL_ACTION
from strongroom.service.operations import Outcome
from strongroom.service.tool_output import carried_clearance
from strongroom.types import Principal

__all__ = [
    "MODEL_ACTION",
    "AuditedModel",
    "RunToolbox",
    "RunWiring",
    "ThreadBridge",
    "execute_run",
    "run_here",
]

log = logging.getLogger(__name__)
T = TypeVar("T")
P = ParamSpec("P")

#: the audit action of one model turn of a run
MODEL_ACTION = "agent.run.model"
_STOPPED = "the service stopped during the run; resume it"


class RunToolbox:
    """The run's toolbox as the agent sees it: the principal's tools but ``calculate``.

    ``call_on`` runs each call where the platform may be used (default: here); ``calls``
    counts the calls that reached the toolbox (so a call that did not is audited by the run).
    """

    def __init__(self, inner: Toolbox, *, call_on: Callable[[Callable[[], ToolOutput]], ToolOutput] | None = None):
        self.inner = inner
        self.call_on = call_on
        self.calls = 0
        self._specs = tuple(s for s in inner.specs() if s.name != CALCULATE.name)

    def specs(self) -> tuple[ToolSpec, ...]:
        return self._specs

    def call(self, name: str, arguments: Any) -> ToolOutput:
        self.calls += 1
        if self.call_on is None:
            return self.inner.call(name, arguments)
        return self.call_on(lambda: self.inner.call(name, arguments))


@dataclass
class RunWiring:
    """What a driver gives its runs: the run operations, the checkpoints, ``commit`` (writes
    an outcome's audit records and returns its value, callable from a run's thread),
    ``gateway`` (a new gateway, made on the run's loop) and ``notify`` (a run's events
    changed). It tracks the runs executing, so that :meth:`stop_all` can stop them."""

    runs: AgentRuns
    checkpointer: BaseCheckpointSaver[Any]
    commit: Callable[[Outcome[Any]], Any]
    gateway: Callable[[], Gateway]
    notify: Callable[[str], None] = lambda run_id: None
    turn_max_tokens: int | None = 1024
    stopping: threading.Event = field(default_factory=threading.Event)
    _tasks: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Task[Any]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def executing(self) -> list[str]:
        """The ids of the runs executing now."""
        with self._lock:
            return list(self._tasks)

    def stop_all(self) -> list[str]:
        """Stop every run executing now (a service stopping): each one's task is cancelled, so
        its current step is not checkpointed, and it ends ``interrupted``. Their ids."""
        self.stopping.set()
        with self._lock:
            tasks = dict(self._tasks)
        for loop, task in tasks.values():
            if not loop.is_closed():
                loop.call_soon_threadsafe(task.cancel)
        return list(tasks)

    def _enter(self, run_id: str) -> None:
        task = asyncio.current_task()
        assert task is not None
        with self._lock:
            if self.stopping.is_set():
                raise asyncio.CancelledError
            self._tasks[run_id] = (asyncio.get_running_loop(), task)

    def _leave(self, run_id: str) -> None:
        with self._lock:
            self._tasks.pop(run_id, None)


class AuditedModel:
    """The gateway for one run: each model turn is an ``agent.run.model`` record of the run's
    principal, written when the turn ends (or fails), with what served it."""

    supports_tools = True

    def __init__(self, gateway: Gateway, wiring: RunWiring, principal: Principal, run_id: str) -> None:
        self.gateway = gateway
        self.wiring = wiring
        self.principal = principal
        self.run_id = run_id

    @staticmethod
    def _clearance(request: ChatRequest) -> dict[str, str]:
        """Above public, the clearance the turn was sent with and the ids that forced it: read
        from the tool results the turn carries (their evidence refs), as the run's events say."""
        raw = request.sensitivity or "public"
        level: Sensitivity = raw if raw in SENSITIVITY_LEVELS else "restricted"
        carried = carried_clearance(m.content for m in request.messages if m.role == "tool")
        return carried.join(ContextClearance(level, request.mnpi)).metadata()

    def _record(self, request: ChatRequest, outcome: str, detail: str, **more: Any) -> None:
        step = (request.request_id or "").rsplit(":", 1)[-1]
        filters = {"route": request.model, "step": step, "tools_offered": len(request.tools), **more.pop("filters", {})}
        filters.update(self._clearance(request))
        record = self.wiring.runs.ops.record(
            self.principal, MODEL_ACTION, outcome=outcome, target=self.run_id, filters=filters, detail=detail, **more
        )
        try:
            self.wiring.commit(Outcome(None, None, (record,)))
        except StrongroomError:
            if not self.wiring.stopping.is_set():
                raise
            log.warning("agent run %s: a model turn's record was lost in a stop", self.run_id)

    async def stream(self, request: ChatRequest) -> AsyncIterator[Delta]:
        try:
            async with self.gateway.stream(request) as answer:
                async for delta in answer:
                    yield delta
                result = answer.result
        except StrongroomError as exc:
            self._record(request, "error", redact_value(f"{type(exc).__name__}: {exc}")[0][:500])
            raise
        except BaseException as exc:  # a timeout of the run (cancelled), a close: the turn did not end
            self._record(request, "error", f"stopped: {type(exc).__name__}")
            raise
        filters = {
            "deployment": result.deployment,
            "route_version": result.route_version,
            "finish_reason": result.finish_reason,
            "prompt_tokens": result.usage.prompt_tokens,
            "completion_tokens": result.usage.completion_tokens,
            "estimated": result.usage.estimated,
            "tool_calls": [c.name for c in result.tool_calls],
            "failovers": len(result.failovers),
        }
        detail = f"{result.finish_reason}; {len(result.tool_calls)} tool call(s)"
        self._record(request, "ok", detail, filters=filters, generator=result.deployment)


class _DaemonThreads(ThreadPoolExecutor):  # asyncio takes only a ThreadPoolExecutor
    """The run loop's default executor: one daemon thread per call, so a call stuck on a
    stopped service never holds up the process's exit."""

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        future: Future[T] = Future()
        work = functools.partial(_settle, future, functools.partial(fn, *args, **kwargs))
        threading.Thread(target=work, name="strongroom-agent-call", daemon=True).start()
        return future


def _settle(future: Future[T], fn: Callable[[], T]) -> None:
    """Run ``fn`` for ``future`` (unless it was cancelled) and settle it with what it returned or raised."""
    if not future.set_running_or_notify_cancel():
        return
    try:
        future.set_result(fn())
    except BaseException as exc:
        future.set_exception(exc)


def _tool_record(wiring: RunWiring, principal: Principal, run_id: str, data: Any, known: set[str]) -> None:
    """The record of a tool call the toolbox never saw (``calculate``, or a call refused before it)."""
    name = str(data.get("name", ""))
    tool = name if name in known else "unknown"
    arguments = data.get("arguments", "")
    text = arguments if isinstance(arguments, str) else json.dumps(arguments, default=str)
    error = str(data.get("error", ""))
    record = wiring.runs.ops.record(
        principal,
        TOOL_ACTION + tool,
        outcome="ok" if data.get("ok") else "error",
        query=text[:2000],
        target=run_id,
        filters={"run_id": run_id, "tool": tool if tool != "unknown" else redact_value(name[:64])[0]},
        detail=redact_value(error)[0][:500],
    )
    wiring.commit(Outcome(None, None, (record,)))


async def _execute(
    wiring: RunWiring,
    run: AgentRun,
    principal: Principal,
    tools: RunToolbox,
    resume: bool,
    on_event: Callable[[RunEvent], None] | None,
) -> AgentResult:
    asyncio.get_running_loop().set_default_executor(_DaemonThreads())
    known = {s.name for s in tools.specs()} | {CALCULATE.name}
    seen = 0

    def events(event: RunEvent) -> None:
        nonlocal seen
        wiring.runs.store.add_event(event)
        if event.kind == "tool":
            if tools.calls == seen:
                _tool_record(wiring, principal, run.id, event.data, known)
            seen = tools.calls
        wiring.notify(run.id)
        if on_event is not None:
            on_event(event)

    def cancelled() -> bool:
        return wiring.runs.cancel_requested(run.id)

    wiring._enter(run.id)
    gateway = wiring.gateway()
    try:
        runner = AgentRunner(
            AuditedModel(gateway, wiring, principal, run.id),
            tools,
            checkpointer=wiring.checkpointer,
            limits=run.limits,
            route=run.route,
            on_event=events,
            user=principal.name,
            turn_max_tokens=wiring.turn_max_tokens,
        )
        if resume:
            try:
                await runner.aresult(run.id)
            except NotFound:
                resume = False  # it stopped before its first checkpoint: start it afresh
        if resume:
            return await runner.aresume(run.id, cancelled=cancelled)
        return await runner.arun(run.id, run.question, cancelled=cancelled)
    finally:
        wiring._leave(run.id)
        await gateway.aclose()


def execute_run(
    wiring: RunWiring,
    run: AgentRun,
    principal: Principal,
    tools: RunToolbox,
    *,
    resume: bool = False,
    on_event: Callable[[RunEvent], None] | None = None,
) -> AgentRun | None:
    """Run ``run`` (new, or ``resume`` it from its checkpoint) to its end on this thread, in
    an event loop of its own; the run as it was left (None if it vanished). Never raises for
    what happens inside the run: it ends ``error``, or ``interrupted`` when the service stops."""
    try:
        result = asyncio.run(_execute(wiring, run, principal, tools, resume, on_event))
    except asyncio.CancelledError:  # stop_all: the step it was in is not checkpointed
        stopped: AgentRun | None = wiring.commit(wiring.runs.interrupted(run.id, _STOPPED))
        return stopped
    except Exception as exc:  # it could not start (a deployments file that does not load, ...)
        log.exception("agent run %s could not run", run.id)
        why = str(exc) if isinstance(exc, StrongroomError) else f"internal error ({type(exc).__name__}); see the log"
        result = AgentResult(run.id, run.question, "error", "", reason=f"the run could not run: {why}")
    done: AgentRun | None = wiring.commit(wiring.runs.finished(principal, run.id, result))
    wiring.notify(run.id)
    return done


class _Interrupt:
    """A Ctrl-C, handed to the serving loop."""


_INTERRUPT = _Interrupt()


class ThreadBridge:
    """Runs functions on the thread that made it, for callers on other threads: they wait
    while :meth:`serve` (on the owner thread) runs each one.

        bridge = ThreadBridge()
        worker = threading.Thread(target=lambda: done.set_result(bridge.call(platform_op)))
        worker.start(); bridge.serve(done)
    """

    def __init__(self) -> None:
        self._owner = threading.get_ident()
        self._calls: SimpleQueue[tuple[Callable[[], Any], Future[Any]] | _Interrupt | None] = SimpleQueue()

    def call(self, fn: Callable[[], T]) -> T:
        """``fn()`` on the owner thread (at once when called there)."""
        if threading.get_ident() == self._owner:
            return fn()
        future: Future[T] = Future()
        self._calls.put((fn, future))
        return future.result()

    def serve(self, done: Future[Any], *, interrupted: Callable[[], None] | None = None) -> None:
        """Run the calls handed over until ``done`` is settled. A Ctrl-C here calls
        ``interrupted`` (once; a second one stops serving) and goes on serving.

        On the main thread the Ctrl-C is taken by a signal handler that only wakes this loop, so
        it is never raised inside a call being served (which would fail that call, not the run)."""
        done.add_done_callback(lambda _: self._calls.put(None))
        hits = 0

        def on_interrupt(signum: int, frame: object) -> None:
            self._calls.put(_INTERRUPT)  # SimpleQueue.put is safe in a signal handler

        catching = (
            interrupted is not None
            and threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN  # e.g. under nohup: left ignored
        )
        previous = signal.signal(signal.SIGINT, on_interrupt) if catching else None
        try:
            while True:
                try:
                    item = self._calls.get(timeout=0.5)
                except Empty:
                    continue
                if isinstance(item, _Interrupt):
                    hits += 1
                    if hits > 1 or interrupted is None:
                        raise KeyboardInterrupt
                    interrupted()
                    continue
                if item is None:
                    return
                fn, future = item
                _settle(future, fn)
        finally:
            if catching:
                signal.signal(signal.SIGINT, previous)


def run_here(
    execute: Callable[[ThreadBridge], T],
    *,
    interrupted: Callable[[], None] | None = None,
) -> T:
    """``execute(bridge)`` on a new thread while this one serves the bridge; its value.
    ``interrupted`` is called on a Ctrl-C (e.g. to cancel the run), here, on this thread."""
    bridge = ThreadBridge()
    done: Future[T] = Future()
    work = functools.partial(_settle, done, functools.partial(execute, bridge))
    thread = threading.Thread(target=work, name="strongroom-agent-run", daemon=True)
    thread.start()
    bridge.serve(done, interrupted=interrupted)
    return done.result()
