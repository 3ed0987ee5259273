"""Alembic migrations of the PostgreSQL store's schema.

The store upgrades a new, empty database to the head revision when it first opens it. An
existing database behind the head is refused with a message, unless it is opened with
``upgrade=True`` (``strongroom store upgrade``): a bank's DBAs decide when a shared schema
changes. A store made before migrations existed (schema "1" in ``meta``, no
``alembic_version`` table) is stamped at the baseline revision, which is its schema.

Revisions take the vector dimension from ``config.attributes["dim"]``; ``env.py`` runs them
on the connection in ``config.attributes["connection"]``, inside the caller's transaction,
which holds the store's advisory lock so two processes never migrate at once.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

__all__ = ["BASELINE", "current_revision", "head_revision", "known_revision", "run_upgrade", "stamp"]

BASELINE = "0001"


def _config(connection: Any = None, dim: int | None = None) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(files("strongroom.store") / "migrations"))
    config.attributes["connection"] = connection
    config.attributes["dim"] = dim
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None, "the store's migrations have no head revision"
    return head


def known_revision(revision: str) -> bool:
    """Whether this code's migrations know ``revision`` (a newer strongroom may have written it)."""
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        return ScriptDirectory.from_config(_config()).get_revision(revision) is not None
    except CommandError:
        return False


def current_revision(connection: Any) -> str | None:
    """The revision the database is at (None: not under migrations yet)."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def run_upgrade(connection: Any, dim: int, target: str = "head") -> None:
    """Upgrade the database on ``connection`` (a SQLAlchemy connection in a transaction)."""
    from alembic import command

    command.upgrade(_config(connection, dim), target)


def stamp(connection: Any, revision: str) -> None:
    """Record ``revision`` as the database's without running anything."""
    from alembic import command

    command.stamp(_config(connection), revision)
