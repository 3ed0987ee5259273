"""Moving a deployment between stores and proving nothing was lost on the way.

:func:`migrate` copies every version (pages, chunks, vectors, ACLs, metadata, both
timestamps) and the audit chain, verbatim; it can run again after an interruption and copies
only what is missing. :func:`content_digest` hashes a store's whole content in a canonical
order, so two stores hold the same content exactly when their digests are equal, whatever
the backend. :func:`check` looks inside one store for what should never happen: a chunk whose
text is not the span of its page it claims, a missing or malformed vector. :func:`reembed`
copies a store into a new one with every chunk embedded by another model, for switching the
embedder while the old store keeps serving.

The operator commands move whole deployments (a store with its audit chain and API keys)
with :mod:`strongroom.service.deployment`, which builds on these.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from strongroom.audit import AuditBackend
from strongroom.store.base import Exportable, NewVersion, Writable

if TYPE_CHECKING:
    from strongroom.embed import Embedder

__all__ = [
    "Digest",
    "MigrationReport",
    "Portable",
    "check",
    "content_digest",
    "migrate",
    "reembed",
    "survey",
]


class Portable(Exportable, Writable, Protocol):
    """A store a deployment moves from and to: read back whole, written version by version."""


@dataclass(frozen=True)
class Digest:
    versions: int
    pages: int
    chunks: int
    vectors: int
    sha256: str


def _version_record(new: NewVersion) -> bytes:
    v = new.version
    return json.dumps(
        {
            "id": v.id,
            "document_id": v.document_id,
            "source": v.source,
            "title": v.title,
            "media_type": v.media_type,
            "doc_type": v.doc_type,
            "acl": sorted(v.acl),
            "published_at": v.published_at.isoformat(),
            "ingested_at": v.ingested_at.isoformat(),
            "size": v.size,
            "pages": v.pages,
            "metadata": dict(sorted(v.metadata.items())),
        },
        sort_keys=True,
    ).encode()


class _Digester:
    """Hashes versions one at a time (any order) and combines them by version id, so memory
    stays one version's worth however big the store is."""

    def __init__(self) -> None:
        self.by_version: list[tuple[str, bytes]] = []
        self.pages = self.chunks = self.vectors = 0

    def add(self, new: NewVersion) -> None:
        h = hashlib.sha256(_version_record(new))
        for page in new.pages:
            h.update(json.dumps([page.number, page.text]).encode())
        for chunk, key in zip(new.chunks, new.embed_keys, strict=True):
            fields = [chunk.id, chunk.ordinal, chunk.page, chunk.char_start, chunk.char_end, chunk.text, chunk.context]
            h.update(json.dumps([*fields, key]).encode())
        h.update(np.ascontiguousarray(new.vectors, dtype="<f4").tobytes())
        self.by_version.append((new.version.id, h.digest()))
        self.pages, self.chunks, self.vectors = (
            self.pages + len(new.pages), self.chunks + len(new.chunks), self.vectors + len(new.vectors)
        )  # fmt: skip

    def digest(self) -> Digest:
        h = hashlib.sha256()
        for version_id, part in sorted(self.by_version):
            h.update(version_id.encode() + part)
        return Digest(len(self.by_version), self.pages, self.chunks, self.vectors, h.hexdigest())


def content_digest(versions: Iterable[NewVersion]) -> Digest:
    """One SHA-256 over every version's record, pages, chunks and vector bytes, by version id."""
    return survey(versions)[0]


def check(versions: Iterable[NewVersion], dim: int) -> list[str]:
    """What is wrong inside a store, one line per problem (none: an empty list)."""
    return survey(versions, dim)[1]


def survey(versions: Iterable[NewVersion], dim: int | None = None) -> tuple[Digest, list[str]]:
    """The content digest and (given the store's ``dim``) the problems, in one pass."""
    digester = _Digester()
    problems: list[str] = []
    for new in versions:
        digester.add(new)
        if dim is not None:
            problems.extend(_problems(new, dim))
    return digester.digest(), problems


