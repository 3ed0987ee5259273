"""Operator commands over a whole store, mounted by :mod:`strongroom.cli`: ``migrate``,
``verify-store``, ``upgrade-store`` and ``reembed``. The work is in :mod:`strongroom.service.transfer`.
A job that cannot start (no store there, a bad URL or embedder) exits 2; one whose copy or
check does not hold exits 1, saying what is wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from strongroom.cli.common import HomeOpt, JsonOpt, emit, err, exits_on_error, fail, say, settings_for
from strongroom.service import deployment
from strongroom.service.deployment import MigrationResult, ReembedResult, StoreComparison

__all__ = ["migrate_command", "reembed_command", "upgrade_store_command", "verify_store_command"]


def _report(result: MigrationResult | StoreComparison | ReembedResult, as_json: bool, title: str) -> None:
    """Print the result; a copy or check that did not hold exits 1, with what is wrong on stderr."""
    emit(result.as_dict(), as_json, title=title)
    if result.failures:
        raise fail("\n".join(result.failures[:50]), 1)


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
    settings = settings_for(None)
    with exits_on_error(2):
        result = deployment.migrate_deployment(settings, source, target, audit_home=audit_home)
    _report(result, as_json, "migrated")


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
    with exits_on_error(2):
        found = deployment.verify_deployment(settings, against, against_home)
    _report(found, as_json, "verify-store")


def upgrade_store_command(
    store: Annotated[
        str | None,
        typer.Option("--store", envvar="STRONGROOM_STORE_URL", help="The PostgreSQL store: postgresql://user@host/db."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Migrate a PostgreSQL store's schema to this strongroom's revision (Alembic). Back the
    database up first; workers and API replicas may stay up, as each migration is one transaction."""
    with exits_on_error(2):
        found = deployment.upgrade_store(store)
    if as_json:
        return emit(found.as_dict(), as_json)
    was, now = found.before, found.after
    say(f"{found.store}: " + (f"already at revision {now}" if was == now else f"upgraded from revision {was} to {now}"))


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
    settings = settings_for(home)
    with exits_on_error(2), err.status("re-embedding ...") as status:
        result = deployment.reembed_deployment(
            settings, to, embedder=embedder, embedder_model=embedder_model, link=link,
            progress=lambda name: status.update(f"re-embedded {name}"),
        )  # fmt: skip
    _report(result, as_json, "re-embedded")
    if not as_json:
        model = f" STRONGROOM_EMBEDDER_MODEL={embedder_model}" if embedder_model else ""
        say(f"serve it with STRONGROOM_HOME={link or to} STRONGROOM_EMBEDDER={embedder}{model}")
