"""What the HTTP routes stand on: the store (on one thread of its own), ingestion (on
another), the audit log, the key table, the authenticator, limits and metrics.

The embedded store holds one SQLite connection and in-memory indexes that are not
thread-safe, so every store call runs on a single dedicated thread; the event loop
never blocks on it. Uploads are ingested on a second thread with a store connection of
its own, so a long ingestion does not stall searches.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from strongroom.api.batching import Batcher, Precomputed, QueryBatcher
from strongroom.api.limits import RateLimiter, RedisRateLimiter, RequestLimiter
from strongroom.api.metrics import Metrics
from strongroom.audit import open_audit_log
from strongroom.auth import Authenticator, Caller, OidcVerifier, ServiceSettings
from strongroom.auth.apikeys import open_key_store
from strongroom.bus import Bus, IngestJob, open_bus
from strongroom.config import Settings
from strongroom.embed import Embedder
from strongroom.errors import StrongroomError
from strongroom.ingest.pipeline import IngestOptions, ingest
from strongroom.query_encoder import create_query_encoder
from strongroom.runtime import Runtime, open_runtime
from strongroom.types import DocumentVersion, frozen_meta

__all__ = ["Service", "UploadRequest", "current_by_document"]

T = TypeVar("T")
log = logging.getLogger("strongroom.api")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")


def current_by_document(versions: list[DocumentVersion]) -> dict[str, DocumentVersion]:
    """Per document, the version a search would see now: the latest published (then ingested).

    ``versions`` must be in insertion order (as :meth:`SqliteStore.versions` returns them).
    """
    now = datetime.now(UTC)
    out: dict[str, DocumentVersion] = {}
    for v in versions:
        if v.published_at > now or v.ingested_at > now:
            continue
        best = out.get(v.document_id)
        if best is None or (v.published_at, v.ingested_at) >= (best.published_at, best.ingested_at):
            out[v.document_id] = v
    return out


def safe_name(name: str) -> str:
    """A file name without folders or odd characters (it becomes part of the source key)."""
    cleaned = _SAFE_NAME.sub("_", Path(name.replace("\\", "/")).name).strip(" .")
    return cleaned[:200] or "upload"


@dataclass(frozen=True)
class UploadRequest:
    name: str
    data_path: Path
    acl: frozenset[str]
    source: str
    published: datetime | None
    doc_type: str | None
    meta: dict[str, str]


class Service:
    """Shared state of one app. Create it with :meth:`open`, close it on shutdown."""

    def __init__(
        self,
        settings: Settings,
        service: ServiceSettings,
        runtime: Runtime,
        store_pool: ThreadPoolExecutor,
    ) -> None:
        self.settings = settings
        self.config = service
        self.runtime = runtime
        self._store_pool = store_pool
        self._ingest_pool = ThreadPoolExecutor(1, thread_name_prefix="strongroom-ingest")
        self._ingest_runtime: Runtime | None = None
        self.audit = open_audit_log(settings)  # PostgreSQL with store_url: one chain for every replica
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
        self._own_upload_dir = not service.upload_dir
        self.upload_dir = Path(service.upload_dir or tempfile.mkdtemp(prefix="strongroom-uploads-"))
        self.upload_dir.mkdir(parents=True, exist_ok=True)
        self.bus: Bus | None = open_bus(service.bus_url, stream=service.bus_stream) if service.bus_url else None

    @classmethod
    def open(cls, settings: Settings, service: ServiceSettings, embedder: Embedder | None = None) -> Service:
        pool = ThreadPoolExecutor(1, thread_name_prefix="strongroom-store")
        runtime = pool.submit(open_runtime, settings, embedder).result()
        return cls(settings, service, runtime, pool)

    def close(self) -> None:
        if self._ingest_runtime is not None:
            self._ingest_pool.submit(self._ingest_runtime.close).result()
        self._ingest_pool.shutdown(wait=True)
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
        if self._own_upload_dir:
            shutil.rmtree(self.upload_dir, ignore_errors=True)

    async def on_store(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the store's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._store_pool, functools.partial(fn, *args))

    async def query_embedder(self, query: str) -> Embedder:
        """The embedder to search ``query`` with: its vector is computed (batched) off the store's thread."""
        return Precomputed(self.runtime.embedder, query, await self.queries.embed(query))

    async def authenticate(self, authorization: str | None) -> Caller:
        caller = self.auth.cached(authorization)  # a key verified moments ago: no table read, no thread
        if caller is not None:
            return caller
        return await asyncio.to_thread(self.auth.authenticate, authorization)

    # -- ingestion -------------------------------------------------------------------------

    def submit_upload(self, caller: Caller, upload: UploadRequest) -> tuple[str, asyncio.Future[None]]:
        """Record a running job and start ingesting on the ingestion thread."""
        job_id = uuid.uuid4().hex
        started = datetime.now(UTC)
        request: dict[str, object] = {
            "files": [upload.name],
            "acl": sorted(upload.acl),
            "source": upload.source,
            "submitted_by": caller.name,
            "doc_type": upload.doc_type,
            "published": upload.published.isoformat() if upload.published else None,
        }
        loop = asyncio.get_running_loop()
        if self.bus is not None:
            future = loop.run_in_executor(self._store_pool, self._enqueue, self.bus, job_id, started, request, upload)
        else:
            future = loop.run_in_executor(self._ingest_pool, self._ingest, job_id, started, request, upload)
        return job_id, future

    def _enqueue(self, bus: Bus, job_id: str, started: datetime, request: dict[str, object], up: UploadRequest) -> None:
        """Record the job as queued, then publish it for the workers (they finish the record)."""
        self.runtime.store.record_job(job_id, started, "queued", {**request, "via": "bus"})
        folder = up.data_path.parent
        job = IngestJob.for_file(up.data_path, self._options(up), [folder], id=job_id, delete_after=True)
        try:
            bus.publish(job)
        except StrongroomError as exc:
            failed = {"name": up.name, "status": "failed", "error": f"not queued: {exc}"}
            self.runtime.store.record_job(job_id, started, "failed", request, {"files": [failed]})
            shutil.rmtree(up.data_path.parent, ignore_errors=True)

    async def finished(self, job_id: str, poll_s: float = 0.2) -> None:
        """Wait until a queued job is done or failed (the request timeout bounds the wait)."""
        while True:
            row = await self.on_store(self.runtime.store.get_job, job_id)
            if row is None or row["status"] in ("done", "failed"):
                return
            await asyncio.sleep(poll_s)

    def _options(self, upload: UploadRequest) -> IngestOptions:
        return IngestOptions(
            acl=upload.acl,
            published=upload.published,
            doc_type=upload.doc_type,
            source=upload.source,
            meta=frozen_meta(upload.meta),
            max_file_bytes=min(self.settings.max_file_bytes, self.config.max_upload_bytes),
            chunk_tokens=self.settings.chunk_tokens,
        )

    def _ingest(self, job_id: str, started: datetime, request: dict[str, object], upload: UploadRequest) -> None:
        if self._ingest_runtime is None:
            self._ingest_runtime = open_runtime(self.settings, self.runtime.embedder)
        store = self._ingest_runtime.store
        store.record_job(job_id, started, "running", request)
        folder = upload.data_path.parent
        try:
            report = ingest([folder], store, self.runtime.embedder, self._options(upload))
            files = [f.job_entry(folder) for f in report.files]
            self.metrics.ingest_pages.inc(report.pages)
            self.metrics.ingest_chunks.inc(report.chunks)
            self.metrics.ingest_failures.inc(len(report.failures))
            status = "done" if report.ok else "failed"
            store.record_job(job_id, started, status, request, {"files": files})
        except Exception as exc:
            log.exception("ingestion job %s failed", job_id)
            files = [{"name": upload.name, "status": "failed", "error": f"internal error: {type(exc).__name__}"}]
            store.record_job(job_id, started, "failed", request, {"files": files})
        finally:
            shutil.rmtree(folder, ignore_errors=True)
