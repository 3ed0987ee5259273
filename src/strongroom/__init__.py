"""strongroom: a self-hosted GenAI platform for regulated financial institutions.

Ingest documents, retrieve with entitlements and as-of dates, answer with citations. Use
the application layer, :class:`Platform`: every operation with a principal, its policy and
its audit record, as the CLI and the HTTP service do.

>>> from strongroom import AskRequest, Platform, Settings
>>> with Platform.open(Settings(home=Path("~/.strongroom"))) as platform:  # doctest: +SKIP
...     ana = platform.principal("ana", ["public", "research"])
...     platform.ask(ana, AskRequest(question="What were total net sales?", as_of="2023-06-30"))
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from strongroom.config import Settings
    from strongroom.embed import Embedder, create_embedder
    from strongroom.errors import (
        ConfigError,
        CorruptDocument,
        EmbeddingError,
        IngestError,
        NotFound,
        PermissionDenied,
        QueryError,
        StoreError,
        StrongroomError,
        TooLarge,
        UnsupportedFormat,
        WriteDenied,
    )
    from strongroom.ingest.pipeline import IngestOptions, IngestReport, ingest
    from strongroom.rag import ExtractiveGenerator, Generator, answer
    from strongroom.retrieve import search
    from strongroom.runtime import Runtime, open_runtime
    from strongroom.service import (
        AskRequest,
        DocumentsRequest,
        IngestRequest,
        Platform,
        SearchRequest,
        View,
    )
    from strongroom.store.base import Store
    from strongroom.types import (
        Answer,
        Chunk,
        Citation,
        Claim,
        DocumentVersion,
        Hit,
        Page,
        ParsedDocument,
        Principal,
        Scope,
    )

__version__ = "0.1.0"

#: where each public name lives; imported on first use, so ``import strongroom.errors`` (or the
#: CLI's ``--help``) does not load the whole platform
_HOMES = {
    "Answer": "strongroom.types",
    "AskRequest": "strongroom.service",
    "Chunk": "strongroom.types",
    "Citation": "strongroom.types",
    "Claim": "strongroom.types",
    "ConfigError": "strongroom.errors",
    "CorruptDocument": "strongroom.errors",
    "DocumentVersion": "strongroom.types",
    "DocumentsRequest": "strongroom.service",
    "Embedder": "strongroom.embed",
    "EmbeddingError": "strongroom.errors",
    "ExtractiveGenerator": "strongroom.rag",
    "Generator": "strongroom.rag",
    "Hit": "strongroom.types",
    "IngestError": "strongroom.errors",
    "IngestOptions": "strongroom.ingest.pipeline",
    "IngestReport": "strongroom.ingest.pipeline",
    "IngestRequest": "strongroom.service",
    "NotFound": "strongroom.errors",
    "Page": "strongroom.types",
    "ParsedDocument": "strongroom.types",
    "PermissionDenied": "strongroom.errors",
    "Platform": "strongroom.service",
    "Principal": "strongroom.types",
    "QueryError": "strongroom.errors",
    "Runtime": "strongroom.runtime",
    "Scope": "strongroom.types",
    "SearchRequest": "strongroom.service",
    "Settings": "strongroom.config",
    "Store": "strongroom.store.base",
    "StoreError": "strongroom.errors",
    "StrongroomError": "strongroom.errors",
    "TooLarge": "strongroom.errors",
    "UnsupportedFormat": "strongroom.errors",
    "View": "strongroom.service",
    "WriteDenied": "strongroom.errors",
    "answer": "strongroom.rag",
    "create_embedder": "strongroom.embed",
    "ingest": "strongroom.ingest.pipeline",
    "open_runtime": "strongroom.runtime",
    "search": "strongroom.retrieve",
}

__all__ = [
    "Answer",
    "AskRequest",
    "Chunk",
    "Citation",
    "Claim",
    "ConfigError",
    "CorruptDocument",
    "DocumentVersion",
    "DocumentsRequest",
    "Embedder",
    "EmbeddingError",
    "ExtractiveGenerator",
    "Generator",
    "Hit",
    "IngestError",
    "IngestOptions",
    "IngestReport",
    "IngestRequest",
    "NotFound",
    "Page",
    "ParsedDocument",
    "PermissionDenied",
    "Platform",
    "Principal",
    "QueryError",
    "Runtime",
    "Scope",
    "SearchRequest",
    "Settings",
    "Store",
    "StoreError",
    "StrongroomError",
    "TooLarge",
    "UnsupportedFormat",
    "View",
    "WriteDenied",
    "answer",
    "create_embedder",
    "ingest",
    "open_runtime",
    "search",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'strongroom' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # imported once
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
