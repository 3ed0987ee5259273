"""The ingestion worker: take a job from the bus, store its version, then settle it as done.

Settling only after the store's atomic write is what makes a kill -9 safe: the job stays
outstanding, another worker takes it over, and since a version's id is the hash of its
bytes, a version stored just before the kill is found and skipped (a duplicate), never
written twice.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

from strongroom.audit import AuditLog, open_audit_log
from strongroom.bus import display_url, open_bus
from strongroom.bus.base import Bus, Delivery, Outcome
from strongroom.bus.job import IngestJob
from strongroom.config import Settings
from strongroom.errors import IngestError, StrongroomError
from strongroom.ingest.pipeline import FileResult, IngestOptions, discover
from strongroom.ingest.understand.redaction import redact_name
from strongroom.runtime import Runtime, open_runtime
from strongroom.service.clock import parse_instant
from strongroom.service.operations import Operations
from strongroom.service.records import QueryRedactor, bus_key, event
from strongroom.service.requests import IngestRequest
from strongroom.types import Principal

__all__ = ["dead_letters", "handle", "publish_jobs", "run_worker", "serve"]

log = logging.getLogger("strongroom.worker")


def publish_jobs(
    settings: Settings, principal: Principal, request: IngestRequest, bus_url: str, stream: str
) -> list[dict[str, str]]:
    """Queue one sealed ingestion job per file of ``request`` on the bus, for :func:`serve` to
    take (no checks: the caller made them and writes the record)."""
    files, missing = discover(request.paths)
    if missing or not files:
        what = ", ".join(f.path for f in missing) or "no files"
        raise IngestError(f"nothing to queue: {what} (check the paths)")
    options = IngestOptions(
        acl=request.acl,
        published=parse_instant(request.published, "published", bare_date="start"),
        doc_type=request.doc_type,
        source=request.source,
        meta=request.meta,
    )
    key = bus_key(settings)
    bus = open_bus(bus_url, stream=stream)
    try:
        return [
            {"file": str(f), "job_id": job.id, "message_id": bus.publish(job)}
            for f in files
            for job in [IngestJob.for_file(f, options, list(request.paths), principal=principal).sealed(key)]
        ]
    finally:
        bus.close()


def handle(
    bus: Bus,
    runtime: Runtime,
    delivery: Delivery,
    audit: AuditLog | None = None,
    ops: Operations | None = None,
    key: bytes | None = None,
) -> str:
    """Process one delivery; returns what became of it: ``done``, ``retry`` or ``dead``.

    The file is ingested through the application layer's ingest operation as the principal
    who queued it (its write entitlements apply, exactly as in process), and the operation's
    audit records go to ``audit``. ``key``: the deployment's bus key (read from the home
    when not given) that the job must be sealed with."""
    job = delivery.job
    if job is None:
        bus.settle(delivery, Outcome.dead(f"not an ingestion job (malformed message {delivery.raw[:200]!r})"))
        return "dead"
    if not job.sealed_by(key or bus_key(runtime.settings)):  # nothing of it is trusted: no record, no clean-up
        reason = (
            "not sealed with this deployment's bus key (HOME/keys/bus.key): workers act only on jobs "
            "queued by strongroom with the same home; queue the file again with `strongroom ingest --bus`"
        )
        bus.settle(delivery, Outcome.dead(reason))
        return "dead"
    started = datetime.now(UTC)
    request: dict[str, object] = {
        "files": [redact_name(Path(job.path).name)[0]],  # the job record keeps no secret a file name held
        "acl": list(job.acl),
        "via": "bus",
        "submitted_by": job.principal,
    }
    if delivery.attempt > bus.max_attempts:  # workers died on it each time: it never reached a retry
        reason = f"gave up after {delivery.attempt - 1} deliveries: " + (
            delivery.last_error or "the worker handling it stopped (killed or crashed) each time"
        )
        return _give_up(bus, runtime, delivery, job, started, request, reason)
    if not job.principal or not job.groups:
        reason = "the job names no principal (queued by an older strongroom?); queue the file again"
        return _give_up(bus, runtime, delivery, job, started, request, reason)
    runtime.store.record_job(job.id, started, "running", request)
    writer = Principal(job.principal, frozenset(job.groups), frozenset({"reader", "ingester"}), "bus")
    wanted = IngestRequest(
        paths=(Path(job.path),),
        acl=frozenset(job.acl),
        published=job.published,
        doc_type=job.doc_type,
        source=job.source,
        meta=job.meta,
        roots=tuple(Path(r) for r in job.roots) or None,
    )
    ops = ops or Operations(
        runtime.settings, runtime.store, runtime.embedder, QueryRedactor.for_settings(runtime.settings)
    )
    with _holding(bus, delivery):
        outcome = ops.ingest(writer, wanted, job_id=job.id)
    events = list(outcome.events)
    if delivery.attempt > 1 and outcome.value is not None:  # a worker may have died after storing, before auditing
        found = tuple((f.document_id, f.version_id) for f in outcome.value.files if f.status == "duplicate")
        if found:
            detail = f"attempt {delivery.attempt}: versions of this job found stored by an earlier attempt"
            events.append(event(writer, "ingest.recovered", ops.redactor, target=job.id, chunks=found, detail=detail))
    if audit is not None and events:
        audit.append_many(events)
    try:
        report = outcome.result()
        error = report.failures[0].error if report.failures else ""
        files = [_file(job, f) for f in report.files]
        summary: dict[str, object] = {"files": files, "totals": report.as_dict(), "attempt": delivery.attempt}
    except StrongroomError as exc:
        error, summary = str(exc), {"files": [_failed(job, str(exc))], "attempt": delivery.attempt}
    if not error:
        runtime.store.record_job(job.id, started, "done", request, summary)
        bus.settle(delivery, Outcome.done())
        _clean_up(job)
        return "done"
    if delivery.attempt >= bus.max_attempts:
        runtime.store.record_job(job.id, started, "failed", request, summary)
        bus.settle(delivery, Outcome.dead(error))
        _clean_up(job)
        return "dead"
    runtime.store.record_job(job.id, started, "retrying", request, summary)
    bus.settle(delivery, Outcome.retry(error))
    return "retry"


@contextmanager
def _holding(bus: Bus, delivery: Delivery) -> Iterator[None]:
    """While the job runs, tell the bus three times per hold that it is still being worked
    on, so a long file is not given to a second worker meanwhile (nor counted as a crash)."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(max(0.2, bus.reclaim_idle_s / 3)):
            try:
                bus.settle(delivery, Outcome.hold())
            except StrongroomError as exc:  # the bus is down: the job may go to another worker
                log.warning("job %s: could not renew its hold: %s", delivery.message_id, exc)

    heart = threading.Thread(target=beat, name="strongroom-hold", daemon=True)
    heart.start()
    try:
        yield
    finally:
        stop.set()
        heart.join()


