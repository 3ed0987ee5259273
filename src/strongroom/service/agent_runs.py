"""Research-agent runs as records of the application layer: create, read, follow, cancel,
resume; and what a run's end, or its process's death, writes.

Operations in the style of :class:`~strongroom.service.operations.Operations`: each takes a
:class:`~strongroom.types.Principal` and returns an :class:`~strongroom.service.operations.Outcome`
with its audit records; the drivers (:class:`~strongroom.service.Platform` for the CLI,
:class:`~strongroom.service.AsyncPlatform` for HTTP) write the records and execute the run
(:mod:`strongroom.service.agent_execution`). The rules:

- **Create** needs the ``reader`` role and a model route the principal may use
  (:func:`~strongroom.service.platform.route_usable`: a route not granted is as absent as one
  that does not exist). Both clocks are parsed like every entry point's and fixed at the
  moment the run is created (never later): the run reads the same world from its first step
  to its last, and after a resume. A principal may have at most
  ``agent_max_active_per_principal`` runs queued or running.
- **Owner only.** A run, its question, its events and its answer are its owner's; anyone
  else's run id is :class:`~strongroom.errors.NotFound` exactly as one that does not exist.
  An admin may cancel anyone's run (a runaway), and still not read it. An owner who no
  longer holds every group the run was created with sees its status and spend, not what it
  read (:func:`~strongroom.service.agent_run_views.shown`): the answer quotes documents and
  rows read under those groups.
- **Cancel** ends a queued or interrupted run at once; a running one stops at its next step.
- **Resume** continues an ``interrupted`` run from its checkpoint, for the owner only and
  with the owner's principal *as it is now*: the resumed run's tools read under the current
  groups, so a group removed since narrows what it may read (and a revoked key cannot ask).
- **A dead process's runs** (``queued`` or ``running`` under a process that no longer exists)
  become ``interrupted`` when a service starts (:meth:`AgentRuns.recover`) and whenever a
  principal's active runs are counted.

Audit actions: ``agent.run.create`` (the question redacted, as a search's query), ``.get``,
``.list``, ``.events``, ``.cancel``, ``.resume``, ``.interrupted`` and ``.end`` (status, the
answer's SHA-256, the cited evidence by id, the count of unsupported numbers; never text);
each model turn is ``agent.run.model`` and each tool call ``agent.tool.<name>``
(:mod:`strongroom.service.agent_execution`, :mod:`strongroom.service.agent_tools`).

    runs = AgentRuns(ops, open_run_store(settings), RouteStore(settings.home))
    run = runs.create(ana, AgentRunRequest("How did net sales change?", route="research")).result()
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
from collections.abc import Collection
from dataclasses import asdict, dataclass, fields
from typing import Any, TypeVar

from strongroom.agent.base import AgentLimits, RunEvent
from strongroom.agent.runner import AgentResult
from strongroom.audit import AuditEvent, answer_hash
from strongroom.errors import NotFound, PermissionDenied, QueryError
from strongroom.ingest.understand.redaction import redact_value
from strongroom.llm.route_config import RouteStore
from strongroom.service.agent_run_store import ACTIVE, AgentRun, RunStore
from strongroom.service.agent_run_views import cited_refs, readable, result_record, shown, withheld, withheld_event
from strongroom.service.clock import Clocks, TimeInput
from strongroom.service.operations import Operations, Outcome
from strongroom.service.platform import route_usable
from strongroom.types import Principal, utcnow

__all__ = [
    "CAPS",
    "MAX_QUESTION_CHARS",
    "AgentRunRequest",
    "AgentRuns",
    "run_principal",
    "worker_id",
]

#: the longest question a run takes
MAX_QUESTION_CHARS = 4000
#: the most a caller may ask of each limit (AgentLimits() are the defaults)
CAPS = AgentLimits(max_steps=32, max_tool_calls=64, timeout_s=1800.0, max_tokens=200_000)
_MINIMA = AgentLimits(max_steps=1, max_tool_calls=0, timeout_s=1.0, max_tokens=500)
_INTERRUPTED = "the process running it stopped; resume it"
T = TypeVar("T")


@dataclass(frozen=True)
class AgentRunRequest:
    """What a caller asks a run for: the question, the model route, the clocks (None: now)
    and any of the limits (None: :class:`~strongroom.agent.base.AgentLimits`' default)."""

    question: str
    route: str
    as_of: TimeInput = None
    known_at: TimeInput = None
    max_steps: int | None = None
    max_tool_calls: int | None = None
    timeout_s: float | None = None
    max_tokens: int | None = None

    def limits(self) -> AgentLimits:
        """The run's limits: those asked, each checked against :data:`CAPS`; QueryError otherwise."""
        base = AgentLimits()
        values: dict[str, Any] = {}
        for name in (f.name for f in fields(AgentLimits)):
            asked = getattr(self, name)
            low, high = getattr(_MINIMA, name), getattr(CAPS, name)
            if asked is not None and not low <= asked <= high:
                raise QueryError(f"{name} must be between {low:g} and {high:g}, not {asked}")
            values[name] = getattr(base, name) if asked is None else asked
        return AgentLimits(**values)


def worker_id() -> str:
    """This process, as a run's ``worker``: ``host:pid:start`` (the start time tells a reused
    pid from the process that held it)."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_started(pid)}"


def _started(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]  # field 22: start time in clock ticks
    except (OSError, IndexError):
        return ""


def _dead(worker: str, me: str, *, starting: bool) -> bool:
    """Whether the process ``worker`` names has stopped (only a process on this host can be
    told; ``me``: this process, dead only when ``starting``: nothing of it runs yet)."""
    host, _, rest = worker.partition(":")
    pid_text, _, start = rest.partition(":")
    if not worker or host != socket.gethostname() or not pid_text.isdigit():
        return not worker
    if worker == me:
        return starting
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, someone else's
    return bool(start) and _started(pid) not in ("", start)


def run_principal(run: AgentRun, auth: str = "service") -> Principal:
    """The principal a run was created by, as it was then (for the records of its end)."""
    return Principal(run.owner, frozenset(run.groups), frozenset(run.roles), auth)


class AgentRuns:
    """The run operations over one run store. Safe to call from any thread (the store is)."""

    def __init__(self, ops: Operations, store: RunStore, routes: RouteStore, *, worker: str | None = None) -> None:
        self.ops = ops
        self.settings = ops.settings
        self.store = store
        self.routes = routes
        self.worker = worker or worker_id()
        #: held while a principal's active runs are counted and one more is admitted (this
        #: process only: several processes on one store may still race for the last place)
        self._admit = threading.Lock()

    def close(self) -> None:
        self.store.close()

    # -- shared pieces ---------------------------------------------------------------------

    def _own(self, principal: Principal, run_id: str) -> AgentRun:
        run = self.store.get(run_id)
        if run is None or run.owner != principal.name:
            raise NotFound(f"no agent run {run_id[:64]!r}; `strongroom agent runs` (GET /v1/agent/runs) lists yours")
        return run

    def _route(self, principal: Principal, route: str) -> None:
        if not route_usable(self.settings, self.routes, principal, route):
            raise NotFound(
                f"no model route {route[:64]!r} that you may use: configure a model route "
                "(strongroom models set-route NAME --deployment D) and grant it (STRONGROOM_ROUTE_GROUPS)"
            )

    def _reap(self, owner: str, records: list[AuditEvent]) -> None:
        """Mark ``owner``'s runs whose process died interrupted, adding their records to ``records``."""
        records.extend(self.recover(owner=owner).events)

    def _room(self, principal: Principal, records: list[AuditEvent]) -> None:
        """Refuse a principal with as many queued or running runs as it may have."""
        cap = self.settings.agent_max_active_per_principal
        self._reap(principal.name, records)
        active = self.store.runs(principal.name, ACTIVE, limit=cap)
        if len(active) >= cap:
            raise PermissionDenied(
                f"you have {len(active)} agent runs queued or running, the most at once; "
                "wait for one to end or cancel one"
            )

    # -- the operations --------------------------------------------------------------------

    def create(self, principal: Principal, request: AgentRunRequest, *, status: str = "queued") -> Outcome[AgentRun]:
        """A new run of ``principal`` (``status``: ``queued`` for a service that runs it
        later, ``running`` for a caller that runs it now); the clocks fixed now."""
        question = request.question.strip()
        asked = {
            "route": request.route[:64],
            "as_of": str(request.as_of or ""),
            "known_at": str(request.known_at or ""),
        }
        fields: dict[str, object] = {"query": question[:MAX_QUESTION_CHARS], "filters": asked}
        reaped: list[AuditEvent] = []

        def body() -> tuple[AgentRun, dict[str, object]]:
            self.ops.require(principal, "reader")
            if not question:
                raise QueryError("the question is empty; ask something")
            if len(question) > MAX_QUESTION_CHARS:
                raise QueryError(f"the question is longer than {MAX_QUESTION_CHARS} characters; shorten it")
            limits = request.limits()
            clocks = Clocks.parse(request.as_of, request.known_at)
            as_of, known_at = clocks.applied()
            self._route(principal, request.route)
            with self._admit:  # the count and the new run as one step: creates raced cannot pass the cap
                self._room(principal, reaped)
                now = utcnow()
                run = AgentRun(
                    id=secrets.token_hex(16),
                    owner=principal.name,
                    groups=tuple(sorted(principal.groups)),
                    roles=tuple(sorted(principal.roles)),
                    question=question,
                    route=request.route,
                    as_of=as_of.isoformat(),
                    known_at=known_at.isoformat(),
                    limits=limits,
                    status=status,
                    created_at=now,
                    updated_at=now,
                    clocks=clocks.describe(),
                    worker=self.worker,
                )
                self.store.save(run)
            return run, {
                "target": run.id,
                "filters": {"route": run.route, **clocks.describe(), "limits": asdict(limits)},
            }

        return _with(reaped, self.ops.run_audited(principal, "agent.run.create", fields, body))

    def get(self, principal: Principal, run_id: str) -> Outcome[AgentRun]:
        """One of ``principal``'s runs (NotFound for anyone else's)."""

        def body() -> tuple[AgentRun, dict[str, object]]:
            self.ops.require(principal, "reader")
            return shown(principal, self._own(principal, run_id)), {}

        return self.ops.run_audited(principal, "agent.run.get", {"target": run_id[:64]}, body)

    def mine(self, principal: Principal, limit: int = 100) -> Outcome[list[AgentRun]]:
        """``principal``'s runs, newest first."""

        def body() -> tuple[list[AgentRun], dict[str, object]]:
            self.ops.require(principal, "reader")
            found = self.store.runs(principal.name, limit=max(1, min(limit, 1000)))
            return [shown(principal, r) for r in found], {}

        return self.ops.run_audited(principal, "agent.run.list", {"filters": {"limit": limit}}, body)

    def events(self, principal: Principal, run_id: str, after: int = 0) -> Outcome[tuple[AgentRun, list[RunEvent]]]:
        """One of ``principal``'s runs with its events after seq ``after`` (a replay)."""

        def body() -> tuple[tuple[AgentRun, list[RunEvent]], dict[str, object]]:
            self.ops.require(principal, "reader")
            run = self._own(principal, run_id)
            events = self.store.events(run.id, after)
            if not readable(principal, run):
                return (withheld(run), [withheld_event(e) for e in events]), {"detail": "withheld"}
            return (run, events), {}

        return self.ops.run_audited(
            principal, "agent.run.events", {"target": run_id[:64], "filters": {"after": after}}, body
        )

    def cancel(self, principal: Principal, run_id: str) -> Outcome[AgentRun]:
        """Cancel a run (its owner, or an admin): a queued or interrupted run ends now, a
        running one at its next step. QueryError for a run that has ended."""

        def body() -> tuple[AgentRun, dict[str, object]]:
            run = self.store.get(run_id)
            if run is None or (run.owner != principal.name and "admin" not in principal.roles):
                raise NotFound(f"no agent run {run_id[:64]!r}; `strongroom agent runs` lists yours")
            if run.owner == principal.name:
                self.ops.require(principal, "reader")
            reason = f"cancelled by {principal.name}"
            if run.status == "running":
                changed = self.store.transition(run.id, ("running",), cancel_requested=True)
            else:
                changed = self.store.transition(
                    run.id, ("queued", "interrupted"), status="cancelled", cancel_requested=True, reason=reason
                )
            if changed is None:
                now = self.store.get(run.id)
                raise QueryError(f"run {run.id} has ended ({now.status if now else 'gone'}); nothing to cancel")
            return changed, {"filters": {"status_before": run.status, "owner": run.owner}}

        return self.ops.run_audited(principal, "agent.run.cancel", {"target": run_id[:64]}, body)

    def resume(self, principal: Principal, run_id: str, *, status: str = "queued") -> Outcome[AgentRun]:
        """Continue an interrupted run of ``principal`` from its checkpoint: the route and the
        number of active runs are checked again, for the principal as it is now."""
        reaped: list[AuditEvent] = []

        def body() -> tuple[AgentRun, dict[str, object]]:
            self.ops.require(principal, "reader")
            self._own(principal, run_id)
            self._reap(principal.name, reaped)  # a run whose process died is interrupted: resumable
            run = self._own(principal, run_id)
            if run.status != "interrupted":
                raise QueryError(f"run {run.id} is {run.status}; only an interrupted run can be resumed")
            self._route(principal, run.route)
            with self._admit:
                self._room(principal, reaped)
                changed = self.store.transition(
                    run.id, ("interrupted",), status=status, worker=self.worker, cancel_requested=False, reason=""
                )
            if changed is None:
                raise QueryError(f"run {run.id} changed meanwhile; read it again")
            groups = {"groups_at_creation": list(run.groups), "route": run.route}
            return changed, {"filters": groups}

        return _with(reaped, self.ops.run_audited(principal, "agent.run.resume", {"target": run_id[:64]}, body))

    # -- what the drivers call as a run goes ------------------------------------------------

    def start(self, run_id: str) -> AgentRun | None:
        """Mark a queued run running in this process; None if it is no longer queued (cancelled)."""
        return self.store.transition(run_id, ("queued",), status="running", worker=self.worker)

    def cancel_requested(self, run_id: str) -> bool:
        run = self.store.get(run_id)
        return run is None or run.cancel_requested

    def finished(self, principal: Principal, run_id: str, result: AgentResult) -> Outcome[AgentRun | None]:
        """Keep what run ``run_id`` came to, and its ``agent.run.end`` record."""
        status = result.status if result.status in ("answered", "limit", "cancelled", "error") else "error"
        reason = redact_value(result.reason)[0][:500] if result.reason else ""
        changed = self.store.transition(
            run_id,
            ("running", "interrupted"),
            status=status,
            result=result_record(result),
            reason=reason,
            worker="",
        )
        filters: dict[str, object] = {
            "status": status,
            "limit": result.limit,
            "steps": result.steps,
            "tool_calls": result.tool_calls,
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
            "evidence": len(result.evidence),
            "cited": cited_refs(result),
            "unsupported": len(result.unsupported),
            "prompt_version": result.prompt_version,
        }
        record = self.ops.record(
            principal,
            "agent.run.end",
            outcome="error" if status == "error" else "ok",
            target=run_id,
            filters=filters,
            answer_sha256=answer_hash(result.answer) if result.answer else "",
            detail=reason,
        )
        return Outcome(changed, None, (record,))

    def interrupted(self, run_id: str, reason: str = _INTERRUPTED) -> Outcome[AgentRun | None]:
        """Mark a queued or running run interrupted (its process is stopping or has died)."""
        changed = self.store.transition(run_id, ACTIVE, status="interrupted", reason=reason, worker="")
        if changed is None:
            return Outcome(None, None, ())
        record = self.ops.record(
            run_principal(changed), "agent.run.interrupted", target=run_id, detail=reason, outcome="ok"
        )
        return Outcome(changed, None, (record,))

    def recover(self, *, owner: str | None = None, starting: bool = False) -> Outcome[list[str]]:
        """Runs left queued or running by a process that has died become ``interrupted``
        (``starting``: this process is starting, so none of them is its own); their ids."""
        done: list[str] = []
        records: list[AuditEvent] = []
        for run in self.store.runs(owner, ACTIVE, limit=10_000):
            if _dead(run.worker, self.worker, starting=starting):
                outcome = self.interrupted(run.id)
                if outcome.value is not None:
                    done.append(run.id)
                    records.extend(outcome.events)
        return Outcome(done, None, tuple(records))

    def mine_here(self, statuses: Collection[str] = ACTIVE) -> list[AgentRun]:
        """The runs this process holds in ``statuses`` (to mark them interrupted at a stop)."""
        return [r for r in self.store.runs(None, tuple(statuses), limit=10_000) if r.worker == self.worker]


def _with(records: list[AuditEvent], outcome: Outcome[T]) -> Outcome[T]:
    """``outcome`` with ``records`` written before its own."""
    return Outcome(outcome.value, outcome.error, (*records, *outcome.events)) if records else outcome
