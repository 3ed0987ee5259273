"""Research-agent runs in the HTTP service, over an :class:`~strongroom.service.AsyncPlatform`.

Each run executes on a daemon thread of its own, in its own event loop with its own gateway
(:func:`~strongroom.service.agent_execution.execute_run`); its tools read through the
service's platform, scheduling each operation on the server's event loop, and its audit
records are committed there with every other request's. At most ``agent_max_running`` runs
execute at once; more wait ``queued`` in the order they came.

- :meth:`AgentHost.start` (at service start): runs a dead process left ``queued`` or
  ``running`` become ``interrupted``;
- :meth:`AgentHost.aclose` (at a stop): the runs executing are stopped where they are (their
  current step is not checkpointed) and marked ``interrupted``, as are those still queued;
  after a restart their owners resume them.

    host = AgentHost(service.platform)
    await host.start()
    run = await host.create(ana, AgentRunRequest("How did net sales change?", route="research"))
    async for event in host.follow(ana, run.id, after=0): ...
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from queue import SimpleQueue
from typing import Any, TypeVar

from strongroom.agent.base import RunEvent
from strongroom.agent.checkpoint import AgentCheckpointer, open_checkpointer
from strongroom.agent.runner import AgentResult
from strongroom.errors import PermissionDenied, StoreError
from strongroom.llm.deployments import open_gateway
from strongroom.llm.route_config import RouteStore
from strongroom.service.agent_execution import RunToolbox, RunWiring, execute_run
from strongroom.service.agent_local import checkpoint_target
from strongroom.service.agent_run_store import ACTIVE, AgentRun, open_run_store
from strongroom.service.agent_run_views import readable, withheld_event
from strongroom.service.agent_runs import AgentRunRequest, AgentRuns
from strongroom.service.agent_tools import toolbox_for
from strongroom.service.async_platform import AsyncPlatform
from strongroom.service.operations import Outcome
from strongroom.types import Principal, utcnow

__all__ = ["AgentHost", "Follow"]

log = logging.getLogger(__name__)
T = TypeVar("T")
#: how long a stop waits for the runs it stopped to write that they were interrupted
STOP_WAIT_S = 5.0


@dataclass(frozen=True)
class _Job:
    run: AgentRun
    principal: Principal
    resume: bool


@dataclass(frozen=True)
class Follow:
    """What :meth:`AgentHost.follow` yields: an event of the run, or (``event`` None) a
    heartbeat while nothing happens, or the run's end (``ended``: its final status)."""

    event: RunEvent | None = None
    ended: str = ""


