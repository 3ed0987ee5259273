"""The application layer for the CLI and Python programs: every operation, with policy and audit.

:class:`Platform` opens the configured store (loading the embedding model only when an
operation embeds), the audit log and the key table, and runs each operation of
:class:`~strongroom.service.operations.Operations` for a :class:`~strongroom.types.Principal`,
writing its audit records before it returns. The HTTP service uses the same operations
through :class:`~strongroom.service.async_platform.AsyncPlatform`.

    >>> from strongroom import Settings, Principal
    >>> from strongroom.service import Platform, SearchRequest, AskRequest
    >>> with Platform.open(Settings(home=Path("~/.strongroom"))) as platform:      # doctest: +SKIP
    ...     ana = platform.principal("ana", ["public", "research"])
    ...     hits = platform.search(ana, SearchRequest(query="total net sales", as_of="2023-06-30")).hits
    ...     answer = platform.ask(ana, AskRequest(question="What were Apple's total net sales?"))
"""

from __future__ import annotations

import functools
import getpass
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn, TextIO, TypeVar

from strongroom import audit
from strongroom.audit import VerifyReport, open_audit_log
from strongroom.auth import open_key_store
from strongroom.auth.apikeys import ApiKey
from strongroom.config import Settings
from strongroom.data.base import DatasetVersion, QueryResult
from strongroom.embed import Embedder, LazyEmbedder
from strongroom.embed.query_encoder import create_query_encoder
from strongroom.errors import ApprovalPending, StoreError
from strongroom.evaluate import QAItem, run_eval
from strongroom.governance.lineage import Lineage
from strongroom.ingest.originals import originals_folder
from strongroom.ingest.parsers.pdf_pages import Box, RenderedPage
from strongroom.ingest.pipeline import IngestOptions, IngestReport, ProgressFn
from strongroom.ingest.sandbox import RenderLimits
from strongroom.ingest.understand.redaction import redact_value
from strongroom.llm.route_config import RouteStore
from strongroom.rag import ExtractiveGenerator, Generator
from strongroom.retrieve import search as hybrid_search
from strongroom.runtime import Runtime, open_runtime
from strongroom.service.approvals import Approvals
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
from strongroom.service.hold_store import open_hold_store
from strongroom.service.lineage import lineage, registry_entries, retention_in_force
from strongroom.service.model_access import model_appliers, models_change, models_for, route_allowed, route_usable
from strongroom.service.operations import Operations, Outcome
from strongroom.service.pages import HIGHLIGHT_ACTION, IMAGE_ACTION, draw_page, highlight_span
from strongroom.service.proposal_store import open_proposal_store
from strongroom.service.records import QueryRedactor
from strongroom.service.registry import PROMOTE, Registry, eval_filters, eval_set_sha256, record_at
from strongroom.service.registry_store import open_registry_store
from strongroom.service.requests import (
    EXTRACTIVE_MODEL,
    AclChange,
    AskRequest,
    DocumentsRequest,
    DocumentView,
    IngestRequest,
    KeyCreated,
    PageView,
    RouteView,
    SearchRequest,
    SearchResult,
    View,
)
from strongroom.service.retention import Retention
from strongroom.service.tables import VersionTables, find_tables, read_version
from strongroom.service.writes import EntitledTarget
from strongroom.store.sqlite import private_dir
from strongroom.types import Answer, Principal

__all__ = ["EXTRACTIVE_MODEL", "Platform", "check_home", "models_for", "route_allowed", "route_usable"]

T = TypeVar("T")


def check_home(settings: Settings, *, create: bool) -> None:
    """Refuse a home that is a file, and (``create=False``) one that holds no store: a mistyped
    --home is an error, never a new empty store."""
    home = settings.home
    if home.exists() and not home.is_dir():
        raise StoreError(f"--home {home} is a file, not a folder; point it at a strongroom home folder")
    if not create and not settings.store_url and not settings.catalog_path.is_file():
        raise StoreError(
            f"no strongroom store under {home}: check --home / STRONGROOM_HOME, or ingest something first "
            f"(strongroom ingest FILES --home {home})"
        )


