"""The application layer for the HTTP service: the same operations, driven from an event loop.

The operations (:class:`~strongroom.service.operations.Operations`) run on the store's own
thread (the embedded store is not thread-safe), query embeddings are computed in batches on
a thread of their own, and each operation's audit records are committed together with those
of concurrent requests (a group commit); every request still waits for its own records to be
committed before it answers. Answers through a model-gateway route are written on the event
loop by the gateway (async streams), after retrieval on the store thread.

    platform = AsyncPlatform(settings, ops, keys, audit, store_pool=pool, audit_writer=writer, queries=batcher)
    hits = (await platform.search(principal, SearchRequest(query="net sales"))).hits
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import Executor, ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from strongroom.audit import AuditEvent, AuditLog, AuditRecord, VerifyReport
from strongroom.auth.apikeys import ApiKey, ApiKeyStore
from strongroom.config import Settings
from strongroom.data.base import DatasetVersion, QueryResult
from strongroom.errors import ApprovalPending
from strongroom.governance.lineage import Lineage
from strongroom.ingest.originals import originals_folder
from strongroom.ingest.parsers.pdf_pages import Box, RenderedPage
from strongroom.ingest.sandbox import RenderLimits
from strongroom.llm.gateway import Gateway
from strongroom.llm.route_config import RouteStore
from strongroom.llm.types import ChatRequest, Delta
from strongroom.rag import ExtractiveGenerator
from strongroom.service.approvals import Approvals
from strongroom.service.batching import Batcher, QueryBatcher
from strongroom.service.clock import TimeInput
from strongroom.service.conversation_store import (
    Conversation,
    Feedback,
    Rating,
    Share,
    Thread,
    Turn,
    open_conversation_store,
)
from strongroom.service.conversations import Conversations
from strongroom.service.datasets import DatasetLoad, DatasetQuery, Datasets, DatasetView
from strongroom.service.erasure import Erasures
from strongroom.service.hold_store import open_hold_store
from strongroom.service.lineage import lineage, registry_entries, retention_in_force
from strongroom.service.model_calls import ModelCalls
from strongroom.service.model_routes import ModelsConfig, models_config
from strongroom.service.operations import Operations, Outcome, Retrieved
from strongroom.service.pages import HIGHLIGHT_ACTION, IMAGE_ACTION, draw_page, highlight_span
from strongroom.service.platform import models_for, route_usable
from strongroom.service.proposal_store import open_proposal_store
from strongroom.service.registry import PROMOTE, Registry, record_at
from strongroom.service.registry_store import open_registry_store
from strongroom.service.requests import (
    AclChange,
    AskRequest,
    DocumentsRequest,
    DocumentView,
    KeyCreated,
    PageView,
    RouteView,
    SearchRequest,
    SearchResult,
    View,
)
from strongroom.service.retention import Retention
from strongroom.service.tables import VersionTables, find_tables, read_version
from strongroom.service.worker import dead_letters
from strongroom.service.workspace import JOB_WINDOW, has_page_image, upload_job_ids
from strongroom.types import Answer, Principal

__all__ = ["AsyncPlatform"]

T = TypeVar("T")
Vector = npt.NDArray[np.float32]


class AsyncPlatform:
    """strongroom's operations for an asyncio server. Use from the event loop only."""

    def __init__(
        self,
        settings: Settings,
        ops: Operations,
        keys: ApiKeyStore,
        audit: AuditLog,
        *,
        store_pool: Executor,
        audit_writer: Batcher[AuditEvent, int],
        queries: QueryBatcher | None = None,
    ) -> None:
        self.settings = settings
        self.ops = ops
        self.keys = keys
        self.audit = audit
        self._store_pool = store_pool
        self._audit_writer = audit_writer
        self._queries = queries
        self._routes = RouteStore(settings.home)
        self._extractive = ExtractiveGenerator()  # for the gateway's quoting, on any thread
        # answers without a model run on the store's thread, so they may read the hits' pages
        self._answers = ExtractiveGenerator(pages=ops.store.page_text)
        self._gateway: Gateway | None = None
        self._originals = originals_folder(settings.home)
        self._render_limits = RenderLimits.from_settings(settings)
        self._conversations: Conversations | None = None  # opened on first use, on the store's thread
        self._approvals: Approvals | None = None  # opened on first use, on the store's thread
        self._registry: Registry | None = None  # opened on first use, on the store's thread
        self._retention: Retention | None = None  # opened on first use, on the store's thread
        # datasets have a thread of their own: a long query must not hold up searches
        self._datasets: Datasets | None = None
        self._data_pool: ThreadPoolExecutor | None = None

    async def aclose(self) -> None:
        if self._gateway is not None:
            await self._gateway.aclose()
        if self._conversations is not None:
            await self.on_store(self._conversations.close)
        if self._approvals is not None:
            await self.on_store(self._approvals.store.close)
        if self._registry is not None:
            await self.on_store(self._registry.store.close)
        if self._retention is not None:
            await self.on_store(self._retention.close)
        if self._data_pool is not None:
            if self._datasets is not None:
                await self._on_data(self._datasets.close)
            self._data_pool.shutdown(wait=True)

    # -- the drivers' plumbing ---------------------------------------------------------------

    async def on_store(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the store's thread, in this request's context (its request id)."""
        context = contextvars.copy_context()
        call = functools.partial(context.run, fn, *args)
        return await asyncio.get_running_loop().run_in_executor(self._store_pool, call)

    async def _done(self, outcome: Outcome[T]) -> T:
        return (await self._committed(outcome))[0]

    async def _committed(self, outcome: Outcome[T]) -> tuple[T, list[int]]:
        """The outcome's value (or error) once its records are committed, with their seqs."""
        seqs = await asyncio.gather(*(self._audit_writer.submit(e) for e in outcome.events))
        return outcome.result(), list(seqs)

    async def _vector(self, text: str) -> Vector | None:
        if self._queries is None or not text.strip():
            return None
        return await self._queries.embed(text)

    def _gateway_for_routes(self) -> Gateway:
        if self._gateway is None:
            from strongroom.llm.deployments import open_gateway
            from strongroom.rag.llm import extractive_deployment

            self._gateway = open_gateway(self.settings.home, extra=[extractive_deployment(self._extractive)])
        return self._gateway

    # -- reading ---------------------------------------------------------------------------

    async def search(self, principal: Principal, request: SearchRequest) -> SearchResult:
        vector = await self._vector(request.query)
        return await self._done(await self.on_store(self.ops.search, principal, request, vector))

    async def ask(self, principal: Principal, request: AskRequest, *, action: str = "ask") -> Answer:
        """An answer with citations; ``request.model``: a route the principal is granted, or
        ``strongroom-rag``/None for the extractive generator."""
        return (await self.ask_recorded(principal, request, action=action))[0]

    async def ask_recorded(
        self, principal: Principal, request: AskRequest, *, action: str = "ask"
    ) -> tuple[Answer, int]:
        """:meth:`ask`, and the seq of the answer's audit record (what feedback refers to)."""
        model = request.route
        vector = await self._vector(request.question)

        def retrieve() -> tuple[Outcome[Retrieved], Answer | None]:
            allowed = functools.partial(route_usable, self.settings, self._routes, principal)
            found = self.ops.retrieve(principal, request, vector, route_allowed=allowed, action=action)
            if found.error is not None or model is not None:
                return found, None
            assert found.value is not None
            return found, self._answers.generate(request.question, found.value.hits)

        found, answer = await self.on_store(retrieve)
        retrieved = await self._done(found)
        if answer is None:
            from strongroom.rag.llm import LLMGenerator

            assert model is not None
            generator = LLMGenerator(
                self._gateway_for_routes(), model, user=principal.name, extractive=self._extractive
            )
            answer = await generator.agenerate(request.question, retrieved.hits)
        answered, seqs = await self._committed(self.ops.answered(principal, request, retrieved, answer, action=action))
        return answered, seqs[0]

    async def models(self, principal: Principal) -> list[RouteView]:
        self.ops.require(principal, "reader")
        return await asyncio.to_thread(models_for, self.settings, principal, self._routes)

    def chat(self, principal: Principal, request: ChatRequest) -> AsyncIterator[Delta]:
        """The principal's own conversation (tools included) through a gateway route it is
        granted (``request.model``): streamed, metered, audited (:mod:`.model_calls`)."""
        calls = ModelCalls(self.ops, self.settings, self._routes, gateway=self._gateway_for_routes, commit=self._done)
        return calls.stream(principal, request)

    async def documents(self, principal: Principal, request: DocumentsRequest) -> list[DocumentView]:
        return await self._done(await self.on_store(self.ops.documents, principal, request))

    async def document(self, principal: Principal, document_id: str, view: View) -> DocumentView:
        return await self._done(await self.on_store(self.ops.document, principal, document_id, view))

    async def find_document(self, principal: Principal, name: str, view: View | None = None) -> DocumentView:
        """A document ``principal`` may read, named by id, version id (or a prefix of either of
        at least 8 characters), source key or file name (as :meth:`Platform.find_document`)."""
        return await self._done(await self.on_store(self.ops.find_document, principal, name, view or View()))

    async def page(self, principal: Principal, document_id: str, version_id: str, page: int, view: View) -> PageView:
        return await self._done(await self.on_store(self.ops.page, principal, document_id, version_id, page, view))

    async def page_image(
        self, principal: Principal, document_id: str, version_id: str, page: int, view: View
    ) -> RenderedPage:
        """The page drawn as a PNG: checked on the store's thread, drawn off it."""
        read = functools.partial(self.ops.page, action=IMAGE_ACTION)
        checked = await self.on_store(read, principal, document_id, version_id, page, view)
        return await self._done(await asyncio.to_thread(draw_page, checked, self._originals, self._render_limits))

    async def page_highlight(
        self, principal: Principal, document_id: str, version_id: str, page: int, span: tuple[int, int], view: View
    ) -> list[Box]:
        """Where ``span`` of the page's text lies on its image, one box per line (fractions)."""
        read = functools.partial(self.ops.page, action=HIGHLIGHT_ACTION)
        checked = await self.on_store(read, principal, document_id, version_id, page, view)
        located = await asyncio.to_thread(highlight_span, checked, self._originals, *span, self._render_limits)
        return await self._done(located)

    async def tables(
        self, principal: Principal, document_id: str, version_id: str, view: View, *, index: int | None = None
    ) -> VersionTables:
        """The tables of a version: checked and read on the store's thread, found off it."""
        checked = await self.on_store(read_version, self.ops, principal, document_id, version_id, view)
        return await self._done(await asyncio.to_thread(find_tables, checked, index))

    async def job(self, principal: Principal, job_id: str) -> dict[str, object]:
        return await self._done(await self.on_store(self.ops.job, principal, job_id))

    def page_has_image(self, shown: PageView) -> bool:
        """Whether a page already read (and so checked) can be drawn: a PDF whose original was kept."""
        return has_page_image(shown, self._originals)

    async def jobs(self, principal: Principal, limit: int = 50) -> list[dict[str, object]]:
        """The newest upload jobs ``principal`` may follow (ingesters: their own; admins: all),
        newest first, each its job record with ``id``; one audited read."""

        def recent() -> list[str]:
            first = max(0, self.audit.head().seq - JOB_WINDOW)
            return upload_job_ids(self.audit.read(first, JOB_WINDOW), principal, limit)

        ids = await self._done(
            await asyncio.to_thread(self.ops.audited, principal, "jobs.list", recent, role="ingester")
        )

        def rows() -> list[dict[str, object]]:
            found = (self.ops.store.get_job(i) for i in ids)
            return [{**row, "id": i} for i, row in zip(ids, found, strict=True) if row is not None]

        return await self.on_store(rows)

    # -- writing ---------------------------------------------------------------------------

    async def delete(self, principal: Principal, document_id: str) -> list[str]:
        return await self._done(await self.on_store(self.ops.delete, principal, document_id))

    async def set_acl(self, principal: Principal, document_id: str, acl: Iterable[str]) -> AclChange:
        """With four-eyes on, the change is proposed: :class:`ApprovalPending` names the proposal."""
        if self.settings.four_eyes:
            await self._proposed(principal, "acl.set", {"document_id": document_id, "acl": sorted(acl)})
        return await self._done(await self.on_store(self.ops.set_acl, principal, document_id, frozenset(acl)))

    # -- four-eyes approval ------------------------------------------------------------------

    async def approving(self, op: Callable[[Approvals], Outcome[T]]) -> T:
        """Run one approvals operation on the store's thread (it may apply a change), audited."""

        def run() -> Outcome[T]:
            if self._approvals is None:
                retention = self._retention_here()
                self._approvals = Approvals(
                    self.ops, open_proposal_store(self.settings), self.keys,
                    appliers=retention.appliers(), checks=retention.checks(),
                )  # fmt: skip
            registry = self._registry_here()  # a registry stage moves only by an approved proposal
            self._approvals.appliers.setdefault(PROMOTE, registry.apply)
            self._approvals.checks.setdefault(PROMOTE, registry.check)
            return op(self._approvals)

        return await self._done(await self.on_store(run))

    def _retention_here(self) -> Retention:
        if self._retention is None:
            self._retention = Retention(self.ops, open_hold_store(self.settings))
        return self._retention

    async def retaining(self, op: Callable[[Retention], Outcome[T]]) -> T:
        """Run one retention or legal hold operation (list, place, apply) on the store's thread, audited."""
        return await self._done(await self.on_store(lambda: op(self._retention_here())))

    async def retention_change(
        self, principal: Principal, kind: str, change: dict[str, object], reason: str = ""
    ) -> Any:
        """Set or remove a retention policy, or release a hold (``retention.set|remove``,
        ``holds.release``); with four-eyes on, proposed instead (:class:`ApprovalPending`).
        ``reason``: the proposal's, or the audit record's detail."""
        if self.settings.four_eyes:
            await self._proposed(principal, kind, change, reason)
        return await self.retaining(lambda r: r.change(principal, kind, change, reason=reason))

    def _registry_here(self) -> Registry:
        """The model registry, opened on first use (on the store's thread)."""
        if self._registry is None:
            read = functools.partial(record_at, self.audit)
            self._registry = Registry(self.ops, open_registry_store(self.settings), read)
        return self._registry

    async def registering(self, op: Callable[[Registry], Outcome[T]]) -> T:
        """Run one model registry operation on the store's thread, audited (:mod:`strongroom.service.registry`)."""
        return await self._done(await self.on_store(lambda: op(self._registry_here())))

    async def _proposed(self, principal: Principal, kind: str, change: dict[str, object], reason: str = "") -> None:
        p = await self.approving(lambda a: a.propose(principal, kind, change, reason))
        raise ApprovalPending(
            f"four-eyes approval is on: the change is proposal {p.id}; it takes effect when another person with "
            f"the approver role approves it (POST /v1/approvals/{p.id}/approve), and expires at "
            f"{p.expires_at.isoformat()}",
            p.id,
        )

    # -- keys and audit ----------------------------------------------------------------------

    async def create_key(
        self, principal: Principal, owner: str, groups: Iterable[str], *, expires_at: datetime | None, days: int | None
    ) -> KeyCreated:
        """With four-eyes on, the key is proposed: :class:`ApprovalPending` names the proposal."""
        if self.settings.four_eyes:
            change: dict[str, object] = {
                "owner": owner,
                "groups": sorted(groups),
                "days": days,
                "expires_at": expires_at,
            }
            await self._proposed(principal, "keys.create", change)
        call = functools.partial(
            self.ops.create_key, principal, self.keys, owner, list(groups), days=days, expires_at=expires_at
        )
        return await self._done(await asyncio.to_thread(call))

    async def list_keys(self, principal: Principal) -> list[ApiKey]:
        return await self._done(await asyncio.to_thread(self.ops.audited, principal, "keys.list", self.keys.list))

    async def revoke_key(self, principal: Principal, key_id: str) -> str:
        return await self._done(await asyncio.to_thread(self.ops.revoke_key, principal, self.keys, key_id))

    async def lineage(self, principal: Principal, record_id: str | int) -> Lineage:
        """Where the answer of audit record ``record_id`` came from (:mod:`strongroom.service.lineage`)."""

        def run() -> Outcome[Lineage]:  # on the store's thread, where the hold store is opened
            in_force = retention_in_force(self._retention_here().store)
            models = registry_entries(self._registry_here().store)
            return lineage(self.ops, self.audit, principal, record_id, policies=in_force, registry=models)

        return await self._done(await self.on_store(run))

    async def erasing(self, op: Callable[[Erasures], Outcome[T]]) -> T:
        """Run one erasure operation (erase, verify, list: :mod:`strongroom.service.erasure`) on
        the store's thread, audited. An erasure holds that thread until it is done."""
        return await self._done(await self.on_store(lambda: op(Erasures(self.ops, self.audit))))

    async def verify_audit(self, principal: Principal) -> VerifyReport:
        """Check the audit chain and its signed checkpoints (admins); the report says where it breaks."""
        return await self._done(await asyncio.to_thread(self.ops.audited, principal, "audit.verify", self.audit.verify))

    async def dead_letters(self, principal: Principal, bus_url: str | None, stream: str) -> list[dict[str, object]]:
        """The ingestion jobs the bus gave up on, with their last error (admins); none without a bus."""

        def read() -> list[dict[str, object]]:
            return dead_letters(bus_url, stream) if bus_url else []

        return await self._done(await asyncio.to_thread(self.ops.audited, principal, "jobs.dead_letters", read))

    async def models_config(self, principal: Principal) -> ModelsConfig:
        """Every model route (its active version) and deployment, read-only (admins)."""
        read = functools.partial(models_config, self.settings)
        return await self._done(await asyncio.to_thread(self.ops.audited, principal, "models.config.read", read))

    async def audit_records(
        self, principal: Principal, after_seq: int, limit: int, *, page: int = 500
    ) -> AsyncIterator[AuditRecord]:
        """Records with seq > ``after_seq``, oldest first, at most ``limit`` (admins). The check
        and its own record happen before the first record is read; records stream in pages,
        so a large read never sits in memory."""
        filters = {"after_seq": after_seq, "limit": limit}
        await self._done(self.ops.audited(principal, "audit.read", lambda: None, filters=filters))
        return self._stream(after_seq, limit, page)

    async def _stream(self, after_seq: int, limit: int, page: int) -> AsyncIterator[AuditRecord]:
        left, last = limit, after_seq
        while left > 0:
            size = min(page, left)
            batch = await asyncio.to_thread(self._page, last, size)
            for record in batch:
                yield record
            if len(batch) < size:
                return
            left -= len(batch)
            last = batch[-1].seq

    def _page(self, after_seq: int, size: int) -> list[AuditRecord]:
        return list(self.audit.read(after_seq, size))

    # -- conversations -----------------------------------------------------------------------

    async def _converse(self, op: Callable[[Conversations], Outcome[T]]) -> T:
        """Run a conversation operation on the store's thread, its records committed."""

        def run() -> Outcome[T]:
            if self._conversations is None:
                self._conversations = Conversations(self.ops, open_conversation_store(self.settings))
            return op(self._conversations)

        return await self._done(await self.on_store(run))

    async def converse(self, principal: Principal, conversation_id: str | None, request: AskRequest) -> Turn:
        """Ask in a conversation (a new one when ``conversation_id`` is None): a follow-up is
        retrieved with its context; the turn keeps the seq of the ask's audit record."""
        follow = await self._converse(lambda c: c.follow_up(principal, conversation_id, request))
        answer, seq = await self.ask_recorded(principal, follow.request, action="conversations.ask")
        return await self._converse(lambda c: c.add_turn(principal, follow, answer, seq))

    async def create_conversation(self, principal: Principal, title: str = "") -> Conversation:
        return await self._converse(lambda c: c.create(principal, title))

    async def conversations(self, principal: Principal) -> list[Conversation]:
        return await self._converse(lambda c: c.mine(principal))

    async def conversation(self, principal: Principal, conversation_id: str) -> Thread:
        return await self._converse(lambda c: c.get(principal, conversation_id))

    async def delete_conversation(self, principal: Principal, conversation_id: str) -> str:
        return await self._converse(lambda c: c.delete(principal, conversation_id))

    async def feedback(
        self, principal: Principal, conversation_id: str, turn_id: str, rating: Rating, comment: str = ""
    ) -> Feedback:
        return await self._converse(lambda c: c.feedback(principal, conversation_id, turn_id, rating, comment))

    async def export_feedback(self, principal: Principal) -> list[dict[str, Any]]:
        return await self._converse(lambda c: c.export(principal))

    async def share(self, principal: Principal, conversation_id: str, as_of: str | None = None) -> Share:
        return await self._converse(lambda c: c.share(principal, conversation_id, as_of))

    async def open_shared(self, principal: Principal, token: str) -> tuple[Share, Thread]:
        return await self._converse(lambda c: c.open_shared(principal, token))

    # -- structured datasets -----------------------------------------------------------------

    async def _on_data(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the datasets' thread, in this request's context (its request id)."""
        if self._data_pool is None:
            self._data_pool = ThreadPoolExecutor(1, thread_name_prefix="strongroom-datasets")
        call = functools.partial(contextvars.copy_context().run, fn, *args)
        return await asyncio.get_running_loop().run_in_executor(self._data_pool, call)

    async def _data(self, op: Callable[[Datasets], Outcome[T]]) -> T:
        def run() -> Outcome[T]:
            if self._datasets is None:
                from strongroom.data import open_datasets

                self._datasets = Datasets(self.ops, open_datasets(self.settings))
            return op(self._datasets)

        return await self._done(await self._on_data(run))

    async def load_dataset(self, principal: Principal, request: DatasetLoad) -> DatasetVersion:
        return await self._data(lambda d: d.load(principal, request))

    async def datasets(self, principal: Principal, known_at: TimeInput = None) -> list[DatasetView]:
        """The datasets ``principal`` may read, with their versions loaded by ``known_at``."""
        return await self._data(lambda d: d.listing(principal, known_at))

    async def query_datasets(self, principal: Principal, request: DatasetQuery) -> QueryResult:
        """One read-only SQL statement over the datasets ``principal`` may read (see
        :meth:`~strongroom.service.datasets.Datasets.query`)."""
        return await self._data(lambda d: d.query(principal, request))

    async def require(self, principal: Principal, role: str, action: str) -> None:
        """Refuse (audited) a principal without ``role`` before a route does costly work."""
        await self._done(self.ops.permitted(principal, role, action))

    async def record(self, principal: Principal, action: str, **fields: object) -> None:
        """Audit something the HTTP layer itself saw happen for ``principal`` (an upload received)."""
        await self._done(Outcome(None, None, (self.ops.record(principal, action, **fields),)))
