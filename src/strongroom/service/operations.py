"""The policy core of every operation: roles, clocks, scope, entitlements, audit records.

Each operation is a plain function of a :class:`~strongroom.types.Principal` and a typed
request that returns an :class:`Outcome`: the result (or the error) together with the audit
records it calls for. It does the store I/O an operation needs and nothing else; the two
drivers around it (:class:`~strongroom.service.platform.Platform` for the CLI and Python,
:class:`~strongroom.service.async_platform.AsyncPlatform` for HTTP) run it where the store
may be used, write its records (one by one, or committed with those of concurrent requests)
and hand the result back. So a rule written here holds on every entry point, and no entry
point builds a scope, parses a time or writes an audit record itself.

Refusals are uniform: a document, version, page, job or key the principal may not see is
:class:`~strongroom.errors.NotFound`, exactly as one that does not exist.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Generic, TypeVar, cast

import numpy as np
import numpy.typing as npt

from strongroom.audit import AuditEvent, answer_hash
from strongroom.auth.apikeys import ApiKeyStore
from strongroom.config import Settings
from strongroom.embed import Embedder
from strongroom.errors import (
    DocumentHeld,
    IngestError,
    NotFound,
    PermissionDenied,
    QueryError,
    StoreError,
    StrongroomError,
)
from strongroom.governance.holds import document_hold
from strongroom.ingest.originals import originals_folder, remove_original
from strongroom.ingest.parsers import supported_suffixes
from strongroom.ingest.parsers.limits import ParseLimits
from strongroom.ingest.pipeline import IngestOptions, IngestReport, ProgressFn, discover, ingest
from strongroom.ingest.understand.redaction import redact_value
from strongroom.retrieve import search as hybrid_search
from strongroom.service.clock import Clocks, parse_instant
from strongroom.service.hold_store import open_hold_store
from strongroom.service.key_operations import new_key
from strongroom.service.records import QueryRedactor, chunk_refs, event
from strongroom.service.requests import (
    AclChange,
    AskRequest,
    DocumentsRequest,
    DocumentView,
    IngestRequest,
    KeyCreated,
    PageView,
    SearchRequest,
    SearchResult,
    View,
)
from strongroom.service.visibility import governing, newest, visible_documents
from strongroom.service.writes import EntitledTarget
from strongroom.store.base import Catalog
from strongroom.types import Answer, Hit, Principal, Scope, frozen_meta

__all__ = ["Operations", "Outcome", "Retrieved"]

T = TypeVar("T")
U = TypeVar("U")


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What an operation produced (or the error it ended with) and the records to audit."""

    value: T | None
    error: StrongroomError | None
    events: tuple[AuditEvent, ...]

    def result(self) -> T:
        """The value; or the operation's error, raised (after the driver audited it)."""
        if self.error is not None:
            raise self.error
        return cast(T, self.value)


@dataclass(frozen=True)
class Retrieved:
    """The first half of an ask: what the principal may read for the question."""

    scope: Scope
    clocks: Clocks
    hits: tuple[Hit, ...]
    filters: dict[str, object]  # as the ask's record keeps them


def _clean(text: str) -> str:
    """A value a caller typed (a filter, a source label), as the audit log may keep it."""
    return redact_value(text)[0] if text else text


def _outcome_word(exc: StrongroomError) -> str:
    if isinstance(exc, NotFound):
        return "not_found"
    if isinstance(exc, PermissionDenied):
        return "denied"
    return "error"


