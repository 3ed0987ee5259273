"""What the HTTP routes stand on: the application layer (driven from the event loop), the
authenticator, limits, metrics, the ingestion of uploads, and a clean stop.

Every route calls :class:`~strongroom.service.AsyncPlatform` with the caller's principal;
nothing here or in a route reaches the store for content. The embedded store holds one
SQLite connection and in-memory indexes that are not thread-safe, so every operation runs
on a single dedicated thread; the event loop never blocks on it. Uploads are ingested on a
second thread with a store connection of its own, so a long ingestion does not stall
searches, and through the same ingest operation (write entitlements, audit) as the CLI.

Stopping (SIGTERM): in-flight parses are killed, running jobs are marked ``interrupted``
and their uploads removed; on the next start, jobs a killed process left ``running`` are
marked the same way and orphaned uploads are removed.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import threading
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from queue import SimpleQueue

from strongroom.api.limits import RateLimiter, RedisRateLimiter, RequestLimiter
from strongroom.api.metrics import Metrics
from strongroom.api.refusals import RefusedLogins
from strongroom.audit import open_audit_log
from strongroom.auth import Authenticator, Caller, OidcVerifier, ServiceSettings, open_key_store
from strongroom.bus import Bus, IngestJob, open_bus
from strongroom.config import Settings
from strongroom.embed import Embedder
from strongroom.embed.query_encoder import create_query_encoder
from strongroom.errors import StrongroomError
from strongroom.ingest import sandbox
from strongroom.ingest.pipeline import IngestOptions
from strongroom.ingest.understand.redaction import redact_name
from strongroom.runtime import Runtime, open_runtime
from strongroom.service import IngestRequest
from strongroom.service.async_platform import AsyncPlatform
from strongroom.service.batching import Batcher, QueryBatcher
from strongroom.service.operations import Operations
from strongroom.service.records import REQUEST_ID, QueryRedactor, bus_key
from strongroom.store.base import Catalog
from strongroom.store.sqlite import private_dir
from strongroom.types import Principal

__all__ = ["Service", "UploadRequest", "safe_name"]

log = logging.getLogger("strongroom.api")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")
_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
#: job states after which an upload's folder is no longer needed
_SETTLED = ("done", "failed", "interrupted")
_INTERRUPTED = "interrupted: the service stopped while ingesting it; upload it again"


def safe_name(name: str) -> str:
    """A file name without folders or odd characters (it becomes part of the source key)."""
    cleaned = _SAFE_NAME.sub("_", Path(name.replace("\\", "/")).name).strip(" .")
    return cleaned[:200] or "upload"


@dataclass(frozen=True)
class UploadRequest:
    job_id: str
    name: str
    data_path: Path
    acl: frozenset[str]
    source: str
    published: str | None
    doc_type: str | None
    meta: dict[str, str]

    @property
    def folder(self) -> Path:
        return self.data_path.parent


class Service:
    """Shared state of one app. Create it with :meth:`open`, close it on shutdown."""

    def __init__(self, settings: Settings, service: ServiceSettings, runtime: Runtime, store_pool: ThreadPoolExecutor):
        self.settings = settings
        self.config = service
        self.runtime = runtime
        self._store_pool = store_pool
        self.audit = open_audit_log(settings)
        # the records of concurrent requests are committed together; each request still
        # waits for its own record to be committed before it answers
        self.audit_writer = Batcher(self.audit.append_many, 64, "audit")
        self.keys = open_key_store(settings)
        self.verifier = OidcVerifier(service) if service.oidc_issuer else None
        self.auth = Authenticator(service, self.keys, self.verifier)
        self.limiter: RequestLimiter = (
            RedisRateLimiter(service.rate_limit_redis_url, service.rate_per_s, service.rate_burst)
            if service.rate_limit_redis_url
            else RateLimiter(service.rate_per_s, service.rate_burst)
        )
        self.metrics = Metrics()
        self.queries = QueryBatcher(
            create_query_encoder(
                service.query_encoder, runtime.embedder, settings.home / "models", service.query_encoder_threads
            ),
            service.query_batch_max or (4 if service.query_encoder == "onnx-int8" else 64),
        )
        self.redactor = QueryRedactor.for_settings(settings)
        ops = Operations(settings, runtime.store, runtime.embedder, self.redactor)
        self.platform = AsyncPlatform(
            settings,
            ops,
            self.keys,
            self.audit,
            store_pool=store_pool,
            audit_writer=self.audit_writer,
            queries=self.queries,
        )
        self.refusals = RefusedLogins(self.audit_writer.submit, window_s=service.auth_refusal_window_s)
        self.upload_dir = private_dir(Path(service.upload_dir) if service.upload_dir else settings.home / "uploads")
        self.bus: Bus | None = open_bus(service.bus_url, stream=service.bus_stream) if service.bus_url else None
        # uploads are ingested one at a time on a daemon thread: a stop never waits for one
        self._uploads: SimpleQueue[tuple[UploadRequest, Principal, str, asyncio.Future[None]] | None] = SimpleQueue()
        self._ingest_runtime: Runtime | None = None
        self._ingest_ops: Operations
        self._stopping = threading.Event()
        self._running: dict[str, UploadRequest] = {}
        self._lock = threading.Lock()
        self._ingester = threading.Thread(target=self._ingest_loop, name="strongroom-ingest", daemon=True)
        self._ingester.start()

    @classmethod
    def open(cls, settings: Settings, service: ServiceSettings, embedder: Embedder | None = None) -> Service:
        private_dir(settings.home)
        pool = ThreadPoolExecutor(1, thread_name_prefix="strongroom-store")
        runtime = pool.submit(open_runtime, settings, embedder).result()  # the service loads its model at start-up
        svc = cls(settings, service, runtime, pool)
        pool.submit(svc.recover).result()
        return svc

    def close(self) -> None:
        """Stop: kill in-flight parses, mark running jobs interrupted, remove their uploads."""
        self._stopping.set()
        # kill the parse in flight (the ingestion thread stops taking uploads on its own; other
        # apps in this process, as in tests, go on parsing)
        sandbox.stop_parses(refuse_new=False)
        with self._lock:
            interrupted = list(self._running.values())
        for upload in interrupted:
            why = [{"name": upload.name, "status": "failed", "error": _INTERRUPTED}]
            self._store_pool.submit(self._settle, self.runtime.store, upload, "interrupted", why).result()
        self._uploads.put(None)
        self._ingester.join(timeout=5)  # a daemon: if it is mid-write, its transaction is rolled back at exit
        self.queries.close()
        self._store_pool.submit(self.runtime.close).result()
        self._store_pool.shutdown(wait=True)
        self.audit_writer.close()
        self.audit.close()
        self.keys.close()
        if self.verifier is not None:
            self.verifier.close()
        if self.bus is not None:
            self.bus.close()

    def recover(self) -> None:
        """At start-up: jobs a killed process left running are marked interrupted, and upload
        folders no queued job needs any more are removed."""
        store = self.runtime.store
        for folder in sorted(self.upload_dir.iterdir()) if self.upload_dir.is_dir() else []:
            if not folder.is_dir() or not _JOB_ID.match(folder.name):
                continue
            row = store.get_job(folder.name)
            request = row.get("request") if row else None
            via_bus = isinstance(request, dict) and request.get("via") == "bus"
            status = str(row["status"]) if row else ""
            if row is not None and status in ("queued", "retrying", "running") and via_bus:
                continue  # a worker will ingest it (or is): it needs the file
            if row is not None and status == "running" and isinstance(request, dict):
                files = [{"name": str(f), "status": "failed", "error": _INTERRUPTED} for f in request.get("files", [])]
                store.record_job(folder.name, _started(row), "interrupted", request, {"files": files})
                log.warning("job %s was interrupted by a stop; marked interrupted", folder.name)
            shutil.rmtree(folder, ignore_errors=True)

    async def authenticate(self, authorization: str | None) -> Caller:
        caller = self.auth.cached(authorization)  # a key verified moments ago: no table read, no thread
        if caller is not None:
            return caller
        return await asyncio.to_thread(self.auth.authenticate, authorization)

    # -- ingestion -------------------------------------------------------------------------

    def new_upload(
        self,
        name: str,
        *,
        acl: frozenset[str],
        source: str,
        published: str | None,
        doc_type: str | None,
        meta: dict[str, str],
    ) -> UploadRequest:
        """Where an upload's bytes go: a folder of its own, named by its job id."""
        job_id = uuid.uuid4().hex
        clean = safe_name(redact_name(name)[0])  # redacted first: cleaning would break "password: x" apart
        return UploadRequest(job_id, clean, self.upload_dir / job_id / clean, acl, source, published, doc_type, meta)

    def submit_upload(self, principal: Principal, upload: UploadRequest) -> asyncio.Future[None]:
        """Record the job and ingest it (on the ingestion thread) or queue it on the bus."""
        started = datetime.now(UTC)
        request: dict[str, object] = {
            "files": [upload.name],
            "acl": sorted(upload.acl),
            "source": upload.source,
            "submitted_by": principal.name,
            "doc_type": upload.doc_type,
            "published": upload.published,
        }
        loop = asyncio.get_running_loop()
        if self.bus is not None:
            return loop.run_in_executor(self._store_pool, self._enqueue, self.bus, principal, started, request, upload)
        future: asyncio.Future[None] = loop.create_future()
        self._store_pool.submit(self.runtime.store.record_job, upload.job_id, started, "running", request).result()
        with self._lock:
            self._running[upload.job_id] = upload
        self._uploads.put((upload, principal, REQUEST_ID.get(), future))
        return future

    def _enqueue(
        self, bus: Bus, principal: Principal, started: datetime, request: dict[str, object], up: UploadRequest
    ) -> None:
        """Record the job as queued, then publish it for the workers (they finish the record)."""
        self.runtime.store.record_job(up.job_id, started, "queued", {**request, "via": "bus"})
        options = IngestOptions(acl=up.acl, doc_type=up.doc_type, source=up.source, meta=up.meta)
        job = IngestJob.for_file(
            up.data_path, options, [up.folder], id=up.job_id, delete_after=True, principal=principal
        )
        if up.published:
            job = IngestJob(**{**job.__dict__, "published": up.published})
        try:
            bus.publish(job.sealed(bus_key(self.settings)))
        except StrongroomError as exc:
            failed = {"name": up.name, "status": "failed", "error": f"not queued: {exc}"}
            self.runtime.store.record_job(up.job_id, started, "failed", request, {"files": [failed]})
            shutil.rmtree(up.folder, ignore_errors=True)

    async def finished(self, job_id: str, poll_s: float = 0.2) -> None:
        """Wait until a queued job is settled (the request timeout bounds the wait)."""
        while True:
            row = await self.platform.on_store(self.runtime.store.get_job, job_id)
            if row is None or row["status"] in _SETTLED:
                return
            await asyncio.sleep(poll_s)

    def _ingest_loop(self) -> None:
        while (item := self._uploads.get()) is not None:
            upload, principal, request_id, future = item
            token = REQUEST_ID.set(request_id)
            try:
                self._ingest(upload, principal)
            except Exception:
                log.exception("ingestion job %s failed", upload.job_id)
            finally:
                REQUEST_ID.reset(token)
                with self._lock:
                    self._running.pop(upload.job_id, None)
                future.get_loop().call_soon_threadsafe(_resolve, future)
        if self._ingest_runtime is not None:
            self._ingest_runtime.close()

    def _ingest(self, upload: UploadRequest, principal: Principal) -> None:
        if self._stopping.is_set():
            return  # close() marks it interrupted
        if self._ingest_runtime is None:  # the ingestion thread's own store connection, opened on first use
            self._ingest_runtime = open_runtime(self.settings, self.runtime.embedder)
            self._ingest_ops = Operations(
                self.settings, self._ingest_runtime.store, self.runtime.embedder, self.redactor
            )
        store = self._ingest_runtime.store
        ops = self._ingest_ops
        request = IngestRequest(
            paths=(upload.folder,),
            acl=upload.acl,
            published=upload.published,
            doc_type=upload.doc_type,
            source=upload.source,
            meta=upload.meta,
        )
        try:
            outcome = ops.ingest(principal, request, job_id=upload.job_id)
            self.audit.append_many(list(outcome.events))  # what was written is audited, stop or not
            if self._stopping.is_set():
                return  # close() marked the job interrupted
            if outcome.error is not None:
                files = [{"name": upload.name, "status": "failed", "error": str(outcome.error)}]
                self._settle(store, upload, "failed", files)
                return
            report = outcome.result()
            self.metrics.ingest_pages.inc(report.pages)
            self.metrics.ingest_chunks.inc(report.chunks)
            self.metrics.ingest_failures.inc(len(report.failures))
            entries = [f.job_entry(upload.folder) for f in report.files]
            self._settle(store, upload, "done" if report.ok else "failed", entries)
        except Exception as exc:
            log.exception("ingestion job %s failed", upload.job_id)
            files = [{"name": upload.name, "status": "failed", "error": f"internal error: {type(exc).__name__}"}]
            self._settle(store, upload, "failed", files)

    def _settle(
        self, store: Catalog, upload: UploadRequest, status: str, files: Sequence[Mapping[str, object]]
    ) -> None:
        """Record a job's end (on ``store``'s own thread) and remove its upload."""
        row = store.get_job(upload.job_id)
        request = row["request"] if row and isinstance(row.get("request"), dict) else {"files": [upload.name]}
        started = _started(row) if row else datetime.now(UTC)
        store.record_job(upload.job_id, started, status, request, {"files": [dict(f) for f in files]})  # type: ignore[arg-type]
        shutil.rmtree(upload.folder, ignore_errors=True)


def _started(row: dict[str, object]) -> datetime:
    return datetime.fromisoformat(str(row["started_at"]))


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
