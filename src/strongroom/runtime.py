"""Open the embedded store and its embedder from settings: the one place both are wired.

The CLI and (later) the HTTP app call :func:`open_runtime`, so both see the same store.
"""

from __future__ import annotations

from dataclasses import dataclass

from strongroom.config import Settings
from strongroom.embed import Embedder, create_embedder
from strongroom.store.sqlite import SqliteStore

__all__ = ["Runtime", "open_runtime"]


@dataclass
class Runtime:
    settings: Settings
    store: SqliteStore
    embedder: Embedder

    def close(self) -> None:
        self.store.close()


def open_runtime(settings: Settings, embedder: Embedder | None = None) -> Runtime:
    """The store under ``settings.home`` and the embedder it was built with."""
    embedder = embedder or create_embedder(settings)
    store = SqliteStore(settings.home, model_id=embedder.model_id, dim=embedder.dim)
    return Runtime(settings, store, embedder)
