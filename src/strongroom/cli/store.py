"""CLI pieces of store maintenance, mounted by :mod:`strongroom.cli`: ``strongroom migrate``
copies a deployment to another store; ``strongroom verify-store`` checks one (or two)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Protocol

import typer
from rich.markup import escape

from strongroom.audit import AuditLog, open_audit_log
from strongroom.auth import open_key_store
from strongroom.auth.apikeys import ApiKeyStore
from strongroom.cli.common import HomeOpt, JsonOpt, err, fail, out, settings_for
from strongroom.errors import StrongroomError
from strongroom.service.transfer import Exportable, content_digest, migrate, survey
from strongroom.store.base import Catalog
from strongroom.store.sqlite import SqliteStore

__all__ = ["migrate_command", "reembed_command", "upgrade_store_command", "verify_store_command"]


def _audit_at(home: Path, store_url: str = "") -> AuditLog:
    """The audit log of the deployment at ``home`` (in PostgreSQL at ``store_url`` when given), with its anchor."""
    return open_audit_log(settings_for(home).model_copy(update={"store_url": store_url}))


def _keys_at(home: Path, store_url: str = "") -> ApiKeyStore:
    return open_key_store(settings_for(home).model_copy(update={"store_url": store_url}))


def _store_at(spec: str) -> tuple[SqliteStore, AuditLog]:
    """A store named by a home folder or a ``sqlite:///path`` URL, with its audit log."""
    if spec.startswith(("postgresql://", "postgres://")):
        raise fail("a PostgreSQL store cannot be read from here yet; name a store folder (sqlite:///path)")
    home = Path(spec.removeprefix("sqlite://"))
    try:
        return SqliteStore.open_existing(home), _audit_at(home)
    except StrongroomError as exc:
        raise fail(str(exc)) from exc


