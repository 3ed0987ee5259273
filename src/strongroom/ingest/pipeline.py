"""The ingestion pipeline: files -> parse -> chunk -> embed -> one atomic write per version.

Idempotent (a version is the SHA-256 of its bytes; known bytes are skipped before any
work), atomic per version (the store writes a version in one transaction) and so
resumable: after a crash, the same command again skips what was stored and does the rest.
A bad file never stops the batch: it is reported with a reason and the batch goes on.

With ``IngestOptions.originals`` (the platform passes ``HOME/originals``), the original
bytes of each new version are kept there, named by their SHA-256 (see
:mod:`strongroom.ingest.originals`), so a cited page can be shown as it looks. A version
whose text had sensitive data redacted keeps no original: the file still holds what was
redacted. Erasure (a later issue) must reach that folder as well as the store.

>>> report = ingest([Path("filings/")], store, embedder, IngestOptions())  # doctest: +SKIP
>>> report.ok, report.chunks
(True, 3120)
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from strongroom.config import DEFAULT_ACL
from strongroom.embed import CachedEmbedder, Embedder, cache_key
from strongroom.errors import IngestError, StoreError, TooLarge, UnsupportedFormat
from strongroom.ingest.chunking import chunk_pages, make_chunks
from strongroom.ingest.describe import describe
from strongroom.ingest.originals import keep_original, remove_original
from strongroom.ingest.parsers import parser_version, supported_suffixes
from strongroom.ingest.sandbox import ParseLimits, parse_bounded
from strongroom.ingest.understand import Policy, understand
from strongroom.ingest.understand.redaction import redact_name, redact_source
from strongroom.store.base import NewVersion, Writable
from strongroom.text import dense_text
from strongroom.types import DocumentVersion, document_id_for, frozen_meta, sha256_hex, utcnow

__all__ = [
    "FileResult",
    "IngestOptions",
    "IngestReport",
    "discover",
    "ingest",
    "prepare_version",
    "write_version",
]

Stage = Literal["read", "parse", "understand", "chunk", "embed", "index"]
STAGES: tuple[Stage, ...] = ("read", "parse", "understand", "chunk", "embed", "index")


@dataclass(frozen=True)
class IngestOptions:
    """Per-batch settings. ``acl`` defaults to the documented public group."""

    acl: frozenset[str] = frozenset({DEFAULT_ACL})
    published: datetime | None = None
    doc_type: str | None = None
    source: str | None = None
    meta: Mapping[str, str] = field(default_factory=frozen_meta)
    max_file_bytes: int = 200 * 1024 * 1024
    chunk_tokens: int = 400
    policy: Policy = field(default_factory=Policy)
    parse_limits: ParseLimits = field(default_factory=ParseLimits)  # time, memory, zip expansion
    originals: Path | None = None  # where to keep each new version's original bytes (None: not kept)
    job_id: str | None = None  # the job writing the versions, kept in their metadata (lineage)


@dataclass
class FileResult:
    path: str
    status: Literal["ingested", "duplicate", "failed"]
    version_id: str = ""
    pages: int = 0
    chunks: int = 0
    error: str = ""
    document_id: str = ""

    def job_entry(self, private: Path) -> dict[str, object]:
        """This outcome as a job report shows it: by file name, with the folder the file
        waited in (``private``, an upload's temporary copy) hidden from error messages."""
        name = Path(self.path).name
        redacted = redact_name(name)[0]
        return {
            "name": redacted,  # the job record keeps no secret a file name held
            "status": self.status,
            "version_id": self.version_id,
            "document_id": self.document_id,
            "pages": self.pages,
            "chunks": self.chunks,
            "error": self.error.replace(str(private), "<upload>").replace(name, redacted),
        }


@dataclass
class IngestReport:
    job_id: str
    files: list[FileResult] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    wall_seconds: float = 0.0
    embedded: int = 0
    embed_cache_hits: int = 0

    def _count(self, status: str) -> int:
        return sum(f.status == status for f in self.files)

    @property
    def ingested(self) -> int:
        return self._count("ingested")

    @property
    def duplicates(self) -> int:
        return self._count("duplicate")

    @property
    def failures(self) -> list[FileResult]:
        return [f for f in self.files if f.status == "failed"]

    @property
    def pages(self) -> int:
        return sum(f.pages for f in self.files if f.status == "ingested")

    @property
    def chunks(self) -> int:
        return sum(f.chunks for f in self.files if f.status == "ingested")

    @property
    def ok(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict[str, object]:
        return {
            "job_id": self.job_id,
            "files": len(self.files),
            "ingested": self.ingested,
            "duplicates": self.duplicates,
            "failed": len(self.failures),
            "pages": self.pages,
            "chunks": self.chunks,
            "embedded": self.embedded,
            "embed_cache_hits": self.embed_cache_hits,
            "wall_seconds": round(self.wall_seconds, 3),
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "failures": [asdict(f) for f in self.failures],
        }


def discover(paths: Iterable[Path]) -> tuple[list[Path], list[FileResult]]:
    """Files under the given paths (folders recursively, hidden files skipped), and misses."""
    found: list[Path] = []
    missing: list[FileResult] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                sorted(p for p in path.rglob("*") if p.is_file() and not any(x.startswith(".") for x in p.parts[-1:]))
            )
        elif path.is_file():
            found.append(path)
        else:
            missing.append(FileResult(_shown(path), "failed", error="no such file or folder; check the path"))
    unnamed = [p for p in found if _shown(p) != str(p)]
    missing += [FileResult(_shown(p), "failed", error="the file name is not valid UTF-8; rename it") for p in unnamed]
    return [p for p in found if p not in unnamed], missing


def _shown(path: Path) -> str:
    """The path as text; bytes of a name that are not UTF-8 as ``\\xff`` escapes."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _source_key(path: Path, options: IngestOptions, roots: Sequence[Path]) -> str:
    """The document's key, with any secret in the path (a password in a file name) redacted the
    same way every time, so re-ingesting the file still finds its document."""
    resolved = path.resolve()
    key = resolved.as_posix()
    if options.source:
        key = f"{options.source}/{path.name}"
        for root in roots:
            root = root.resolve()
            if root.is_dir() and resolved.is_relative_to(root):
                key = f"{options.source}/{resolved.relative_to(root).as_posix()}"
                break
    return redact_source(key, options.policy)


ProgressFn = Callable[[str, int], None]


def ingest(
    paths: Sequence[Path],
    store: Writable,
    embedder: Embedder,
    options: IngestOptions,
    progress: ProgressFn | None = None,
    *,
    roots: Sequence[Path] | None = None,
    job_id: str | None = None,
) -> IngestReport:
    """Ingest files and folders. ``progress(file_name, pages_done)`` is called per file.

    ``roots``: the folders that ``--source`` keys are relative to (default: ``paths``), so a
    file queued alone by a worker gets the same document key as in its folder's batch.
    """
    started = time.perf_counter()
    report = IngestReport(job_id=job_id or uuid.uuid4().hex)
    if options.job_id is None:
        options = replace(options, job_id=report.job_id)
    files, missing = discover(paths)
    report.files.extend(missing)
    cached = CachedEmbedder(embedder, store)
    for path in files:
        result = _ingest_one(path, store, cached, options, roots if roots is not None else paths, report)
        report.files.append(result)
        if progress:
            progress(path.name, result.pages)
    report.embedded, report.embed_cache_hits = cached.misses, cached.hits
    report.wall_seconds = time.perf_counter() - started
    return report


def _ingest_one(
    path: Path,
    store: Writable,
    embedder: CachedEmbedder,
    options: IngestOptions,
    roots: Sequence[Path],
    report: IngestReport,
) -> FileResult:
    prepared = prepare_version(path, store, embedder, options, roots, report.seconds)
    if isinstance(prepared, FileResult):
        return prepared
    return write_version(store, path, prepared, report.seconds, originals=options.originals)


def write_version(
    store: Writable, path: Path, new: NewVersion, seconds: dict[str, float], *, originals: Path | None = None
) -> FileResult:
    """Store a prepared version atomically; a version someone stored meanwhile is a duplicate.

    ``originals``: keep the file's bytes there first (unless its text was redacted), so a
    stored version always has its original; one the store then refuses is removed again.
    """
    started = time.perf_counter()
    v = new.version
    kept = False
    try:
        if originals is not None and "redacted" not in v.metadata:
            kept = keep_original(originals, path, v.id)
    except (IngestError, StoreError) as exc:  # the file changed meanwhile, a full disk: this file only
        seconds["index"] += time.perf_counter() - started
        return FileResult(str(path), "failed", v.id, error=str(exc), document_id=v.document_id)
    try:
        written = store.write(new)
    except IngestError as exc:  # a write the target refused (e.g. not entitled): this file only
        if kept and originals is not None:
            remove_original(originals, v.id)
        return FileResult(str(path), "failed", v.id, error=str(exc), document_id=v.document_id)
    finally:
        seconds["index"] += time.perf_counter() - started
    if not written:  # another process stored the same bytes meanwhile
        return FileResult(str(path), "duplicate", v.id, document_id=v.document_id)
    return FileResult(str(path), "ingested", v.id, len(new.pages), len(new.chunks), document_id=v.document_id)


def prepare_version(
    path: Path,
    store: Writable | None,
    embedder: Embedder,
    options: IngestOptions,
    roots: Sequence[Path],
    seconds: dict[str, float],
) -> NewVersion | FileResult:
    """Everything up to the write: read, parse, understand, chunk, embed. A FileResult when
    the file is a duplicate (``store`` already holds its bytes) or cannot be ingested.

    Pure apart from reading ``path`` and asking ``store`` (if given) for known versions, so
    it can run in another process (see :mod:`strongroom.ingest.distributed`).
    """
    clock = time.perf_counter()

    def lap(stage: Stage) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] += now - clock
        clock = now

    try:
        if path.suffix.lower() not in supported_suffixes():
            raise UnsupportedFormat(
                f"unsupported file type {path.suffix or '(none)'}; supported: {', '.join(sorted(supported_suffixes()))}"
            )
        size = path.stat().st_size
        if size > options.max_file_bytes:
            raise TooLarge(
                f"{size:,} bytes is over the {options.max_file_bytes:,}-byte limit; "
                "raise STRONGROOM_MAX_FILE_BYTES or split the file"
            )
        data = path.read_bytes()
        version_id = sha256_hex(data)
        lap("read")
        source = _source_key(path, options, roots)
        document_id = document_id_for(source)
        if store is not None and store.has_version(version_id):
            return FileResult(str(path), "duplicate", version_id, document_id=document_id)
        parsed = parse_bounded(data, path.name, options.parse_limits)  # a child process under limits
        lap("parse")
        understood = understand(parsed, path.name, options.policy, meta=options.meta)  # DocumentRejected: IngestError
        parsed = understood.parsed(parsed)  # redacted pages, title, metadata: nothing below sees a redacted secret
        lap("understand")
        title = describe(parsed, understood.name)  # the file name with its secrets redacted
        spans = chunk_pages(parsed.pages, options.chunk_tokens)
        if not spans:
            raise IngestError("no text to index after chunking; is the document empty?")
        chunks = make_chunks(version_id, parsed.pages, spans, title)
        lap("chunk")
        embed_texts = [dense_text(c) for c in chunks]
        keys = tuple(cache_key(embedder.model_id, t) for t in embed_texts)
        vectors = embedder.embed(embed_texts)
        lap("embed")
        meta = dict(parsed.metadata) | understood.metadata() | dict(understood.user_metadata)
        if options.source:
            meta["source"] = redact_source(options.source, options.policy)
        # lineage: what wrote this version, set last so no metadata a caller gives can stand in for it
        meta["parser"] = parser_version(path.name)
        if options.job_id:
            meta["ingest_job"] = options.job_id
        published = options.published or parsed.published_at or datetime.fromtimestamp(path.stat().st_mtime, UTC)
        version = DocumentVersion(
            id=version_id,
            document_id=document_id,
            source=source,
            title=title,
            media_type=parsed.media_type,
            doc_type=options.doc_type or understood.doc_type,
            acl=understood.acl(options.acl),
            published_at=published,
            ingested_at=utcnow(),
            size=len(data),
            pages=len(parsed.pages),
            metadata=frozen_meta(meta),
        )
        return NewVersion(version, parsed.pages, chunks, vectors, keys)
    except IngestError as exc:  # parsers name the file: the reason shows it with its secrets redacted
        reason = str(exc).replace(path.name, redact_name(path.name, options.policy)[0])
        return FileResult(str(path), "failed", error=reason)
    except OSError as exc:
        return FileResult(str(path), "failed", error=f"cannot read the file: {exc.strerror or exc}; check permissions")
