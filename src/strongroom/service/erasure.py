"""Erasure that reaches every copy, and the proof of it: ``erase`` and ``verify``.

``erase(principal, identifier=..., reason=...)`` removes every occurrence of an identifier (a
customer's name, an account number; the forms :class:`~strongroom.governance.erasure.Needles`
matches) from everything the platform keeps:

==================  ==========================================================================
the store           version rows (title, source, metadata: term-sheet fields, classification),
                    document rows, pages, chunks (new spans; re-embedded, see below), the job
                    log; the keyword and vector indexes and their snapshot files under
                    ``HOME/index`` are dropped and rebuilt (SQLite) or their postings and BM25
                    statistics rewritten (PostgreSQL)
originals           the kept original of every version whose content changed is deleted (a PDF
                    cannot be rewritten safely), and the version's metadata says
                    ``original: erased``; any other file under ``HOME/originals`` or
                    ``HOME/uploads`` that holds it is deleted
the audit log       each record whose erasable part holds it is erased (format 3: the text
                    and salt go, the hashes stay, the chain still verifies)
application rows    conversations, agent runs and their LangGraph checkpoints, proposals, web
                    sessions, SQLite bus files, datasets (:mod:`strongroom.service.erasure_rows`)
the files           SQLite with ``secure_delete``, then ``VACUUM`` and the WAL truncated;
                    PostgreSQL's touched tables vacuumed (the best SQL can do: its WAL and
                    backups age out with the server's retention)
==================  ==========================================================================

Re-embedding, not deleting vectors: a chunk whose text changed gets the vector of its scrubbed
text (the store's own embedder) and the cache row keyed by a hash of the old text is deleted.
That is the safer of the two: a vector computed from the old text is a derived copy of it
(embeddings can be inverted to approximate text), and a chunk with no vector would drop out of
one index (and of the embedded store's keyword index, which is built over the same rows).

A document held by an active legal hold (:mod:`strongroom.governance.holds`) is neither
deleted nor altered: it is left as it is and named in the report (``held``). ``erase(principal,
document_id=...)`` erases a whole document (refused while it is held): it is deleted from
every index, its originals go (and any upload whose SHA-256 is one of its version ids), and its
version rows keep only that something was there. Its copies go too
(:class:`~strongroom.service.erasure_rows.DocumentText`): quotes of its text, its names, and the
quote and title of every citation of it, in the application rows; the checkpoints of runs that
cite it; the erasable part of the audit records that cite or quote it. Its erasure record keeps
its version ids, their page counts and its chunk ids (no text), and ``verify(principal,
erasure_id)`` checks by them: pages and chunks left in the store, originals and uploads, rows
and checkpoints citing them with text, audit records citing them with an erasable part.

The ``erasure.erase`` audit record holds the erasure id, a keyed hash (HMAC-SHA256 under the
query key) of the normalised identifier, the counts and the reason with the identifier scrubbed
out of it; never the identifier. So ``verify(principal, erasure_id, identifier)`` needs the
identifier again, checks it against that hash (a wrong one is refused), and searches: every
store's own rows, every file under the home as raw bytes (SQLite main files and ``-wal``
files, DuckDB, JSON lines, index snapshots; gzip, zstd and zip/npz members decompressed, numpy
string arrays decoded: :mod:`strongroom.service.erasure_files`), and, with a PostgreSQL store,
every text, JSON and bytea column of every table in every schema of its database
(:mod:`strongroom.service.erasure_postgres`). Zero everywhere is the proof.

Who may: ``admin`` (the role that may delete documents; erasing is a deletion). An identifier
erasure reaches every document whatever the admin's groups (it reports counts, never text); a
document erasure only one the admin may read, as a deletion. Both are audited. Every step is
idempotent: an erasure that fails part-way is recorded as an error and is simply run again.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from strongroom.audit import AuditLog
from strongroom.config import Settings
from strongroom.embed import Embedder, Vectors, cache_key
from strongroom.errors import NotErasable, NotFound, PermissionDenied, QueryError, StoreError
from strongroom.governance.erasure import ErasurePlan, ErasureReport, Needles, VerifyReport, identifier_digest
from strongroom.governance.holds import Hold, document_hold
from strongroom.ingest.originals import originals_folder, remove_original
from strongroom.service.erasure_files import count_in_bytes, count_in_file, file_counts, files, search_files, sha256
from strongroom.service.hold_store import open_hold_store
from strongroom.service.operations import Operations, Outcome
from strongroom.service.records import load_secret
from strongroom.service.visibility import governing
from strongroom.store.base import Erasable, Exportable, Reembed
from strongroom.text import dense_text
from strongroom.types import Chunk, DocumentVersion, Principal, source_name

__all__ = [
    "ACTION",
    "VERIFY_ACTION",
    "ErasureEntry",
    "Erasures",
    "count_in_bytes",
    "count_in_file",
    "done",
    "search_files",
]

T = TypeVar("T")


def done(audit: AuditLog, outcome: Outcome[T]) -> T:
    """The outcome's value (or error, raised) once its audit records are written."""
    if outcome.events:
        audit.append_many(list(outcome.events))
    return outcome.result()