class Operations:
    """Every operation of strongroom over one store. Not thread-safe: call it from the
    thread that owns the store (the drivers do)."""

    def __init__(self, settings: Settings, store: Catalog, embedder: Embedder, redactor: QueryRedactor) -> None:
        self.settings = settings
        self.store = store
        self.embedder = embedder
        self.redactor = redactor

    # -- shared pieces ---------------------------------------------------------------------

    def record(self, principal: Principal, action: str, **fields: object) -> AuditEvent:
        """One audit record of ``principal`` doing ``action`` (the query redacted, with its HMAC)."""
        return event(principal, action, self.redactor, **fields)  # type: ignore[arg-type]

    def refused(self, principal: Principal, action: str, exc: StrongroomError, **fields: object) -> Outcome[T]:
        record = self.record(principal, action, **{**fields, "outcome": _outcome_word(exc), "detail": str(exc)[:500]})
        return Outcome(None, exc, (record,))

    def run_audited(
        self,
        principal: Principal,
        action: str,
        fields: dict[str, object],
        body: Callable[[], tuple[T, dict[str, object]]],
    ) -> Outcome[T]:
        """Run ``body`` (which returns the value and the record's extra fields), auditing
        its outcome either way."""
        try:
            value, extra = body()
        except StrongroomError as exc:
            return self.refused(principal, action, exc, **fields)
        return Outcome(value, None, (self.record(principal, action, **{**fields, **extra}),))

    @staticmethod
    def require(principal: Principal, role: str) -> None:
        if role not in principal.roles:
            raise PermissionDenied(f"this needs the {role} role; ask an administrator")

    def permitted(self, principal: Principal, role: str, action: str) -> Outcome[None]:
        """Whether ``principal`` holds ``role`` for ``action``, before any work: a refusal is
        audited, a permission is not (the operation that follows records itself)."""
        try:
            self.require(principal, role)
        except PermissionDenied as exc:
            return self.refused(principal, action, exc)
        return Outcome(None, None, ())

    @staticmethod
    def scope(principal: Principal, view: View) -> tuple[Scope, Clocks]:
        """The one place a scope is built: groups, both clocks (clamped) and filters."""
        clocks = Clocks.parse(view.as_of, view.known_at, view.published_from)
        now = clocks.now or datetime.now(UTC)
        # a clock at or past now is now: leave it unset, so the store applies its own now
        as_of = clocks.as_of if clocks.as_of is not None and clocks.as_of < now else None
        known_at = clocks.known_at if clocks.known_at is not None and clocks.known_at < now else None
        if len(view.filters) > 32 or len(view.doc_types) > 32:
            raise QueryError("at most 32 filters and 32 document types")
        scope = Scope.for_principal(
            principal,
            as_of=as_of,
            known_at=known_at,
            doc_types=view.doc_types,
            filters=view.filters,
            published_from=clocks.published_from,
        )
        return scope, clocks

    @staticmethod
    def _typed(view: View) -> dict[str, object]:
        """The types and filters a caller typed, as the audit log keeps a query: without secrets."""
        return {
            "doc_types": sorted(_clean(t) for t in view.doc_types),
            "filters": {_clean(k): _clean(v) for k, v in view.filters.items()},
        }

    @staticmethod
    def _filters(
        view: View, typed: dict[str, object], clocks: Clocks | None = None, **more: object
    ) -> dict[str, object]:
        """A record's filters: both clocks (as asked and as applied, once parsed), ``typed``, ``more``."""
        asked = {k: str(getattr(view, k) or "") for k in ("as_of", "known_at", "published_from")}
        return {**(clocks.describe() if clocks else asked), **typed, **more}

    @staticmethod
    def _entitled(principal: Principal, hits: Iterable[Hit]) -> tuple[Hit, ...]:
        out = tuple(hits)
        # the store filtered by entitlement inside the index; this is a second lock on the same door
        if any(not principal.may_read(h.version.acl) for h in out):
            raise StoreError("internal error: the store returned a passage outside the caller's entitlements")
        return out

    def _visible(
        self, principal: Principal, view: View, document_id: str | None = None
    ) -> tuple[dict[str, DocumentView], Clocks]:
        """What ``principal`` sees of every document, or of one (only its versions are read)."""
        scope, clocks = self.scope(principal, view)
        seen = visible_documents(self.store.versions(document_id), scope)
        return {d: DocumentView(d, v.current, v.history) for d, v in seen.items()}, clocks

    # -- reading ---------------------------------------------------------------------------

    def search(
        self, principal: Principal, request: SearchRequest, vector: npt.NDArray[np.float32] | None = None
    ) -> Outcome[SearchResult]:
        """The top ``k`` passages the principal may read at the request's clocks."""
        typed = self._typed(request)
        fields: dict[str, object] = {"query": request.query, "filters": self._filters(request, typed, k=request.k)}

        def body() -> tuple[SearchResult, dict[str, object]]:
            self.require(principal, "reader")
            scope, clocks = self.scope(principal, request)
            fields["filters"] = self._filters(request, typed, clocks, k=request.k)
            found = hybrid_search(
                self.store, self.embedder if vector is None else vector, request.query, scope, request.k
            )
            hits = self._entitled(principal, found)
            return SearchResult(hits, clocks), {"chunks": chunk_refs(hits)}

        return self.run_audited(principal, "search", fields, body)

    def retrieve(
        self,
        principal: Principal,
        request: AskRequest,
        vector: npt.NDArray[np.float32] | None = None,
        *,
        route_allowed: Callable[[str], bool] | None = None,
        action: str = "ask",
    ) -> Outcome[Retrieved]:
        """The first half of an ask: role, route, scope and the passages. Audited only if it
        fails (:meth:`answered` records the whole ask)."""
        typed = self._typed(request)
        route = request.route
        filters = self._filters(request, typed, k=request.k, model=route)
        try:
            self.require(principal, "reader")
            if route is not None and not (route_allowed and route_allowed(route)):
                raise NotFound(
                    f"no model route {route!r} that you may use (GET /v1/models lists yours); "
                    "an administrator grants routes in STRONGROOM_ROUTE_GROUPS"
                )
            scope, clocks = self.scope(principal, request)
            found = hybrid_search(
                self.store, self.embedder if vector is None else vector, request.question, scope, request.k
            )
            hits = self._entitled(principal, found)
        except StrongroomError as exc:
            return self.refused(principal, action, exc, query=request.question, filters=filters)
        filters = self._filters(request, typed, clocks, k=request.k, model=route)
        return Outcome(Retrieved(scope, clocks, hits, filters), None, ())

    def answered(
        self, principal: Principal, request: AskRequest, retrieved: Retrieved, answer: Answer, *, action: str = "ask"
    ) -> Outcome[Answer]:
        """The second half of an ask: the answer checked against the entitlements, and the record
        (model actually used after any failover, prompt template version, answer hash)."""
        filters = retrieved.filters
        try:
            self._entitled(principal, answer.hits)
            cited = {c.version_id for c in answer.citations}
            if not cited <= {h.version.id for h in retrieved.hits}:
                raise StoreError("internal error: the answer cites a version that was not retrieved")
        except StrongroomError as exc:
            return self.refused(principal, action, exc, query=request.question, filters=filters)
        meta = dict(answer.metadata)
        generator = meta.get("deployment") or answer.generator
        record = self.record(
            principal,
            action,
            query=request.question,
            filters={**filters, "answered_by": {k: v for k, v in meta.items() if k != "gateway_error"}},
            chunks=chunk_refs(retrieved.hits),
            generator=generator,
            answer_sha256=answer_hash(answer.text),
            detail="found" if answer.found else "not found",
        )
        return Outcome(answer, None, (record,))

    def documents(self, principal: Principal, request: DocumentsRequest) -> Outcome[list[DocumentView]]:
        """The documents whose current version the principal may read, by source."""

        def body() -> tuple[list[DocumentView], dict[str, object]]:
            self.require(principal, "reader")
            if not 1 <= request.limit <= 1000 or request.offset < 0:
                raise QueryError("limit is 1 to 1000 and offset at least 0")
            seen, clocks = self._visible(principal, request)
            ordered = sorted(seen.values(), key=lambda d: (d.source, d.document_id))
            page = ordered[request.offset : request.offset + request.limit]
            filters = self._filters(request, typed, clocks, limit=request.limit, offset=request.offset)
            return page, {"filters": filters, "detail": f"{len(page)} documents"}

        typed = self._typed(request)
        return self.run_audited(principal, "documents.list", {"filters": self._filters(request, typed)}, body)

    def document(self, principal: Principal, document_id: str, view: View) -> Outcome[DocumentView]:
        """One document and its versions the principal may read (NotFound if none)."""

        def body() -> tuple[DocumentView, dict[str, object]]:
            self.require(principal, "reader")
            seen, clocks = self._visible(principal, view, document_id)
            if document_id not in seen:
                raise NotFound("no such document")
            return seen[document_id], {"filters": self._filters(view, self._typed(view), clocks)}

        return self.run_audited(principal, "documents.get", {"target": document_id}, body)

    def find_document(self, principal: Principal, name: str, view: View) -> Outcome[DocumentView]:
        """The one document ``principal`` may read that ``name`` names: its id, a version's id (or
        a prefix of either, at least 8 characters), its source key or its file name."""

        def body() -> tuple[DocumentView, dict[str, object]]:
            self.require(principal, "reader")
            seen, clocks = self._visible(principal, view)
            exact = [d for d in seen.values() if name in (d.document_id, d.source, d.current.name)]
            found = exact or [
                d
                for d in seen.values()
                if len(name) >= 8 and (d.document_id.startswith(name) or any(v.id.startswith(name) for v in d.versions))
            ]
            if len(found) != 1:
                raise NotFound(
                    f"no document {name!r} that you may read"
                    if not found
                    else f"{name!r} names {len(found)} documents; give a document id"
                )
            return found[0], {"target": found[0].document_id, "filters": self._filters(view, self._typed(view), clocks)}

        return self.run_audited(principal, "documents.find", {"target": name}, body)

    def page(
        self,
        principal: Principal,
        document_id: str,
        version_id: str,
        page: int,
        view: View,
        *,
        action: str = "documents.page",
    ) -> Outcome[PageView]:
        """The text of one page of one version the principal may see at the view's clocks
        (``action``: what the record calls the read, e.g. its image)."""

        def body() -> tuple[PageView, dict[str, object]]:
            self.require(principal, "reader")
            seen, clocks = self._visible(principal, view, document_id)
            doc = seen.get(document_id)
            version = next((v for v in doc.versions if v.id == version_id), None) if doc else None
            # a page outside the version is the same NotFound, and never reaches the store
            # (a number past 64 bits cannot be bound as an SQL integer: it was a 500)
            inside = version is not None and 1 <= page <= version.pages
            text = self.store.page_text(version_id, page) if inside else None
            if version is None or text is None:
                raise NotFound("no such document")
            return PageView(document_id, version, page, text), {
                "filters": self._filters(view, self._typed(view), clocks)
            }

        return self.run_audited(principal, action, {"target": f"{document_id}/{version_id}/{page}"}, body)

    def job(self, principal: Principal, job_id: str) -> Outcome[dict[str, object]]:
        """An ingestion job: for the principal who submitted it, or an admin."""

        def body() -> tuple[dict[str, object], dict[str, object]]:
            self.require(principal, "ingester")
            row = self.store.get_job(job_id)
            request = row.get("request") if row else None
            if row is None or not isinstance(request, dict):
                raise NotFound("no such job")
            if request.get("submitted_by") != principal.name and "admin" not in principal.roles:
                raise NotFound("no such job")
            return row, {}

        return self.run_audited(principal, "jobs.get", {"target": job_id}, body)

    # -- writing ---------------------------------------------------------------------------

    def ingest(
        self,
        principal: Principal,
        request: IngestRequest,
        progress: ProgressFn | None = None,
        *,
        job_id: str | None = None,
        ingest_with: Callable[[EntitledTarget, IngestOptions], IngestReport] | None = None,
    ) -> Outcome[IngestReport]:
        """Ingest files as ``principal``: every write goes through its write entitlements.

        ``ingest_with``: another way to run the pipeline over the entitled target (Ray)."""
        fields: dict[str, object] = {
            "filters": {
                "acl": sorted(request.acl),
                "source": _clean(request.source or "") or None,
                "doc_type": _clean(request.doc_type or "") or None,
            },
            "target": job_id or "",
        }
        targets: list[EntitledTarget] = []

        def body() -> tuple[IngestReport, dict[str, object]]:
            self.require(principal, "ingester")
            if not request.acl:
                raise QueryError("acl: give at least one group")
            files, missing = discover(request.paths)
            if not files and not missing:
                raise IngestError(
                    f"nothing to ingest: {', '.join(str(p) for p in request.paths)} holds no files "
                    f"(supported: {', '.join(sorted(supported_suffixes()))})"
                )
            options = IngestOptions(
                acl=request.acl,
                published=parse_instant(request.published, "published", bare_date="start"),
                doc_type=request.doc_type,
                source=request.source,
                meta=frozen_meta(request.meta),
                max_file_bytes=self.settings.max_file_bytes,
                chunk_tokens=self.settings.chunk_tokens,
                parse_limits=ParseLimits.from_settings(self.settings),
                originals=originals_folder(self.settings.home),
            )
            target = EntitledTarget(self.store, principal, request.acl)
            targets.append(target)
            if ingest_with is not None:
                report = ingest_with(target, options)
            else:
                roots = list(request.roots) if request.roots is not None else None
                report = ingest(
                    list(request.paths), target, self.embedder, options, progress, roots=roots, job_id=job_id
                )
            summary = (
                f"{report.ingested} ingested, {report.duplicates} duplicates, {len(report.failures)} failed"
                f" of {len(report.files)} files"
            )
            versions = tuple((f.document_id, f.version_id) for f in report.files if f.status == "ingested")
            return report, {"target": job_id or report.job_id, "chunks": versions, "detail": summary}

        outcome = self.run_audited(principal, "ingest", fields, body)
        refused = tuple(
            self.record(
                principal,
                "documents.write",
                outcome="denied",
                target=d.document_id,
                detail=f"version {d.version_id}: {d.reason}",
            )
            for target in targets
            for d in target.denials
        )
        return replace(outcome, events=outcome.events + refused)

    def _writable(self, principal: Principal, document_id: str) -> frozenset[str]:
        """The ACL of a document the principal may change (NotFound if it may not)."""
        current = governing(self.store.versions(document_id), principal.groups, time.time())
        if current is None:
            raise NotFound("no such document")
        return current.acl

    def delete(self, principal: Principal, document_id: str) -> Outcome[list[str]]:
        """Delete a document (admins): its pages, chunks, vectors and kept originals go; the record stays.
        A document under legal hold is refused (:class:`~strongroom.errors.DocumentHeld`)."""

        def body() -> tuple[list[str], dict[str, object]]:
            self.require(principal, "admin")
            self._writable(principal, document_id)
            self.not_held(document_id)
            deleted = self.remove_document(document_id)
            return deleted, {"detail": f"versions {','.join(deleted)}"}

        return self.run_audited(principal, "documents.delete", {"target": document_id}, body)

    def not_held(self, document_id: str) -> None:
        """Refuse (:class:`~strongroom.errors.DocumentHeld`, naming the matter) when an active legal
        hold covers any live version of the document."""
        holds = open_hold_store(self.settings)
        try:
            active = holds.active()
        finally:
            holds.close()
        hold = document_hold(active, self.store.versions(document_id)) if active else None
        if hold is not None:
            raise DocumentHeld(
                f"document {document_id} is under legal hold {hold.id} (matter {hold.matter_id}); it cannot be "
                "deleted until the hold is released (`strongroom holds release`)",
                matter_id=hold.matter_id,
                hold_id=hold.id,
            )

    def remove_document(self, document_id: str) -> list[str]:
        """Delete a document's content (no checks: the caller made them) and its kept originals."""
        deleted = self.store.delete_document(document_id)
        for version_id in deleted:  # a version id is one document's: its original goes with it
            remove_original(originals_folder(self.settings.home), version_id)
        return deleted

    def remove_documents(self, document_ids: Iterable[str]) -> dict[str, list[str]]:
        """:meth:`remove_document` for many documents (retention), batched in the store."""
        deleted = self.store.delete_documents(list(document_ids))
        for versions in deleted.values():
            for version_id in versions:
                remove_original(originals_folder(self.settings.home), version_id)
        return deleted

    def four_eyes(self, approved: bool) -> None:
        """With four-eyes approval on, a change that alters who sees what is made only through
        an approved (or break-glass) proposal (:mod:`strongroom.service.approvals`)."""
        if self.settings.four_eyes and not approved:
            raise PermissionDenied(
                "four-eyes approval is on (STRONGROOM_FOUR_EYES): propose this change and have an approver "
                "approve it (`strongroom approvals`)"
            )

    def set_acl(
        self, principal: Principal, document_id: str, acl: frozenset[str], *, approved: bool = False
    ) -> Outcome[AclChange]:
        """Change who may read a document (admins who may read it), recorded with before and after.
        ``approved``: made through an approved four-eyes proposal (required when four-eyes is on)."""
        after = frozenset(g.strip() for g in acl if g.strip())

        def body() -> tuple[AclChange, dict[str, object]]:
            self.require(principal, "admin")
            self.four_eyes(approved)
            if not after:
                raise QueryError("acl: give at least one group")
            before = self._writable(principal, document_id)
            changed = self.store.set_acl(document_id, after)
            versions = self.store.versions(document_id)  # the name of its current version: the latest published
            name = max(enumerate(versions), key=newest)[1].name if versions else document_id
            change = AclChange(document_id, before, after, tuple(changed), name)
            detail = f"acl {','.join(sorted(before))} -> {','.join(sorted(after))}"
            filters = {"before": sorted(before), "after": sorted(after), "versions": list(changed)}
            return change, {"filters": filters, "detail": detail}

        fields: dict[str, object] = {"target": document_id, "filters": {"after": sorted(after)}}
        return self.run_audited(principal, "acl.set", fields, body)

    # -- keys (the rules: :mod:`strongroom.service.key_operations`) ---------------------------

    def create_key(
        self,
        principal: Principal,
        keys: ApiKeyStore,
        owner: str,
        groups: Iterable[str],
        *,
        days: int | None = None,
        expires_at: datetime | None = None,
        no_expiry: bool = False,
        approved: bool = False,
    ) -> Outcome[KeyCreated]:
        """A new API key (admins): only groups the creator holds (or configuration allows), and
        an expiry (default ``key_default_days``, at most ``key_max_days``). Thread-safe. A key
        carries entitlement groups, so with four-eyes on it needs ``approved`` (a proposal). The
        key records the persons behind ``principal`` as its creators (they see its secret):
        applied from an approved proposal, its maker's and its approver's (shown the secret)."""
        members = frozenset(g.strip() for g in groups if g.strip())
        fields: dict[str, object] = {"filters": {"owner": owner, "groups": sorted(members)}}

        def body() -> tuple[KeyCreated, dict[str, object]]:
            self.require(principal, "admin")
            self.four_eyes(approved)
            return new_key(self.settings, principal, keys, owner, members, days, expires_at, no_expiry)

        return self.run_audited(principal, "keys.create", fields, body)

    def revoke_key(self, principal: Principal, keys: ApiKeyStore, key_id: str) -> Outcome[str]:
        """Revoke a key at once (admins). Thread-safe."""

        def body() -> tuple[str, dict[str, object]]:
            self.require(principal, "admin")
            if not keys.revoke(key_id):
                raise NotFound(f"no active key {key_id!r}; see `strongroom keys list`")
            return key_id, {}

        return self.run_audited(principal, "keys.revoke", {"target": key_id}, body)

    def audited(
        self, principal: Principal, action: str, fn: Callable[[], U], *, role: str = "admin", **fields: object
    ) -> Outcome[U]:
        """Run ``fn`` (keys, audit reads, queueing, evaluation) for a principal with ``role``,
        with its record."""

        def body() -> tuple[U, dict[str, object]]:
            self.require(principal, role)
            return fn(), {}

        return self.run_audited(principal, action, dict(fields), body)
