"""strongroom: a self-hosted GenAI platform for regulated financial institutions.

Ingest documents, retrieve with entitlements and as-of dates, answer with citations. Use
the application layer, :class:`Platform`: every operation with a principal, its policy and
its audit record, as the CLI and the HTTP service do.

>>> from strongroom import AskRequest, Platform, Settings
>>> with Platform.open(Settings(home=Path("~/.strongroom"))) as platform:  # doctest: +SKIP
...     ana = platform.principal("ana", ["public", "research"])
...     platform.ask(ana, AskRequest(question="What were total net sales?", as_of="2023-06-30"))
"""

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
