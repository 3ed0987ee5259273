"""strongroom: a self-hosted GenAI platform for regulated financial institutions.

Ingest documents, retrieve with entitlements and as-of dates, answer with citations.

>>> from strongroom import Settings, open_runtime, answer, Scope
>>> rt = open_runtime(Settings(home=Path("~/.strongroom")))          # doctest: +SKIP
>>> answer("What were total net sales?", Scope(frozenset({"public"})), rt.store, rt.embedder)  # doctest: +SKIP
"""

from strongroom.config import Settings
from strongroom.embed import Embedder, create_embedder
from strongroom.errors import (
    ConfigError,
    CorruptDocument,
    EmbeddingError,
    IngestError,
    QueryError,
    StoreError,
    StrongroomError,
    TooLarge,
    UnsupportedFormat,
)
from strongroom.ingest.pipeline import IngestOptions, IngestReport, ingest
from strongroom.rag import ExtractiveGenerator, Generator, answer
from strongroom.retrieve import search
from strongroom.runtime import Runtime, open_runtime
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

__all__ = [
    "Answer",
    "Chunk",
    "Citation",
    "Claim",
    "ConfigError",
    "CorruptDocument",
    "DocumentVersion",
    "Embedder",
    "EmbeddingError",
    "ExtractiveGenerator",
    "Generator",
    "Hit",
    "IngestError",
    "IngestOptions",
    "IngestReport",
    "Page",
    "ParsedDocument",
    "Principal",
    "QueryError",
    "Runtime",
    "Scope",
    "Settings",
    "Store",
    "StoreError",
    "StrongroomError",
    "TooLarge",
    "UnsupportedFormat",
    "answer",
    "create_embedder",
    "ingest",
    "open_runtime",
    "search",
]