class _Notices:
    """Wakes the followers of a run (on the server's loop) when its events change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}

    def notify(self, run_id: str) -> None:
        with self._lock:
            waiting = list(self._waiting.get(run_id, ()))
        for loop, event in waiting:
            if not loop.is_closed():
                loop.call_soon_threadsafe(event.set)

    def register(self, run_id: str) -> tuple[asyncio.AbstractEventLoop, asyncio.Event]:
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiting.setdefault(run_id, set()).add(entry)
        return entry

    def unregister(self, run_id: str, entry: tuple[asyncio.AbstractEventLoop, asyncio.Event]) -> None:
        with self._lock:
            waiting = self._waiting.get(run_id)
            if waiting is not None:
                waiting.discard(entry)
                if not waiting:
                    del self._waiting[run_id]


class AgentHost:
    """The service's agent runs: the operations (each audited, committed with the service's
    records) and their execution on at most ``agent_max_running`` threads. Use from the
    server's event loop."""

    def __init__(self, platform: AsyncPlatform) -> None:
        self.platform = platform
        self.settings = platform.settings
        self.runs = AgentRuns(platform.ops, open_run_store(self.settings), RouteStore(self.settings.home))
        self._notices = _Notices()
        self._jobs: SimpleQueue[_Job | None] = SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._checkpointer: AgentCheckpointer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wiring: RunWiring | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> list[str]:
        """At service start: runs a dead process left queued or running become interrupted; their ids."""
        self._loop = asyncio.get_running_loop()
        outcome = await asyncio.to_thread(self.runs.recover, starting=True)
        recovered: list[str] = await self.platform._done(outcome)
        for run_id in recovered:
            log.warning("agent run %s was left running by a stopped process; marked interrupted", run_id)
        return recovered

    async def aclose(self) -> None:
        """Stop: the runs executing are cancelled where they are (their step not checkpointed)
        and marked interrupted, and so are the queued ones; the threads are not waited for
        past :data:`STOP_WAIT_S`."""
        wiring = self._wiring
        if wiring is not None:
            wiring.stop_all()
        for _ in self._workers:
            self._jobs.put(None)
        threads = list(self._workers)

        def join() -> None:
            for t in threads:
                t.join(timeout=STOP_WAIT_S / max(1, len(threads)))

        await asyncio.to_thread(join)
        left = await asyncio.to_thread(self.runs.mine_here, ACTIVE)
        for run in left:
            await self.platform._done(await asyncio.to_thread(self.runs.interrupted, run.id))
        if self._checkpointer is not None and not any(t.is_alive() for t in threads):
            self._checkpointer.close()
        self.runs.close()

    def _commit(self, outcome: Outcome[T]) -> T:
        """Write an outcome's records on the server's loop, from a run's thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            raise StoreError("the service is stopping: its event loop is closed; resume the run once it is back")
        future = asyncio.run_coroutine_threadsafe(self.platform._done(outcome), loop)
        try:
            return future.result(60.0)
        except FutureTimeout as exc:
            raise StoreError("the audit log did not commit within 60 s; check the store") from exc

    def _wiring_now(self) -> RunWiring:
        if self._wiring is None:
            self._checkpointer = open_checkpointer(checkpoint_target(self.settings))
            home = self.settings.home
            self._wiring = RunWiring(
                runs=self.runs,
                checkpointer=self._checkpointer,
                commit=self._commit,
                gateway=lambda: open_gateway(home),
                notify=self._notices.notify,
            )
        return self._wiring

    # -- execution -------------------------------------------------------------------------

    def _submit(self, job: _Job) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        self._wiring_now()
        if len(self._workers) < self.settings.agent_max_running:
            worker = threading.Thread(target=self._work, name=f"strongroom-agent-{len(self._workers)}", daemon=True)
            self._workers.append(worker)
            worker.start()
        self._jobs.put(job)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            wiring = self._wiring_now()
            if wiring.stopping.is_set():
                return
            try:
                self._execute(wiring, job)
            except Exception:
                log.exception("agent run %s failed outside the run", job.run.id)

    def _execute(self, wiring: RunWiring, job: _Job) -> None:
        run = self.runs.start(job.run.id)
        if run is None:
            return  # cancelled while it waited
        self._notices.notify(run.id)
        assert self._loop is not None
        try:
            toolbox = toolbox_for(
                self.platform,
                job.principal,
                as_of=run.as_of,
                known_at=run.known_at,
                run_id=run.id,
                loop=self._loop,
                check=self._key_check(job.principal),
            )
        except Exception as exc:  # the run must not stay running: it ends with the reason
            log.exception("agent run %s: its toolbox could not be made", run.id)
            failed = AgentResult(run.id, run.question, "error", "", reason=f"the run could not start: {exc}")
            wiring.commit(self.runs.finished(job.principal, run.id, failed))
            return
        execute_run(wiring, run, job.principal, RunToolbox(toolbox), resume=job.resume)

    def _key_check(self, principal: Principal) -> Callable[[], None] | None:
        """For a run started with an API key: a check, before each tool call, that the key is
        still active (the HTTP service checks it at every request; a run outlives its request)."""
        if principal.auth != "api-key" or not principal.key_id:
            return None
        keys, key_id = self.platform.keys, principal.key_id

        def check() -> None:
            now = utcnow()
            if not any(k.id == key_id and k.active(now) for k in keys.list()):
                raise PermissionDenied(
                    f"the API key {key_id} this run was started with has been revoked or has expired since; "
                    "the run reads nothing more: start a new run with an active key"
                )

        return check

    # -- the operations --------------------------------------------------------------------

    async def _op(self, fn: Callable[..., Outcome[T]], *args: Any, **kw: Any) -> T:
        outcome = await asyncio.to_thread(fn, *args, **kw)
        value: T = await self.platform._done(outcome)
        return value

    async def create(self, principal: Principal, request: AgentRunRequest) -> AgentRun:
        """A new run of ``principal``, queued to execute here."""
        run = await self._op(self.runs.create, principal, request)
        self._submit(_Job(run, principal, resume=False))
        return run

    async def resume(self, principal: Principal, run_id: str) -> AgentRun:
        """Queue an interrupted run of ``principal`` to continue from its checkpoint, with the
        entitlements ``principal`` has now."""
        run = await self._op(self.runs.resume, principal, run_id)
        self._submit(_Job(run, principal, resume=True))
        return run

    async def get(self, principal: Principal, run_id: str) -> AgentRun:
        return await self._op(self.runs.get, principal, run_id)

    async def mine(self, principal: Principal, limit: int = 100) -> list[AgentRun]:
        return await self._op(self.runs.mine, principal, limit)

    async def cancel(self, principal: Principal, run_id: str) -> AgentRun:
        run = await self._op(self.runs.cancel, principal, run_id)
        self._notices.notify(run.id)
        return run

    async def follow(
        self, principal: Principal, run_id: str, after: int = 0, *, heartbeat_s: float = 15.0, poll_s: float = 1.0
    ) -> AsyncGenerator[Follow, None]:
        """The events of one of ``principal``'s runs after seq ``after`` (replayed), then live
        until the run ends (a ``Follow`` with ``ended``); a heartbeat after ``heartbeat_s``
        without events. The check (NotFound for anyone else's run) and its one record come
        before the first item; call it, await that, then iterate."""
        after = max(0, min(after, 2**62))  # past the store's integers (2**63 - 1): no events, not a fault
        entry = self._notices.register(run_id)
        try:
            run, events = await self._op(self.runs.events, principal, run_id, after)
        except BaseException:
            self._notices.unregister(run_id, entry)
            raise
        return self._follow(run, events, after, entry, heartbeat_s, poll_s, readable(principal, run))

    async def _follow(
        self,
        run: AgentRun,
        events: list[RunEvent],
        after: int,
        entry: tuple[asyncio.AbstractEventLoop, asyncio.Event],
        heartbeat_s: float,
        poll_s: float,
        whole: bool,
    ) -> AsyncGenerator[Follow, None]:
        store, wake = self.runs.store, entry[1]
        last, quiet = after, 0.0
        try:
            while True:
                for event in events:
                    last = max(last, event.seq)
                    yield Follow(event if whole else withheld_event(event))
                if events:
                    quiet = 0.0
                elif run.status not in ACTIVE:  # read before its events: none can follow its end
                    yield Follow(ended=run.status)
                    return
                else:
                    try:
                        await asyncio.wait_for(wake.wait(), timeout=poll_s)  # and poll: another process's run
                    except TimeoutError:
                        quiet += poll_s
                        if quiet >= heartbeat_s:
                            quiet = 0.0
                            yield Follow()
                    wake.clear()
                fresh = await asyncio.to_thread(store.get, run.id)
                if fresh is None:
                    yield Follow(ended="gone")
                    return
                run = fresh
                events = await asyncio.to_thread(store.events, run.id, last)
        finally:
            self._notices.unregister(run.id, entry)
