"""The PostgreSQL store's connection details and schema: a URL described for messages
without its password, and the schema brought under Alembic to the head revision (or a
stale one refused until an operator upgrades it)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from strongroom.errors import ConfigError, StoreError

__all__ = ["WRITE_LOCK", "connect", "describe_url", "migrate_schema", "redact", "upgrade_schema"]

WRITE_LOCK = 0x5354524F4E47  # advisory lock key: writers, deleters and migrations go one at a time


def redact(exc: BaseException, password: str) -> str:
    """An exception's message without the URL's password, in case a driver ever echoes it."""
    text = str(exc).strip()
    return text.replace(password, "***") if password else text


def connect(url: str, *, purpose: str = "") -> psycopg.Connection[Any]:
    """An autocommit connection to ``url``; a failure is a StoreError that names the server (never
    the password) and what the connection was for (``purpose``: e.g. " for the audit log")."""
    target, password = describe_url(url)
    try:
        return psycopg.connect(url, autocommit=True)
    except psycopg.Error as exc:
        raise StoreError(
            f"cannot connect to PostgreSQL at {target}{purpose}: {redact(exc, password)}. Check that the server "
            "is running and the store URL (STRONGROOM_STORE_URL: host, port, user, database) is right."
        ) from exc


def describe_url(url: str) -> tuple[str, str]:
    """``user@host:port/dbname`` of a connection string (for messages), and its password."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.Error:
        raise ConfigError(
            "the PostgreSQL store URL is malformed: write it as postgresql://user@host:port/dbname"
        ) from None  # the driver's message may quote the URL, password included
    host = parts.get("host") or "localhost"
    port = f":{parts['port']}" if parts.get("port") else ""
    user = f"{parts['user']}@" if parts.get("user") else ""
    return f"{user}{host}{port}/{parts.get('dbname') or ''}", str(parts.get("password") or "")


def migrate_schema(url: str, dim: int | None, *, upgrade: bool, target: str = "the database") -> tuple[str | None, str]:
    """Bring the store's schema under Alembic to the head revision, or refuse a stale one
    (unless ``upgrade``). Returns the revision before and after. ``dim``: the vector size for
    a new database (None: take it from the store there; an empty database is then refused)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.pool import NullPool

    from strongroom.store import migrations

    head = migrations.head_revision()
    engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(url), poolclass=NullPool)
    try:
        with engine.begin() as conn:
            # Two processes opening a new database at once must not both create the schema.
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": WRITE_LOCK})
            has_store = conn.execute(text("SELECT to_regclass('meta')")).scalar() is not None
            if dim is None:
                if not has_store:
                    raise StoreError(
                        f"{target} holds no strongroom store to upgrade; strongroom creates one on first use"
                    )
                dim = int(conn.execute(text("SELECT value FROM meta WHERE key = 'dim'")).scalar_one())
            # Only when missing: an administrator may have created it for a user who cannot.
            if conn.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'vector'")).first() is None:
                conn.execute(text("CREATE EXTENSION vector"))
            before = current = migrations.current_revision(conn)
            if current is None and has_store:
                migrations.stamp(conn, migrations.BASELINE)  # made before migrations: the baseline's schema
                before = current = migrations.BASELINE
            if current is not None and not migrations.known_revision(current):
                raise StoreError(
                    f"the store schema in {target} is at revision {current}, which this strongroom does not know "
                    f"(it knows up to {head}): a newer strongroom migrated it; run that version"
                )
            if current is None or (current != head and upgrade):
                migrations.run_upgrade(conn, dim)
            elif current != head:
                raise StoreError(
                    f"the store schema in {target} is at revision {current}; this strongroom needs {head}. "
                    "Back the database up, then run `strongroom upgrade-store --store URL`."
                )
            return before, head
    except DBAPIError as exc:
        if isinstance(exc.orig, psycopg.Error):
            raise exc.orig from exc  # reported like any other database error
        raise
    finally:
        engine.dispose()


def upgrade_schema(url: str) -> tuple[str, str | None, str]:
    """Migrate the store at ``url`` to the head revision (``strongroom upgrade-store``): the
    store as messages name it (never with its password), and the revisions before and after.
    Each migration is one transaction, so a failure changes nothing."""
    target, password = describe_url(url)
    try:
        before, after = migrate_schema(url, None, upgrade=True, target=target)
    except psycopg.Error as exc:
        raise StoreError(
            f"PostgreSQL at {target} failed the upgrade: {redact(exc, password)}; nothing was changed"
        ) from exc
    return target, before, after