def migrate_command(
    source: Annotated[str, typer.Option("--from", help="The store to copy: its folder or sqlite:///folder.")],
    target: Annotated[
        str, typer.Option("--to", help="Where to copy it: a folder, sqlite:///folder (created) or postgresql://...")
    ],
    audit_home: Annotated[
        Path | None,
        typer.Option(
            "--audit-to",
            help="With a PostgreSQL target: the new deployment's home (its audit anchor and signing key); the "
            "audit chain and the API keys are copied into the database.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Copy a whole deployment (versions, pages, chunks, vectors, ACLs, the audit chain) to another
    store, then check that both hold the same content. Safe to run again: it copies what is missing."""
    src, src_audit = _store_at(source)
    to_postgres = target.startswith(("postgresql://", "postgres://"))
    dst_home = audit_home if to_postgres else Path(target.removeprefix("sqlite://"))
    dst: Catalog | None = None
    dst_audit: AuditLog | None = None
    src_keys: ApiKeyStore | None = None
    dst_keys: ApiKeyStore | None = None
    keys = 0
    try:
        if to_postgres:
            from strongroom.store.postgres import PostgresStore

            dst = PostgresStore(target, model_id=src.model_id, dim=src.dim)
        else:
            assert dst_home is not None
            dst = SqliteStore(dst_home, model_id=src.model_id, dim=src.dim)
        if dst_home is not None:
            url = target if to_postgres else ""
            dst_audit = _audit_at(dst_home, url)
            src_keys, dst_keys = _keys_at(Path(source.removeprefix("sqlite://"))), _keys_at(dst_home, url)
            keys = dst_keys.adopt(src_keys.export_rows())
        report = migrate(src, dst, source_audit=src_audit, target_audit=dst_audit)
        same = report.source_digest == content_digest(dst.iter_versions())
        chain_ok = dst_audit.verify().ok if dst_audit is not None else None
        dst.save_indexes()
    except StrongroomError as exc:
        raise fail(str(exc)) from exc
    finally:
        for closeable in (src, src_audit, dst, dst_audit, src_keys, dst_keys):
            if closeable is not None:
                closeable.close()
    result = {**asdict(report), "api_keys": keys, "same_content": same, "audit_chain_ok": chain_ok}
    if as_json:
        out.print_json(json.dumps(result))
    else:
        chain = "not copied (give --audit-to)" if chain_ok is None else f"intact: {chain_ok}"
        out.print(
            f"copied {report.copied} version(s), {report.already_there} already there, "
            f"{report.audit_records} audit record(s); same content: {same}; audit chain {chain}"
        )
    if report.problems or not same or chain_ok is False:
        for problem in report.problems:
            err.print(f"[red]{escape(problem)}[/]")
        raise typer.Exit(1)


class _Checkable(Exportable, Protocol):
    def close(self) -> None: ...


def _store_for_reading(
    spec: str, audit_home: Path | None, *, audit_required: bool = True
) -> tuple[_Checkable, AuditLog | None]:
    """A store to check, named by a folder, ``sqlite:///folder`` or a PostgreSQL URL, and its
    audit log: the folder's own, or (PostgreSQL) the database's, anchored under ``audit_home``."""
    if not spec.startswith(("postgresql://", "postgres://")):
        return _store_at(spec)
    from strongroom.audit import anchor_for
    from strongroom.store.postgres import PostgresStore

    if audit_home is not None and not anchor_for(settings_for(audit_home)).path.is_file():
        if audit_required:
            raise fail(f"no audit log under {audit_home} (no audit anchor there); give the deployment's home")
        audit_home = None
    try:
        store = PostgresStore.open_existing(spec)
        return store, _audit_at(audit_home, spec) if audit_home is not None else None
    except StrongroomError as exc:
        raise fail(str(exc)) from exc


def verify_store_command(
    home: HomeOpt = None,
    against: Annotated[
        str | None,
        typer.Option("--against", help="Another store (a folder or postgresql://...) that must hold the same content."),
    ] = None,
    against_home: Annotated[
        Path | None,
        typer.Option(
            "--against-home", help="With a PostgreSQL --against: that deployment's home, for its audit chain."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check a store: counts, every chunk against its page, every vector, the audit chain, and a
    content digest (equal digests: equal content); with --against, the same for both and a comparison.
    With STRONGROOM_STORE_URL set, the store checked is that PostgreSQL one, with the home's audit log."""
    settings = settings_for(home)
    sides: list[tuple[str, str, Path | None]] = [("store", settings.store_url or str(settings.home), settings.home)]
    if against:
        sides.append(("against", against, against_home))
    results: dict[str, object] = {}
    digests: list[str] = []
    ok = True
    for label, spec, audit_home in sides:
        store, audit = _store_for_reading(spec, audit_home, audit_required=label == "against")
        try:
            digest, problems = survey(store.iter_versions(), store.dim)  # one pass over the store
            chain = audit.verify() if audit is not None else None
        except StrongroomError as exc:
            raise fail(str(exc)) from exc
        finally:
            store.close()
            if audit is not None:
                audit.close()
        ok = ok and not problems and (chain is None or chain.ok)
        digests.append(digest.sha256)
        results[label] = {
            **asdict(digest),
            "problems": problems[:50],
            "n_problems": len(problems),
            "audit_chain_ok": chain.ok if chain is not None else None,  # None: no audit log given
            "audit_problems": [p.message for p in chain.problems][:50] if chain is not None else [],
        }
    if against:
        results["same_content"] = digests[0] == digests[1]
        ok = ok and digests[0] == digests[1]
    if as_json:
        out.print_json(json.dumps(results))
    else:
        for label, r in results.items():
            out.print(f"{label}: {r}", highlight=False)
    if not ok:
        raise typer.Exit(1)


def upgrade_store_command(
    store: Annotated[
        str | None,
        typer.Option("--store", envvar="STRONGROOM_STORE_URL", help="The PostgreSQL store: postgresql://user@host/db."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Migrate a PostgreSQL store's schema to this strongroom's revision (Alembic). Back the
    database up first; workers and API replicas may stay up, as each migration is one transaction."""
    if not store or not store.startswith(("postgresql://", "postgres://")):
        raise fail("give the PostgreSQL store with --store postgresql://user@host/db (or STRONGROOM_STORE_URL)")
    import psycopg

    from strongroom.store.postgres_schema import _describe, migrate_schema, redact

    try:
        target, password = _describe(store)
        before, after = migrate_schema(store, None, upgrade=True, target=target)
    except psycopg.Error as exc:
        raise fail(f"PostgreSQL at {target} failed the upgrade: {redact(exc, password)}; nothing was changed") from exc
    except StrongroomError as exc:
        raise fail(str(exc)) from exc
    if as_json:
        out.print_json(json.dumps({"store": target, "from": before, "to": after}))
    elif before == after:
        out.print(f"{target}: already at revision {after}", soft_wrap=True, highlight=False)
    else:
        out.print(f"{target}: upgraded from revision {before} to {after}", soft_wrap=True, highlight=False)


def reembed_command(
    to: Annotated[Path, typer.Option("--to", help="The new store's home (created; run again to catch up).")],
    embedder: Annotated[
        str, typer.Option("--embedder", help="The new embedder: minilm, sentence-transformers, openai.")
    ] = "sentence-transformers",
    embedder_model: Annotated[
        str, typer.Option("--embedder-model", help="Its model: a local folder, e.g. a fine-tuned one.")
    ] = "",
    link: Annotated[
        Path | None,
        typer.Option("--link", help="When done, point this symlink at the new home (atomically): the switch."),
    ] = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Switch the store to another embedder without downtime: copy it into a new home with every
    chunk embedded by the new model, while the old home keeps serving; then bring over the
    audit chain and the API keys. Run it again to take what was ingested (or audited) since.
    With --link, a run whose copy checks out points the link at the new home, atomically.
    The old home stays as it was (the rollback)."""
    import os
    from datetime import UTC, datetime

    from strongroom.embed import create_embedder
    from strongroom.service.transfer import reembed

    settings = settings_for(home)
    if settings.store_url:
        raise fail("reembed copies an embedded store (a home folder); STRONGROOM_STORE_URL is set")
    if to.resolve() == settings.home.resolve():
        raise fail("--to must be a new folder, not the store's own home")
    try:
        update = {"home": to, "embedder": embedder, "embedder_model": embedder_model}
        target_settings = type(settings).model_validate({**settings.model_dump(), **update})  # validated, not copied
        new_embedder = create_embedder(target_settings)
    except (StrongroomError, ValueError) as exc:
        raise fail(f"cannot load the new embedder: {exc}") from exc
    source, source_audit = _store_at(str(settings.home))
    try:
        if (source.model_id, source.dim) == (new_embedder.model_id, new_embedder.dim):
            raise fail(f"the store already uses {source.model_id}; nothing to switch")
        target = SqliteStore(to, model_id=new_embedder.model_id, dim=new_embedder.dim)
        target_audit = open_audit_log(target_settings)
        keys_from, keys_to = open_key_store(settings), open_key_store(target_settings)
        try:
            with err.status("re-embedding ...") as status:
                report = reembed(
                    source, target, new_embedder, progress=lambda name: status.update(f"re-embedded {name}")
                )
            report.audit_records = target_audit.adopt(source_audit.chain())
            keys = keys_to.adopt(keys_from.export_rows())
            digest, problems = survey(target.iter_versions(), target.dim)
            target.save_indexes()
            chain_ok = target_audit.verify().ok
        finally:
            for closeable in (target, target_audit, keys_from, keys_to):
                closeable.close()
    except StrongroomError as exc:
        raise fail(str(exc)) from exc
    finally:
        source.close()
        source_audit.close()
    lineage_file = Path(embedder_model) / "strongroom-lineage.json" if embedder_model else None
    record = {
        "model_id": new_embedder.model_id,
        "dim": new_embedder.dim,
        "embedder": embedder,
        "embedder_model": embedder_model,
        "lineage": json.loads(lineage_file.read_text()) if lineage_file and lineage_file.is_file() else None,
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
    result = {
        "copied": report.copied,
        "already_there": report.already_there,
        "audit_records": report.audit_records,
        "api_keys": keys,
        "versions": digest.versions,
        "chunks": digest.chunks,
        "problems": every_problem[:50],
        "audit_chain_ok": chain_ok,
        "linked": str(link) if ok and link is not None else None,
        "model_id": new_embedder.model_id,
    }
    if as_json:
        out.print_json(json.dumps(result))
    else:
        out.print(
            f"re-embedded {report.copied} version(s) with {new_embedder.model_id} ({report.already_there} already "
            f"there), {report.audit_records} audit record(s), {keys} API key(s); chunks {digest.chunks}; "
            f"audit chain intact: {chain_ok}",
            soft_wrap=True,
            highlight=False,
        )
        out.print(
            f"serve it with STRONGROOM_HOME={link or to} STRONGROOM_EMBEDDER={embedder}"
            + (f" STRONGROOM_EMBEDDER_MODEL={embedder_model}" if embedder_model else ""),
            soft_wrap=True,
            highlight=False,
        )
    if not ok:
        for problem in every_problem[:50]:
            err.print(f"[red]{escape(str(problem))}[/]")
        raise typer.Exit(1)