ACTION = "erasure.erase"
VERIFY_ACTION = "erasure.verify"
_MAX_REASON = 500
_ENTRY_FIELDS = ("identifier_hmac", "document_id", "versions", "chunk_ids")


@dataclass(frozen=True)
class ErasureEntry:
    """An erasure as the audit log keeps it (``strongroom erasure list``)."""

    erasure_id: str
    at: str
    principal: str
    identifier_hmac: str
    document_id: str
    counts: dict[str, object]
    #: a document erasure's version ids (their page counts) and chunk ids: what verify checks
    versions: dict[str, int] = field(default_factory=dict)
    chunk_ids: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {
            "erasure_id": self.erasure_id,
            "at": self.at,
            "principal": self.principal,
            "identifier_hmac": self.identifier_hmac,
            "document_id": self.document_id,
            "counts": self.counts,
            "versions": sorted(self.versions),
        }


class Erasures:
    """Erase and verify over one platform's store, audit log and home. Not thread-safe."""

    def __init__(self, ops: Operations, audit: AuditLog) -> None:
        self.ops = ops
        self.audit = audit
        self.settings: Settings = ops.settings

    # -- erase -------------------------------------------------------------------------------

    def erase(
        self, principal: Principal, *, identifier: str = "", document_id: str = "", reason: str
    ) -> Outcome[ErasureReport]:
        """Erase every occurrence of ``identifier``, or the whole document ``document_id``."""
        erasure_id = uuid.uuid4().hex
        needles: Needles | None = None
        fields: dict[str, object] = {"target": erasure_id}

        def body() -> tuple[ErasureReport, dict[str, object]]:
            nonlocal needles
            self.ops.require(principal, "admin")
            if bool(identifier.strip()) == bool(document_id.strip()):
                raise QueryError("give an identifier to erase or a document id, one of the two")
            if not reason.strip():
                raise QueryError("give the reason for the erasure (e.g. the data subject's request reference)")
            if len(reason) > _MAX_REASON:
                raise QueryError(f"the reason is at most {_MAX_REASON} characters")
            needles = Needles.of(identifier) if identifier.strip() else None
            plan = ErasurePlan(
                erasure_id=erasure_id,
                identifier_hmac=identifier_digest(identifier, self._key()) if needles else "",
                document_id=document_id.strip(),
                reason=needles.scrub(reason.strip()) if needles else reason.strip(),
                requested_by=principal.name,
                requested_at=datetime.now(UTC),
            )
            kept: dict[str, object] = {}
            if needles is not None:
                report = self._erase_identifier(plan, needles)
            else:
                report, kept = self._erase_document(principal, plan)
            return report, {"filters": {**_record_filters(report), **kept}, "detail": plan.reason}

        outcome = self.ops.run_audited(principal, ACTION, fields, body)
        if needles is not None and outcome.error is not None:  # a refusal's detail never names it
            safe = needles
            outcome = Outcome(
                None,
                outcome.error,
                tuple(replace(e, detail=safe.scrub(e.detail)) for e in outcome.events),
            )
        return outcome

    def _key(self) -> bytes:
        return load_secret(self.settings.query_hash_key_path)

    def _holds(self) -> list[Hold]:
        store = open_hold_store(self.settings)
        try:
            return store.active()
        finally:
            store.close()

    def _held_documents(self) -> set[str]:
        holds = self._holds()
        if not holds:
            return set()
        by_document: dict[str, list[DocumentVersion]] = {}
        for version in self.ops.store.versions():
            by_document.setdefault(version.document_id, []).append(version)
        return {d for d, versions in by_document.items() if document_hold(holds, versions) is not None}

    def _reembed(self) -> Reembed:
        embedder: Embedder = self.ops.embedder

        def reembed(chunks: Sequence[Chunk]) -> tuple[list[str], Vectors]:
            texts = [dense_text(c) for c in chunks]
            return [cache_key(embedder.model_id, t) for t in texts], embedder.embed(texts)

        return reembed

    def _erase_identifier(self, plan: ErasurePlan, needles: Needles) -> ErasureReport:
        store = self.ops.store
        if not isinstance(store, Erasable):
            raise StoreError("this store cannot erase text; use the SQLite or PostgreSQL store")
        keep = self._held_documents()
        found: dict[str, int] = {f"store.{k}": v for k, v in store.find_text(needles).items()}
        erased: dict[str, int] = {}
        count = store.erase_text(needles, self._reembed(), keep=keep)
        erased.update({f"store.{k}": v for k, v in count.places.items()})
        held_versions = {v.id for v in store.versions() if v.document_id in keep}
        originals = originals_folder(self.settings.home)
        removed = 0
        for version_id in count.versions:
            if version_id not in held_versions and (originals / version_id).is_file():
                remove_original(originals, version_id)
                removed += 1
        removed += _remove_files(originals, needles, keep_names=held_versions)
        erased["uploads"] = _remove_files(self.settings.home / "uploads", needles)
        rows = _rows()
        found.update({f"rows.{k}": v for k, v in rows.find_rows(self.settings, needles).items()})
        erased.update({f"rows.{k}": v for k, v in rows.erase_rows(self.settings, needles).items()})
        pending: list[str] = []
        audit_found, audit_erased, legacy = self._erase_audit(needles)
        found["audit"] = audit_found
        erased["audit"] = audit_erased
        if legacy:
            pending.append(f"audit: {legacy} records of format 1/2 hold it and cannot be erased")
        store.reclaim()
        held = tuple(sorted(count.held))
        if not held:  # what no step above reaches (a training set under models/, a copy someone left)
            left = [f"file:{p} still holds it" for p, n in search_files(self.settings.home, needles) if n != 0]
            pending.extend(left)
        return ErasureReport(plan, found, erased, held=held, originals_removed=removed, pending=tuple(pending))

    def _erase_audit(self, needles: Needles) -> tuple[int, int, int]:
        """(records found, erased, legacy left) in the audit log."""
        seqs = _audit_seqs(self.audit, needles)
        if not seqs:
            return 0, 0, 0
        erase = getattr(self.audit, "erase", None)
        if erase is None:
            return len(seqs), 0, len(seqs)
        try:
            erased = erase(seqs)
        except NotErasable as exc:  # format 1/2 records: their hash covers their text
            legacy = set(exc.legacy)
            rest = [s for s in seqs if s not in legacy]
            erased = erase(rest) if rest else []
            return len(seqs), len(erased), len(legacy)
        return len(seqs), len(erased), 0

    def _erase_document(self, principal: Principal, plan: ErasurePlan) -> tuple[ErasureReport, dict[str, object]]:
        store = self.ops.store
        if not isinstance(store, Erasable):
            raise StoreError("this store cannot erase documents; use the SQLite or PostgreSQL store")
        versions = store.versions(plan.document_id)
        if governing(versions, principal.groups, time.time()) is None:
            raise NotFound("no such document")  # as for a deletion: one the admin may not read is not there
        self.ops.not_held(plan.document_id)  # DocumentHeld, naming the matter
        document = self._document_text(versions)
        rows = _rows()
        found: dict[str, int] = {"store.versions": len(versions)}
        found.update({f"rows.{k}": v for k, v in rows.find_document_rows(self.settings, document).items()})
        # the copies first: should the store's deletion fail, the erasure is run again and
        # finds the document (and its text) where it was
        erased = {f"rows.{k}": v for k, v in rows.erase_document_rows(self.settings, document).items()}
        audit_found, audit_erased, legacy = self._erase_document_audit(document)
        found["audit"], erased["audit"] = audit_found, audit_erased
        ids = store.erase_document(plan.document_id)
        erased["store.versions"] = len(ids)
        originals = originals_folder(self.settings.home)
        removed = 0
        for version_id in document.version_ids:
            if (originals / version_id).is_file():
                remove_original(originals, version_id)
                removed += 1
        erased["uploads"] = _remove_copies(self.settings.home / "uploads", document)
        store.reclaim()
        pending = [f"audit: {legacy} records of format 1/2 cite it and cannot be erased"] if legacy else []
        report = ErasureReport(plan, found, erased, originals_removed=removed, pending=tuple(pending))
        # what verify needs, none of it text: the version ids (and their page counts) and chunk ids
        kept: dict[str, object] = {
            "versions": {v.id: v.pages for v in versions},
            "chunk_ids": sorted(document.chunk_ids),
        }
        return report, kept

    def _document_text(self, versions: Sequence[DocumentVersion]) -> Any:
        """The document's :class:`~strongroom.service.erasure_rows.DocumentText`: its version and
        chunk ids, its pages' text (each chunk is a span of a page) and its names."""
        store = self.ops.store
        ids = {v.id for v in versions}
        texts: list[str] = []
        for version in versions:
            for page in range(1, version.pages + 1):
                text = store.page_text(version.id, page)
                if text:
                    texts.append(text)
        chunk_ids: set[str] = set()
        if isinstance(store, Exportable):  # one pass over the store: no backend lists a version's chunks
            for stored in store.iter_versions():
                if stored.version.id in ids:
                    chunk_ids.update(c.id for c in stored.chunks)
                    texts.extend(c.text for c in stored.chunks)
        names: list[str] = []
        for version in versions:
            names += [version.title, version.source, source_name(version.source)]
        return _rows().DocumentText(ids, chunk_ids, texts, names)

    def _erase_document_audit(self, document: Any) -> tuple[int, int, int]:
        """(records found, erased, legacy left): those that cite the document (see
        :func:`_document_seqs`) lose their erasable part."""
        seqs, legacy = _document_seqs(self.audit, document)
        erase = getattr(self.audit, "erase", None)
        if erase is None:
            return len(seqs) + len(legacy), 0, len(seqs) + len(legacy)
        erased = erase(seqs) if seqs else []
        return len(seqs) + len(legacy), len(erased), len(legacy)

    # -- verify ------------------------------------------------------------------------------

    def entries(self) -> Iterator[ErasureEntry]:
        """Every erasure that was carried out, oldest first, as the audit log records it."""
        for record in self.audit.read():
            event = record.event()
            if event.get("action") != ACTION or event.get("outcome") != "ok":
                continue
            filters = event.get("filters")
            filters = filters if isinstance(filters, dict) else {}
            versions = filters.get("versions")
            chunk_ids = filters.get("chunk_ids")
            yield ErasureEntry(
                erasure_id=str(event.get("target", "")),
                at=record.at,
                principal=str(event.get("principal", "")),
                identifier_hmac=str(filters.get("identifier_hmac", "")),
                document_id=str(filters.get("document_id", "")),
                counts={k: v for k, v in filters.items() if k not in _ENTRY_FIELDS},
                versions={str(k): int(v) for k, v in versions.items()} if isinstance(versions, dict) else {},
                chunk_ids=tuple(str(c) for c in chunk_ids) if isinstance(chunk_ids, list) else (),
            )

    def listed(self, principal: Principal) -> Outcome[list[dict[str, object]]]:
        """Every erasure (admins), without identifiers: there are none to show."""
        return self.ops.audited(principal, "erasure.list", lambda: [e.as_dict() for e in self.entries()])

    def verify(self, principal: Principal, erasure_id: str, identifier: str = "") -> Outcome[VerifyReport]:
        """Search every store and file for the identifier erasure ``erasure_id`` erased (given
        again); for a document erasure, every place for a copy of the document (no identifier)."""
        fields: dict[str, object] = {"target": erasure_id}

        def body() -> tuple[VerifyReport, dict[str, object]]:
            self.ops.require(principal, "admin")
            entry = next((e for e in self.entries() if e.erasure_id == erasure_id), None)
            if entry is None or not (entry.identifier_hmac or entry.versions):
                raise NotFound(f"no erasure with id {erasure_id!r}; see `strongroom erasure list`")
            if not entry.identifier_hmac:
                report = self._search_document(erasure_id, entry)
                return report, {"filters": {"proven": report.proven, "found": dict(report.found)}}
            if not identifier.strip():
                raise QueryError("give the erased identifier again: only its keyed hash was kept")
            needles = Needles.of(identifier)
            if identifier_digest(identifier, self._key()) != entry.identifier_hmac:
                raise PermissionDenied("that is not the identifier this erasure erased (its keyed hash differs)")
            report = self._search(erasure_id, needles)
            return report, {"filters": {"proven": report.proven, "found": dict(report.found)}}

        return self.ops.run_audited(principal, VERIFY_ACTION, fields, body)

    def _search(self, erasure_id: str, needles: Needles) -> VerifyReport:
        found: dict[str, int] = {}
        searched = 0
        store = self.ops.store
        if isinstance(store, Erasable):
            for place, n in store.find_text(needles).items():
                found[f"store.{place}"] = n
                searched += 1
        for place, n in _rows().find_rows(self.settings, needles).items():
            found[f"rows.{place}"] = n
            searched += 1
        found["audit"] = len(_audit_seqs(self.audit, needles))
        searched += 1
        unsearched: list[str] = []
        for path, count in search_files(self.settings.home, needles):
            if count is None:
                unsearched.append(f"file:{path}")
            else:
                found[f"file:{path}"] = count
                searched += 1
        url = getattr(store, "url", None)
        if self.settings.store_url and isinstance(url, str):
            from strongroom.service.erasure_postgres import search_database

            for place, n in search_database(url, needles):
                found[f"postgres:{place}"] = n
                searched += 1
        return VerifyReport(erasure_id, found, searched, tuple(unsearched))

    def _search_document(self, erasure_id: str, entry: ErasureEntry) -> VerifyReport:
        """Where a copy of an erased document is left, by its ids (its text is gone): pages and
        chunks in the store, originals and uploads (a file whose SHA-256 is a version id), rows
        and checkpoints that cite it with text not erased, audit records that cite it with their
        erasable part still there."""
        store = self.ops.store
        found: dict[str, int] = {
            "store.pages": sum(
                store.page_text(v, n) is not None for v, pages in entry.versions.items() for n in range(1, pages + 1)
            ),
            "store.chunks": len(store.fetch(list(entry.chunk_ids))) if entry.chunk_ids else 0,
            "originals": sum((originals_folder(self.settings.home) / v).exists() for v in entry.versions),
        }
        ids = set(entry.versions)
        for folder in ("originals", "uploads"):
            found[f"{folder}.copies"] = sum(1 for path in files(self.settings.home / folder) if sha256(path) in ids)
        document = _rows().DocumentText(ids, entry.chunk_ids)
        for place, n in _rows().find_document_rows(self.settings, document).items():
            found[f"rows.{place}"] = n
        seqs, legacy = _document_seqs(self.audit, document)
        found["audit"] = len(seqs) + len(legacy)
        return VerifyReport(erasure_id, found, len(found))