def _operations(runtime: Runtime) -> Operations:
    """The application layer's operations over the worker's store."""
    return Operations(runtime.settings, runtime.store, runtime.embedder, QueryRedactor.for_settings(runtime.settings))


def _give_up(
    bus: Bus,
    runtime: Runtime,
    delivery: Delivery,
    job: IngestJob,
    started: datetime,
    request: dict[str, object],
    reason: str,
) -> str:
    runtime.store.record_job(job.id, started, "failed", request, {"files": [_failed(job, reason)]})
    bus.settle(delivery, Outcome.dead(reason))
    _clean_up(job)
    return "dead"


def _file(job: IngestJob, result: FileResult) -> dict[str, object]:
    return result.job_entry(Path(job.path).parent)


def _failed(job: IngestJob, error: str) -> dict[str, object]:
    return _file(job, FileResult(job.path, "failed", error=error))


def _clean_up(job: IngestJob) -> None:
    """Remove an upload's private copy: its folder, which the service names by the job id."""
    folder = Path(job.path).parent
    if job.delete_after and folder.name == job.id:
        shutil.rmtree(folder, ignore_errors=True)


def run_worker(
    bus: Bus,
    runtime: Runtime,
    consumer: str,
    *,
    audit: AuditLog | None = None,
    stop: threading.Event | None = None,
    block_s: float = 2.0,
    until_idle: bool = False,
) -> dict[str, int]:
    """Consume jobs until ``stop`` is set (or, with ``until_idle``, until every job is settled:
    none new, none held, none due for a retry)."""
    stop = stop or threading.Event()
    counts = {"done": 0, "retry": 0, "dead": 0}
    ops = _operations(runtime)
    key = bus_key(runtime.settings)  # read once: every job is checked against it
    while not stop.is_set():
        delivery = bus.receive(consumer, block_s)
        if delivery is None:
            if until_idle and bus.backlog().outstanding == 0:
                break
            continue
        outcome = handle(bus, runtime, delivery, audit, ops, key)
        counts[outcome] += 1
        log.info("job %s: %s (attempt %d)", delivery.message_id, outcome, delivery.attempt)
    return counts


def serve(
    settings: Settings,
    bus_url: str,
    consumer: str,
    *,
    stop: threading.Event | None = None,
    until_idle: bool = False,
    on_start: Callable[[str], None] | None = None,
    **bus_options: float | str,
) -> dict[str, int]:
    """Consume the jobs on ``bus_url`` into the store ``settings`` name, auditing each write,
    until ``stop`` (see :func:`run_worker`); the bus, store and audit log are closed after.
    ``on_start`` is told the bus (its URL without credentials) once all three are open."""
    with ExitStack() as closing:
        queue = open_bus(bus_url, **bus_options)
        closing.callback(queue.close)
        runtime = open_runtime(settings)
        closing.callback(runtime.close)
        audit = open_audit_log(settings)
        closing.callback(audit.close)
        if on_start is not None:
            on_start(display_url(bus_url))
        return run_worker(queue, runtime, consumer, audit=audit, stop=stop, until_idle=until_idle)


def dead_letters(bus_url: str, stream: str) -> list[dict[str, object]]:
    """The jobs the bus gave up on, oldest first: ``file`` (the job's path, "" for a message
    that is not a job), ``message_id``, ``attempts`` and the last ``error``."""
    queue = open_bus(bus_url, stream=stream)
    try:
        letters = queue.backlog().dead_letters
    finally:
        queue.close()
    return [
        {"file": _path(d.raw), "message_id": d.message_id, "attempts": d.attempts, "error": d.error} for d in letters
    ]


def _path(raw: str) -> str:
    """The file a dead letter names, even when the rest of the job is malformed; else ''."""
    try:
        return str(json.loads(raw).get("path", ""))
    except (ValueError, AttributeError):
        return ""
