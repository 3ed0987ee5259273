"""Open the store and its embedder from settings: the one place both are wired.

The embedded store under ``home`` by default; PostgreSQL + pgvector when ``store_url`` is
set. The application layer (:class:`~strongroom.service.Platform`), the HTTP service and
the operator jobs call :func:`open_runtime`, so all see the same store.
"""

from __future__ import annotations

from dataclasses import dataclass

from strongroom.config import Settings
from strongroom.embed import Embedder, create_embedder
from strongroom.store.base import Catalog
from strongroom.store.sqlite import SqliteStore

__all__ = ["Runtime", "open_runtime"]


@dataclass
class Runtime:
    settings: Settings
    store: Catalog
    embedder: Embedder

    def close(self) -> None:
        self.store.close()


def open_runtime(settings: Settings, embedder: Embedder | None = None) -> Runtime:
    """The configured store and the embedder it was built with."""
    embedder = embedder or create_embedder(settings)
    store: Catalog
    if settings.store_url:
        from strongroom.store.postgres import PostgresStore  # needs the postgres extra (psycopg)

        store = PostgresStore(
            settings.store_url, model_id=embedder.model_id, dim=embedder.dim, ef_search=settings.pg_ef_search
        )
    else:
        store = SqliteStore(settings.home, model_id=embedder.model_id, dim=embedder.dim)
    return Runtime(settings, store, embedder)