def _document_seqs(audit: AuditLog, document: Any) -> tuple[list[int], list[int]]:
    """The audit records that cite an erased document: their stored text names one of its
    version or chunk ids (a record's target, its chunks), or their erasable part quotes or
    names it; (format-3 records whose erasable part is still there, format-1/2 records). The
    erasures' own records are not among them: they keep the ids, which name, not quote."""
    seqs: list[int] = []
    legacy: list[int] = []
    for record in audit.read():
        if record.format >= 3 and record.erasable is None:
            continue
        try:
            action = json.loads(record.body).get("action")
        except (ValueError, AttributeError):
            action = None
        if action in (ACTION, VERIFY_ACTION):
            continue
        data = (record.body + "\x00" + (record.erasable or "")).encode()
        if not document.holds(data):
            continue
        (seqs if record.format >= 3 else legacy).append(record.seq)
    return seqs, legacy


def _remove_copies(folder: Path, document: Any) -> int:
    """Delete the files under ``folder`` that are a version of the document: their SHA-256 is
    one of its version ids (a file that merely quotes it is not deleted: it may be another
    document, sharing a boilerplate paragraph)."""
    removed = 0
    for path in files(folder):
        try:
            if sha256(path) in document.version_ids:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise StoreError(f"cannot erase {path}: {exc.strerror or exc}; delete it by hand") from exc
    return removed


