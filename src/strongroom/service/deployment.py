"""Moving, checking and re-embedding whole deployments: a store with its audit chain and API
keys, as the operator commands (``migrate``, ``verify-store``, ``reembed``, ``upgrade-store``)
run them. Each returns a result that says whether it checked out; the store-level work
(copying versions, content digests, consistency checks) is :mod:`strongroom.service.transfer`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from contextlib import ExitStack, closing
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from strongroom.audit import AuditBackend, anchor_for, open_audit_log
from strongroom.auth import open_key_store
from strongroom.config import Settings
from strongroom.errors import ConfigError, StrongroomError
from strongroom.store.base import Catalog
from strongroom.store.sqlite import SqliteStore

if TYPE_CHECKING:
    pass

from strongroom.service.transfer import Digest, MigrationReport, Portable, content_digest, migrate, reembed, survey

__all__ = [
    "MigrationResult",
    "ReembedResult",
    "SchemaUpgrade",
    "StoreCheck",
    "StoreComparison",
    "check_store",
    "migrate_deployment",
    "reembed_deployment",
    "upgrade_store",
    "verify_deployment",
]


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
