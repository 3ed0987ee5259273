"""Moving a deployment between stores and proving nothing was lost on the way.

:func:`migrate` copies every version (pages, chunks, vectors, ACLs, metadata, both
timestamps) and the audit chain, verbatim; it can run again after an interruption and copies
only what is missing. :func:`content_digest` hashes a store's whole content in a canonical
order, so two stores hold the same content exactly when their digests are equal, whatever
the backend. :func:`check` looks inside one store for what should never happen: a chunk whose
text is not the span of its page it claims, a missing or malformed vector. :func:`reembed`
copies a store into a new one with every chunk embedded by another model, for switching the
embedder while the old store keeps serving.

The operator commands call the deployment-level jobs at the end (a store with its audit chain
and API keys): :func:`migrate_deployment`, :func:`verify_deployment` and
:func:`reembed_deployment`; each returns a result that says whether it checked out. And
:func:`upgrade_store` brings a PostgreSQL store's schema to this strongroom's revision.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, closing
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from strongroom.audit import AuditBackend, anchor_for, open_audit_log
from strongroom.auth import open_key_store
from strongroom.config import Settings
from strongroom.errors import ConfigError, StrongroomError
from strongroom.store.base import Catalog, Exportable, NewVersion, Writable
from strongroom.store.sqlite import SqliteStore

if TYPE_CHECKING:
    from strongroom.embed import Embedder

__all__ = [
    "Digest",
    "MigrationReport",
    "MigrationResult",
    "Portable",
    "ReembedResult",
    "SchemaUpgrade",
    "StoreCheck",
    "StoreComparison",
    "check",
    "content_digest",
    "migrate",
    "migrate_deployment",
    "reembed",
    "reembed_deployment",
    "survey",
    "upgrade_store",
    "verify_deployment",
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


# -- whole deployments: a store with its audit chain and API keys ----------------------------


class _Checkable(Portable, Protocol):
    def close(self) -> None: ...


def _is_postgres(spec: str) -> bool:
    return spec.startswith(("postgresql://", "postgres://"))


def _at(settings: Settings, home: Path, store_url: str = "") -> Settings:
    """``settings`` for the deployment at ``home`` (its audit anchor and signing key), whose
    audit log and keys are in PostgreSQL at ``store_url`` when given."""
    return settings.model_copy(update={"home": home.expanduser(), "store_url": store_url})


@dataclass(frozen=True)
class MigrationResult:
    """What :func:`migrate_deployment` did. ``audit_chain_ok`` is None where the chain was not
    copied (a PostgreSQL target without a home for it)."""

    report: MigrationReport
    api_keys: int
    same_content: bool
    audit_chain_ok: bool | None

    @property
    def failures(self) -> list[str]:
        """Why the copy does not hold (none: it does)."""
        differs = [] if self.same_content else ["the copy does not hold the same content as the source"]
        broken = ["the copied audit chain does not verify"] if self.audit_chain_ok is False else []
        return [*self.report.problems, *differs, *broken]

    @property
    def ok(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict[str, object]:
        extra = {"api_keys": self.api_keys, "same_content": self.same_content, "audit_chain_ok": self.audit_chain_ok}
        return {**asdict(self.report), **extra}


def migrate_deployment(
    settings: Settings, source: str, target: str, *, audit_home: Path | None = None
) -> MigrationResult:
    """Copy the deployment whose store is at ``source`` (a folder or ``sqlite:///folder``) to
    ``target`` (a folder or ``sqlite:///folder``, created, or a PostgreSQL URL), then check that
    both hold the same content. The audit chain and API keys come along where the target has a
    home: a folder is its own; a PostgreSQL target's is ``audit_home`` (its anchor and signing
    key). Safe to run again: it copies what is missing.

        result = migrate_deployment(Settings(), "/srv/pilot", "postgresql://sr@db/sr", audit_home=Path("/srv/sr"))
        result.ok, result.as_dict()["copied"]
    """
    if _is_postgres(source):
        raise ConfigError("a PostgreSQL store cannot be read from here yet; name a store folder (sqlite:///path)")
    src_home = Path(source.removeprefix("sqlite://"))
    to_postgres = _is_postgres(target)
    dst_home = audit_home if to_postgres else Path(target.removeprefix("sqlite://"))
    with ExitStack() as stack:
        src = stack.enter_context(closing(SqliteStore.open_existing(src_home)))
        src_audit = stack.enter_context(closing(open_audit_log(_at(settings, src_home))))
        dst: Catalog
        if to_postgres:
            from strongroom.store.postgres import PostgresStore

            dst = PostgresStore(target, model_id=src.model_id, dim=src.dim)
        else:
            assert dst_home is not None
            dst = SqliteStore(dst_home, model_id=src.model_id, dim=src.dim)
        stack.enter_context(closing(dst))
        dst_audit: AuditBackend | None = None
        keys = 0
        if dst_home is not None:
            url = target if to_postgres else ""
            dst_audit = stack.enter_context(closing(open_audit_log(_at(settings, dst_home, url))))
            src_keys = stack.enter_context(closing(open_key_store(_at(settings, src_home))))
            dst_keys = stack.enter_context(closing(open_key_store(_at(settings, dst_home, url))))
            keys = dst_keys.adopt(src_keys.export_rows())
        report = migrate(src, dst, source_audit=src_audit, target_audit=dst_audit)
        same = report.source_digest == content_digest(dst.iter_versions())
        chain_ok = dst_audit.verify().ok if dst_audit is not None else None
        dst.save_indexes()
    return MigrationResult(report, keys, same, chain_ok)


@dataclass(frozen=True)
class StoreCheck:
    """One store checked: its content digest, what is wrong inside it, and its audit chain
    (``audit_chain_ok`` None: no audit log was given for it)."""

    digest: Digest
    problems: list[str]
    audit_chain_ok: bool | None
    audit_problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems and self.audit_chain_ok is not False

    def as_dict(self) -> dict[str, object]:
        return {
            **asdict(self.digest),
            "problems": self.problems[:50],
            "n_problems": len(self.problems),
            "audit_chain_ok": self.audit_chain_ok,
            "audit_problems": self.audit_problems[:50],
        }


@dataclass(frozen=True)
class StoreComparison:
    """:func:`verify_deployment`'s findings: each store by label (``store``, ``against``) and,
    with two, whether they hold the same content."""

    checks: dict[str, StoreCheck]
    same_content: bool | None = None

    @property
    def failures(self) -> list[str]:
        """What is wrong, each line naming its store (none: all is well)."""
        found = []
        for label, c in self.checks.items():
            broken = ["the audit chain does not verify"] if c.audit_chain_ok is False and not c.audit_problems else []
            found += [f"{label}: {p}" for p in (*c.problems, *c.audit_problems, *broken)]
        return found + (["the stores do not hold the same content"] if self.same_content is False else [])

    @property
    def ok(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict[str, object]:
        found: dict[str, object] = {label: c.as_dict() for label, c in self.checks.items()}
        return found if self.same_content is None else {**found, "same_content": self.same_content}


def _open_for_reading(
    settings: Settings, spec: str, audit_home: Path | None, *, audit_required: bool
) -> tuple[_Checkable, AuditBackend | None]:
    """A store named by a folder, ``sqlite:///folder`` or a PostgreSQL URL, and its audit log:
    the folder's own, or (PostgreSQL) the database's, anchored under ``audit_home``."""
    if not _is_postgres(spec):
        home = Path(spec.removeprefix("sqlite://"))
        store = SqliteStore.open_existing(home)
        try:
            return store, open_audit_log(_at(settings, home))
        except BaseException:
            store.close()
            raise
    from strongroom.store.postgres import PostgresStore

    if audit_home is not None and not anchor_for(_at(settings, audit_home)).path.is_file():
        if audit_required:
            raise ConfigError(f"no audit log under {audit_home} (no audit anchor there); give the deployment's home")
        audit_home = None
    pg = PostgresStore.open_existing(spec)
    try:
        return pg, open_audit_log(_at(settings, audit_home, spec)) if audit_home is not None else None
    except BaseException:
        pg.close()
        raise


def check_store(settings: Settings, spec: str, audit_home: Path | None, *, audit_required: bool = True) -> StoreCheck:
    """Check one store (see :func:`verify_deployment`) in one pass over its content."""
    store, audit = _open_for_reading(settings, spec, audit_home, audit_required=audit_required)
    with closing(store):
        digest, problems = survey(store.iter_versions(), store.dim)
        if audit is None:
            return StoreCheck(digest, problems, None, [])
        with closing(audit):
            chain = audit.verify()
    return StoreCheck(digest, problems, chain.ok, [p.message for p in chain.problems])


def verify_deployment(
    settings: Settings, against: str | None = None, against_home: Path | None = None
) -> StoreComparison:
    """Check the deployment's store (``settings.store_url``, else the home's) and its audit
    chain: counts, every chunk against its page, every vector, and a content digest (equal
    digests: equal content); with ``against`` (a folder or PostgreSQL URL, whose audit chain is
    under ``against_home``), the same for that store and a comparison.

        verify_deployment(Settings(), against="/srv/copy").ok
    """
    checks = {"store": check_store(settings, settings.store_url or str(settings.home), settings.home,
                                   audit_required=False)}  # fmt: skip
    if against is None:
        return StoreComparison(checks)
    checks["against"] = check_store(settings, against, against_home)
    return StoreComparison(checks, checks["store"].digest.sha256 == checks["against"].digest.sha256)


@dataclass(frozen=True)
class ReembedResult:
    """What :func:`reembed_deployment` did; ``linked`` is the link switched to the new home, if any."""

    report: MigrationReport
    api_keys: int
    digest: Digest
    problems: list[str]
    audit_chain_ok: bool
    model_id: str
    ok: bool
    linked: Path | None = None

    @property
    def failures(self) -> list[str]:
        """Why the new home is not switched to (none: it checks out)."""
        broken = [] if self.audit_chain_ok else ["the new home's audit chain does not verify"]
        found = [*self.problems, *broken]
        return found or ([] if self.ok else ["the new home does not hold every version and chunk of the old one"])

    def as_dict(self) -> dict[str, object]:
        return {
            "copied": self.report.copied,
            "already_there": self.report.already_there,
            "audit_records": self.report.audit_records,
            "api_keys": self.api_keys,
            "versions": self.digest.versions,
            "chunks": self.digest.chunks,
            "problems": self.problems[:50],
            "audit_chain_ok": self.audit_chain_ok,
            "linked": str(self.linked) if self.linked is not None else None,
            "model_id": self.model_id,
        }


def _lineage(embedder_model: str) -> object:
    """The training lineage ``strongroom train embedder`` left beside the model, if any."""
    path = Path(embedder_model) / "strongroom-lineage.json" if embedder_model else None
    if path is None or not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot read the model's lineage {path}: {exc}; restore it (train embedder writes it), or remove it"
        ) from exc


def reembed_deployment(
    settings: Settings,
    to: Path,
    *,
    embedder: str = "sentence-transformers",
    embedder_model: str = "",
    link: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> ReembedResult:
    """Copy the embedded store at ``settings.home`` into the new home ``to`` with every chunk
    embedded by ``embedder`` (``embedder_model``: e.g. a fine-tuned folder) while the old home
    keeps serving; then bring over the audit chain and the API keys and write ``to/embedder.json``
    (the model, its training lineage, where it came from). Run it again to take what was ingested
    (or audited) since. A copy that checks out points ``link`` at the new home, atomically; the
    old home stays as it was (the rollback).

        reembed_deployment(Settings(), Path("/srv/sr-v2"), embedder_model="/models/ft", link=Path("/srv/sr"))
    """
    from strongroom.embed import create_embedder

    if settings.store_url:
        raise ConfigError("reembed copies an embedded store (a home folder); STRONGROOM_STORE_URL is set")
    if to.resolve() == settings.home.resolve():
        raise ConfigError("--to must be a new folder, not the store's own home")
    try:
        update = {"home": to, "embedder": embedder, "embedder_model": embedder_model}
        target_settings = type(settings).model_validate({**settings.model_dump(), **update})  # validated, not copied
        new_embedder = create_embedder(target_settings)
    except (StrongroomError, ValueError) as exc:
        raise ConfigError(f"cannot load the new embedder: {exc}") from exc
    lineage = _lineage(embedder_model)
    with ExitStack() as stack:
        source = stack.enter_context(closing(SqliteStore.open_existing(settings.home)))
        source_audit = stack.enter_context(closing(open_audit_log(_at(settings, settings.home))))
        if (source.model_id, source.dim) == (new_embedder.model_id, new_embedder.dim):
            raise ConfigError(f"the store already uses {source.model_id}; nothing to switch")
        target = stack.enter_context(closing(SqliteStore(to, model_id=new_embedder.model_id, dim=new_embedder.dim)))
        target_audit = stack.enter_context(closing(open_audit_log(target_settings)))
        keys_from = stack.enter_context(closing(open_key_store(settings)))
        keys_to = stack.enter_context(closing(open_key_store(target_settings)))
        report = reembed(source, target, new_embedder, progress=progress)
        report.audit_records = target_audit.adopt(source_audit.chain())
        keys = keys_to.adopt(keys_from.export_rows())
        digest, problems = survey(target.iter_versions(), target.dim)
        target.save_indexes()
        chain_ok = target_audit.verify().ok
    record = {
        "model_id": new_embedder.model_id,
        "dim": new_embedder.dim,
        "embedder": embedder,
        "embedder_model": embedder_model,
        "lineage": lineage,
        "from_home": str(settings.home.resolve()),
        "from_model_id": source.model_id,
        "source_sha256": report.source_digest.sha256 if report.source_digest else None,
        "at": datetime.now(UTC).isoformat(),
    }
    (to / "embedder.json").write_text(json.dumps(record, indent=1))
    copied = report.source_digest
    same_count = copied is not None and (digest.versions, digest.chunks) == (copied.versions, copied.chunks)
    ok = not report.problems and not problems and chain_ok and same_count
    if ok and link is not None:
        staged = link.with_name(f".{link.name}.new")
        staged.unlink(missing_ok=True)
        staged.symlink_to(to.resolve(), target_is_directory=True)
        os.replace(staged, link)  # atomic: readers see the old home or the new one, never neither
    every_problem = [*report.problems, *problems]
    return ReembedResult(report, keys, digest, every_problem, chain_ok, new_embedder.model_id, ok, link if ok else None)


@dataclass(frozen=True)
class SchemaUpgrade:
    """What :func:`upgrade_store` did: the store as messages name it (never with its password),
    and its schema revision before (None: it had none yet) and after."""

    store: str
    before: str | None
    after: str

    def as_dict(self) -> dict[str, object]:
        return {"store": self.store, "from": self.before, "to": self.after}


def upgrade_store(url: str | None) -> SchemaUpgrade:
    """Migrate the PostgreSQL store at ``url`` to this strongroom's schema revision (Alembic; each
    migration is one transaction, so a failure changes nothing).

        upgrade_store("postgresql://sr@db/sr").after
    """
    if not url or not _is_postgres(url):
        raise ConfigError("give the PostgreSQL store with --store postgresql://user@host/db (or STRONGROOM_STORE_URL)")
    from strongroom.store.postgres_schema import upgrade_schema  # psycopg: the [postgres] extra

    return SchemaUpgrade(*upgrade_schema(url))