def _rows() -> ModuleType:
    """:mod:`strongroom.service.erasure_rows`, imported when used: it imports the agent's
    modules, which import the HTTP driver, which imports this one."""
    from strongroom.service import erasure_rows

    return erasure_rows


def _record_filters(report: ErasureReport) -> dict[str, object]:
    return {
        "identifier_hmac": report.plan.identifier_hmac,
        "document_id": report.plan.document_id,
        "found": dict(report.found),
        "erased": dict(report.erased),
        "held": list(report.held),
        "originals_removed": report.originals_removed,
        "pending": list(report.pending),
    }


def _audit_seqs(audit: AuditLog, needles: Needles) -> list[int]:
    """Seqs of the audit records that hold the identifier: the log's own search (its forms,
    as substrings) and ours over each record's erasable text (whitespace runs, any case)."""
    from strongroom.audit.log import erasable_text

    seqs: set[int] = set()
    find = getattr(audit, "find_text", None)
    if find is not None:
        seqs.update(find(list(needles.forms)))
    for record in audit.read():
        text = erasable_text(record)
        if text and needles.count(text):
            seqs.add(record.seq)
    return sorted(seqs)


def _remove_files(folder: Path, needles: Needles, *, keep_names: set[str] | frozenset[str] = frozenset()) -> int:
    """Delete the files under ``folder`` that hold the identifier (not those named in ``keep_names``)."""
    removed = 0
    for path, count in file_counts(folder, needles):
        if count is None:
            raise StoreError(f"cannot read {path} to erase from it; check its permissions and erase again")
        if count and path.name not in keep_names:
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise StoreError(f"cannot delete {path}: {exc.strerror or exc}; delete it by hand") from exc
            removed += 1
    return removed