class Platform:
    """strongroom's operations over one home (and store), for one process."""

    def __init__(self, settings: Settings, runtime: Runtime) -> None:
        self.settings = settings
        self.runtime = runtime
        private_dir(settings.home)
        self.audit = open_audit_log(settings)
        self.keys = open_key_store(settings)
        self.routes = RouteStore(settings.home)
        self.ops = Operations(settings, runtime.store, runtime.embedder, QueryRedactor.for_settings(settings))
        self._render_limits = RenderLimits.from_settings(settings)
        self._conversations: Conversations | None = None  # opened on first use
        self._datasets: Datasets | None = None  # opened on first use
        self._approvals: Approvals | None = None  # opened on first use
        self._retention: Retention | None = None  # opened on first use
        self._registry: Registry | None = None  # opened on first use

    @classmethod
    def open(
        cls, settings: Settings | None = None, *, embedder: Embedder | None = None, create: bool = True
    ) -> Platform:
        """The platform over the configured store. ``create=False``: refuse a home that
        holds no store yet (a mistyped --home), rather than making an empty one."""
        settings = settings or Settings()
        check_home(settings, create=create)
        runtime = open_runtime(settings, embedder or LazyEmbedder(settings))
        try:
            return cls(settings, runtime)
        except BaseException:
            runtime.close()
            raise

    def close(self) -> None:
        if self._conversations is not None:
            self._conversations.close()
        if self._datasets is not None:
            self._datasets.close()
        if self._approvals is not None:
            self._approvals.store.close()
        if self._retention is not None:
            self._retention.close()
        if self._registry is not None:
            self._registry.store.close()
        self.runtime.close()
        self.audit.close()
        self.keys.close()

    def __enter__(self) -> Platform:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def principal(
        self, name: str | None = None, groups: Iterable[str] | None = None, *, auth: str = "python"
    ) -> Principal:
        """A local principal (the CLI's, or a program's): ``name`` (default: the configured
        CLI user, else the OS user), ``groups`` (default: the configured CLI groups), and the
        roles configured for local use (``cli_roles``)."""
        s = self.settings
        who = name or s.cli_user or os.environ.get("USER") or getpass.getuser()
        members = frozenset(g.strip() for g in (groups if groups is not None else s.cli_groups) if g.strip())
        return Principal(who, members, frozenset(s.cli_roles), auth)

    def _done(self, outcome: Outcome[T]) -> T:
        return self._committed(outcome)[0]

    def _committed(self, outcome: Outcome[T]) -> tuple[T, list[int]]:
        """The outcome's value (or error) once its records are written, with their seqs."""
        seqs = self.audit.append_many(list(outcome.events)) if outcome.events else []
        return outcome.result(), seqs

    # -- reading ---------------------------------------------------------------------------

    def search(self, principal: Principal, request: SearchRequest) -> SearchResult:
        """The top ``request.k`` passages ``principal`` may read, at the request's clocks."""
        return self._done(self.ops.search(principal, request))

    def ask(self, principal: Principal, request: AskRequest) -> Answer:
        """An answer with citations from what ``principal`` may read; ``request.model`` names a
        gateway route (or ``strongroom-rag``/None for the extractive generator)."""
        return self.ask_recorded(principal, request)[0]

    def ask_recorded(self, principal: Principal, request: AskRequest, *, action: str = "ask") -> tuple[Answer, int]:
        """:meth:`ask`, and the seq of the answer's audit record (what feedback refers to)."""
        usable = functools.partial(route_usable, self.settings, self.routes, principal)
        retrieved = self._done(self.ops.retrieve(principal, request, route_allowed=usable, action=action))
        generator: Generator = ExtractiveGenerator(pages=self.ops.store.page_text)
        if request.route is not None:
            from strongroom.rag.llm import open_llm_generator

            generator = open_llm_generator(self.settings.home, request.route, user=principal.name)
        try:
            answer = generator.generate(request.question, retrieved.hits)
        finally:
            close = getattr(generator, "close", None)
            if close is not None:
                close()
        answered, seqs = self._committed(self.ops.answered(principal, request, retrieved, answer, action=action))
        return answered, seqs[0]

    def models(self, principal: Principal) -> list[RouteView]:
        """The ways ``principal`` may have answers written: the extractive generator and the
        gateway routes it is granted."""
        self.ops.require(principal, "reader")
        return models_for(self.settings, principal, self.routes)

    def documents(self, principal: Principal, request: DocumentsRequest | None = None) -> list[DocumentView]:
        return self._done(self.ops.documents(principal, request or DocumentsRequest()))

    def document(self, principal: Principal, document_id: str, view: View | None = None) -> DocumentView:
        return self._done(self.ops.document(principal, document_id, view or View()))

    def page(
        self, principal: Principal, document_id: str, version_id: str, page: int, view: View | None = None
    ) -> PageView:
        return self._done(self.ops.page(principal, document_id, version_id, page, view or View()))

    def page_image(
        self, principal: Principal, document_id: str, version_id: str, page: int, view: View | None = None
    ) -> RenderedPage:
        """A PDF page ``principal`` may read, drawn as a PNG from the version's kept original."""
        checked = self.ops.page(principal, document_id, version_id, page, view or View(), action=IMAGE_ACTION)
        return self._done(draw_page(checked, originals_folder(self.settings.home), self._render_limits))

    def page_highlight(
        self,
        principal: Principal,
        document_id: str,
        version_id: str,
        page: int,
        span: tuple[int, int],
        view: View | None = None,
    ) -> list[Box]:
        """Where ``span`` of a page's text lies on its image: one box per line, fractions of the page."""
        checked = self.ops.page(principal, document_id, version_id, page, view or View(), action=HIGHLIGHT_ACTION)
        return self._done(highlight_span(checked, originals_folder(self.settings.home), *span, self._render_limits))

    def tables(
        self,
        principal: Principal,
        document_id: str,
        version_id: str,
        view: View | None = None,
        *,
        index: int | None = None,
    ) -> VersionTables:
        """The tables of a version ``principal`` may read, found in its stored page text;
        ``index``: table number ``index`` (from 0) as ``.table``, NotFound past the end."""
        checked = read_version(self.ops, principal, document_id, version_id, view or View())
        return self._done(find_tables(checked, index))

    def find_document(self, principal: Principal, name: str, view: View | None = None) -> DocumentView:
        """A document ``principal`` may read, named by id, version id (or a prefix of either of
        at least 8 characters), source key or file name."""
        return self._done(self.ops.find_document(principal, name, view or View()))

    # -- writing ---------------------------------------------------------------------------

    def ingest(
        self,
        principal: Principal,
        request: IngestRequest,
        progress: ProgressFn | None = None,
        *,
        job_id: str | None = None,
        ray_address: str | None = None,
    ) -> IngestReport:
        """Ingest as ``principal`` (write entitlements apply per file); then snapshot the indexes."""
        runner: Callable[[EntitledTarget, IngestOptions], IngestReport] | None = None
        if ray_address:
            from strongroom.ingest.distributed import ingest_with_ray

            def runner(target: EntitledTarget, options: IngestOptions) -> IngestReport:
                return ingest_with_ray(
                    list(request.paths), target, self.settings, options, address=ray_address, progress=progress
                )

        report = self._done(self.ops.ingest(principal, request, progress, job_id=job_id, ingest_with=runner))
        if report.ingested:
            self.runtime.store.save_indexes()  # build the search indexes now, not on the first query
        return report

    def queue(self, principal: Principal, request: IngestRequest, bus_url: str, stream: str) -> list[dict[str, str]]:
        """Queue one ingestion job per file on a bus for ``strongroom worker`` processes, which
        write with ``principal``'s write entitlements."""
        from strongroom.service.worker import publish_jobs  # the bus client only when queueing

        publish = functools.partial(publish_jobs, self.settings, principal, request, bus_url, stream)
        source = redact_value(request.source)[0] if request.source else None
        fields = {"acl": sorted(request.acl), "source": source, "bus": bus_url.split("@")[-1]}
        return self._done(self.ops.audited(principal, "ingest.queue", publish, role="ingester", filters=fields))

    def evaluate(
        self,
        principal: Principal,
        items: Sequence[QAItem],
        k: int,
        view: View | None = None,
        *,
        query_encoder: str = "model",
        name: str = "",
    ) -> dict[str, object]:
        """Retrieval quality on a QA set over what ``principal`` may read (metrics only; one record)."""
        return self.evaluate_recorded(principal, items, k, view, query_encoder=query_encoder, name=name)[0]

    def evaluate_recorded(
        self,
        principal: Principal,
        items: Sequence[QAItem],
        k: int,
        view: View | None = None,
        *,
        query_encoder: str = "model",
        name: str = "",
    ) -> tuple[dict[str, object], int]:
        """:meth:`evaluate`, and the seq of its audit record, which keeps the metrics and the
        SHA-256 of the questions (what the model registry attaches as evidence)."""
        scope, clocks = self.ops.scope(principal, view or View())

        def run() -> dict[str, object]:
            encoder = create_query_encoder(
                query_encoder,  # type: ignore[arg-type]  # checked there: a clear error, not a traceback
                self.runtime.embedder,
                self.settings.home / "models",
            )
            return run_eval(items, lambda q: hybrid_search(self.runtime.store, encoder, q, scope, k), k)

        narrowed = {"doc_types": sorted((view or View()).doc_types), "meta_filters": dict((view or View()).filters)}
        filters = {**clocks.describe(), **narrowed, "k": k, "questions": len(items)}
        model_id = self.runtime.store.model_id
        subject = {  # what was evaluated, as registry bindings name it; the clocks applied (None: now)
            "embedder": model_id,
            "query_encoder": "" if query_encoder == "model" else f"{query_encoder}:{model_id}",
            "as_of": scope.as_of.isoformat() if scope.as_of else None,
            "known_at": scope.known_at.isoformat() if scope.known_at else None,
            "groups": sorted(scope.groups),
        }

        def body() -> tuple[dict[str, object], dict[str, object]]:
            self.ops.require(principal, "reader")
            result = run()
            return result, {"filters": {**filters, **eval_filters(result, eval_set_sha256(items), subject)}}

        fields: dict[str, object] = {"target": name, "filters": filters}
        result, seqs = self._committed(self.ops.run_audited(principal, "eval", fields, body))
        return result, seqs[0]

    def change_models(
        self, principal: Principal, action: str, target: str, change: Callable[[], T], detail: str = ""
    ) -> T:
        """Change what answers (a model route or deployment: ``models.set-route``,
        ``models.rollback``, ``models.set-deployment``): admins only, audited; with four-eyes
        on, only through an approved proposal (:mod:`strongroom.service.model_routes` proposes)."""
        return self._done(models_change(self.ops, principal, action, target, change, detail, approved=False))

    def delete(self, principal: Principal, document_id: str) -> list[str]:
        """Delete a document (admins); the same bytes may be ingested again later."""
        return self._done(self.ops.delete(principal, document_id))

    def set_acl(self, principal: Principal, document_id: str, acl: Iterable[str], reason: str = "") -> AclChange:
        """Change who may read a document (admins who may read it); audited before and after.
        With four-eyes on, the change is proposed instead: :class:`ApprovalPending` names the proposal."""
        if self.settings.four_eyes:
            self.proposed(principal, "acl.set", {"document_id": document_id, "acl": sorted(acl)}, reason)
        return self._done(self.ops.set_acl(principal, document_id, frozenset(acl)))

    # -- four-eyes approval ------------------------------------------------------------------

    @property
    def approvals(self) -> Approvals:
        """Four-eyes proposals (:mod:`strongroom.service.approvals`); run them with :meth:`approving`."""
        if self._approvals is None:
            store = open_proposal_store(self.settings)
            models = model_appliers(self.ops, self.routes, self.settings.home)
            appliers = {**models, PROMOTE: self.registry.apply}
            self._approvals = Approvals(
                self.ops,
                store,
                self.keys,
                appliers=appliers,
                checks={PROMOTE: self.registry.check, **self.retention.checks()},
            )
            self._approvals.appliers.update(self.retention.appliers())
        return self._approvals

    def approving(self, op: Callable[[Approvals], Outcome[T]]) -> T:
        """Run one approvals operation (propose, approve, reject, break glass, review), audited."""
        return self._done(op(self.approvals))

    @property
    def registry(self) -> Registry:
        """The model registry (:mod:`strongroom.service.registry`); run it with :meth:`registering`.
        Its stages move only through :attr:`approvals` (kind ``registry.promote``)."""
        if self._registry is None:
            read = functools.partial(record_at, self.audit)
            self._registry = Registry(self.ops, open_registry_store(self.settings), read)
        return self._registry

    def registering(self, op: Callable[[Registry], Outcome[T]]) -> T:
        """Run one model registry operation (register, list, show, evidence, which, resolve), audited."""
        return self._done(op(self.registry))

    @property
    def retention(self) -> Retention:
        """Retention policies and legal holds (:mod:`strongroom.service.retention`); run them with
        :meth:`retaining`."""
        if self._retention is None:
            self._retention = Retention(self.ops, open_hold_store(self.settings))
        return self._retention

    def retaining(self, op: Callable[[Retention], Outcome[T]]) -> T:
        """Run one retention or legal hold operation (list, place, apply), audited."""
        return self._done(op(self.retention))

    def set_retention_policy(self, principal: Principal, policy: Mapping[str, object], reason: str = "") -> Any:
        """Add or replace a retention policy (admins); with four-eyes on, proposed instead
        (:class:`ApprovalPending` names the proposal)."""
        if self.settings.four_eyes:
            self.proposed(principal, "retention.set", policy, reason)
        return self.retaining(lambda r: r.set_policy(principal, policy, reason=reason))

    def remove_retention_policy(self, principal: Principal, policy_id: str, reason: str = "") -> Any:
        """Remove a retention policy (admins); with four-eyes on, proposed instead."""
        if self.settings.four_eyes:
            self.proposed(principal, "retention.remove", {"id": policy_id}, reason)
        return self.retaining(lambda r: r.remove_policy(principal, policy_id, reason=reason))

    def release_hold(self, principal: Principal, hold_id: str, reason: str = "") -> Any:
        """Release a legal hold (admins); with four-eyes on, proposed instead."""
        if self.settings.four_eyes:
            self.proposed(principal, "holds.release", {"hold_id": hold_id}, reason)
        return self.retaining(lambda r: r.release(principal, hold_id, reason=reason))

    def proposed(self, principal: Principal, kind: str, change: Mapping[str, object], reason: str) -> NoReturn:
        """Propose a change four-eyes must approve, and say so (:class:`ApprovalPending`)."""
        p = self.approving(lambda a: a.propose(principal, kind, change, reason))
        raise ApprovalPending(
            f"four-eyes approval is on: the change is proposal {p.id} (change sha256 {p.change_sha256[:12]}); it "
            f"takes effect when another person with the approver role approves it (`strongroom approvals approve "
            f"{p.id}`), and expires at {p.expires_at.isoformat()}",
            p.id,
        )

    # -- conversations -----------------------------------------------------------------------

    def _converse(self, op: Callable[[Conversations], Outcome[T]]) -> T:
        if self._conversations is None:
            self._conversations = Conversations(self.ops, open_conversation_store(self.settings))
        return self._done(op(self._conversations))

    def converse(self, principal: Principal, conversation_id: str | None, request: AskRequest) -> Turn:
        """Ask in a conversation (a new one when ``conversation_id`` is None): a follow-up is
        retrieved with its context; the turn keeps the seq of the ask's audit record."""
        follow = self._converse(lambda c: c.follow_up(principal, conversation_id, request))
        answer, seq = self.ask_recorded(principal, follow.request, action="conversations.ask")
        return self._converse(lambda c: c.add_turn(principal, follow, answer, seq))

    def create_conversation(self, principal: Principal, title: str = "") -> Conversation:
        return self._converse(lambda c: c.create(principal, title))

    def conversations(self, principal: Principal) -> list[Conversation]:
        """``principal``'s conversations, newest first."""
        return self._converse(lambda c: c.mine(principal))

    def conversation(self, principal: Principal, conversation_id: str) -> Thread:
        """One of ``principal``'s conversations (NotFound for anyone else's), answers re-checked."""
        return self._converse(lambda c: c.get(principal, conversation_id))

    def delete_conversation(self, principal: Principal, conversation_id: str) -> str:
        return self._converse(lambda c: c.delete(principal, conversation_id))

    def feedback(
        self, principal: Principal, conversation_id: str, turn_id: str, rating: Rating, comment: str = ""
    ) -> Feedback:
        """Rate one of ``principal``'s own answers, ``up`` or ``down``, with a comment."""
        return self._converse(lambda c: c.feedback(principal, conversation_id, turn_id, rating, comment))

    def export_feedback(self, principal: Principal) -> list[dict[str, object]]:
        """``principal``'s own rated answers, for evaluation (one dict per JSON line)."""
        return self._converse(lambda c: c.export(principal))

    def share(self, principal: Principal, conversation_id: str, as_of: str | None = None) -> Share:
        """A link to one of ``principal``'s conversations, pinned to ``as_of`` (default: now)."""
        return self._converse(lambda c: c.share(principal, conversation_id, as_of))

    def open_shared(self, principal: Principal, token: str) -> tuple[Share, Thread]:
        """A shared conversation, if ``principal`` may read every version it cites at its ``as_of``."""
        return self._converse(lambda c: c.open_shared(principal, token))

    # -- structured datasets -----------------------------------------------------------------

    def _data(self, op: Callable[[Datasets], Outcome[T]]) -> T:
        if self._datasets is None:
            from strongroom.data import open_datasets

            self._datasets = Datasets(self.ops, open_datasets(self.settings))
        return self._done(op(self._datasets))

    def load_dataset(self, principal: Principal, request: DatasetLoad) -> DatasetVersion:
        """Load a CSV or Parquet file as a new version of a dataset (ingesters; into an existing
        dataset only if ``principal`` may read it, and changing its ACL only as an admin)."""
        return self._data(lambda d: d.load(principal, request))

    def datasets(self, principal: Principal, known_at: TimeInput = None) -> list[DatasetView]:
        """The datasets ``principal`` may read, with their versions loaded by ``known_at`` (default: now)."""
        return self._data(lambda d: d.listing(principal, known_at))

    def query_datasets(self, principal: Principal, request: DatasetQuery) -> QueryResult:
        """One read-only SQL statement over the datasets ``principal`` may read, rows valid by
        ``request.as_of`` as known at ``request.known_at``; a dataset it may not read is refused
        (:class:`~strongroom.errors.QueryError`) exactly as one that does not exist."""
        return self._data(lambda d: d.query(principal, request))

    # -- keys and audit ----------------------------------------------------------------------

    def create_key(
        self,
        principal: Principal,
        owner: str,
        groups: Iterable[str],
        *,
        days: int | None = None,
        expires_at: datetime | None = None,
        no_expiry: bool = False,
    ) -> KeyCreated:
        """A new API key (admins): only groups the creator holds (or configuration allows), and
        an expiry (default ``key_default_days``, at most ``key_max_days``). With four-eyes on,
        the key is proposed instead: :class:`ApprovalPending` names the proposal."""
        if self.settings.four_eyes:
            change = {"owner": owner, "groups": sorted(groups), "days": days, "no_expiry": no_expiry}
            self.proposed(principal, "keys.create", {**change, "expires_at": expires_at}, "")
        return self._done(
            self.ops.create_key(
                principal, self.keys, owner, groups, days=days, expires_at=expires_at, no_expiry=no_expiry
            )
        )

    def list_keys(self, principal: Principal) -> list[ApiKey]:
        return self._done(self.ops.audited(principal, "keys.list", self.keys.list))

    def revoke_key(self, principal: Principal, key_id: str) -> None:
        """Revoke a key at once (admins)."""
        self._done(self.ops.revoke_key(principal, self.keys, key_id))

    def audit_records(self, principal: Principal, since: datetime | None = None) -> Iterator[dict[str, object]]:
        """Audit records (admins), oldest first, at or after ``since``."""
        records = self._done(
            self.ops.audited(
                principal, "audit.read", lambda: audit.records(self.audit, since), filters={"since": str(since)}
            )
        )
        return iter(records)

    def export_audit(self, principal: Principal, out: Path | TextIO, since: datetime | None = None) -> int:
        """Write audit records (admins) as JSON lines to ``out``, streamed; returns how many."""
        filters = {"since": since.isoformat() if since else None}
        return self._done(
            self.ops.audited(principal, "audit.export", lambda: audit.export(self.audit, out, since), filters=filters)
        )

    def verify_audit(self, principal: Principal) -> VerifyReport:
        """Check the audit chain (admins); the report says where it breaks."""
        return self._done(self.ops.audited(principal, "audit.verify", self.audit.verify))

    def lineage(self, principal: Principal, record_id: str | int) -> Lineage:
        """Where the answer of audit record ``record_id`` came from (:mod:`strongroom.service.lineage`):
        for an admin or auditor, or whoever made the request; NotFound for anyone else."""
        in_force = retention_in_force(self.retention.store)  # the holds and retention policies
        models = registry_entries(self.registry.store)
        return self._done(lineage(self.ops, self.audit, principal, record_id, policies=in_force, registry=models))