def _problems(new: NewVersion, dim: int) -> list[str]:
    v = new.version
    problems: list[str] = []
    pages = {p.number: p.text for p in new.pages}
    if len(pages) != v.pages:
        problems.append(f"{v.source} ({v.id[:12]}): {len(pages)} pages stored, the version says {v.pages}")
    if new.vectors.shape != (len(new.chunks), dim):
        shape = f"({len(new.chunks)}, {dim})"
        return [*problems, f"{v.source} ({v.id[:12]}): vectors of shape {new.vectors.shape}, not {shape}"]
    for chunk, vector in zip(new.chunks, new.vectors, strict=True):
        where = f"{v.source} ({v.id[:12]}) chunk {chunk.id[:12]}"
        if pages.get(chunk.page, "")[chunk.char_start : chunk.char_end] != chunk.text:
            problems.append(f"{where}: its text is not page {chunk.page}[{chunk.char_start}:{chunk.char_end}]")
        if not np.all(np.isfinite(vector)):
            problems.append(f"{where}: no vector, or one that is not finite")
    return problems


@dataclass
class MigrationReport:
    copied: int = 0
    already_there: int = 0
    audit_records: int = 0
    problems: list[str] = field(default_factory=list)
    source_digest: Digest | None = None  # taken while copying: compare it with the target's


def _copy_missing(
    source: Portable,
    target: Portable,
    report: MigrationReport,
    *,
    convert: Callable[[NewVersion], NewVersion] | None = None,
    progress: Callable[[str], None] | None = None,
) -> None:
    """Write each version of ``source`` that ``target`` lacks (through ``convert``), counting
    into ``report``, and take the source's content digest in the same pass. A target that
    writes in bulk (``write_many``: PostgreSQL) gets the versions as one stream."""
    digester = _Digester()
    offered = 0

    def missing() -> Iterator[NewVersion]:
        nonlocal offered
        for new in source.iter_versions():
            digester.add(new)
            if progress:
                progress(new.version.name)
            if target.has_version(new.version.id):
                report.already_there += 1
            else:
                offered += 1
                yield convert(new) if convert else new

    write_many: Callable[[Iterable[NewVersion]], int] | None = getattr(target, "write_many", None)
    if write_many is not None:
        written = write_many(missing())
        report.copied += written
        report.already_there += offered - written
    else:
        for new in missing():
            if target.write(new):
                report.copied += 1
            else:
                report.already_there += 1
    report.source_digest = digester.digest()


def migrate(
    source: Portable,
    target: Portable,
    *,
    source_audit: AuditBackend | None = None,
    target_audit: AuditBackend | None = None,
    progress: Callable[[str], None] | None = None,
) -> MigrationReport:
    """Copy every version of ``source`` missing from ``target``, then the audit chain; the
    source's content digest is taken in the same pass."""
    report = MigrationReport()
    if (source.model_id, source.dim) != (target.model_id, target.dim):
        report.problems.append(
            f"the stores hold different embedders ({source.model_id}/{source.dim} vs {target.model_id}/{target.dim}); "
            "open the target with the source's embedder"
        )
        return report
    _copy_missing(source, target, report, progress=progress)
    if source_audit is not None and target_audit is not None:
        report.audit_records = target_audit.adopt(source_audit.chain())
    return report


def reembed(
    source: Portable,
    target: Portable,
    embedder: Embedder,
    *,
    progress: Callable[[str], None] | None = None,
) -> MigrationReport:
    """Copy every version of ``source`` missing from ``target`` with its chunks embedded
    anew by ``embedder`` (the target's model); pages, chunks, ACLs and metadata unchanged.
    Run it again to bring over what was ingested meanwhile."""
    from strongroom.embed import cache_key
    from strongroom.text import dense_text

    report = MigrationReport()
    if (target.model_id, target.dim) != (embedder.model_id, embedder.dim):
        report.problems.append(f"the target store holds {target.model_id}/{target.dim}, not {embedder.model_id}")
        return report

    def embedded_anew(new: NewVersion) -> NewVersion:
        texts = [dense_text(c) for c in new.chunks]
        vectors = embedder.embed(texts) if texts else np.zeros((0, embedder.dim), np.float32)
        keys = tuple(cache_key(embedder.model_id, t) for t in texts)
        return NewVersion(new.version, new.pages, new.chunks, vectors, keys)

    _copy_missing(source, target, report, convert=embedded_anew, progress=progress)
    return report
