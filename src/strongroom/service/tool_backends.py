"""What the agent's tools read through: the application layer's own operations, called
synchronously from the thread that runs an agent, whichever driver serves it.

:class:`ToolBackend` is the set of operations the tools use, each one entitled and audited
by the driver exactly as for any other caller (a search through a tool is a ``search``
record, a query a ``datasets.query`` record), plus :meth:`ToolBackend.record` for the tool's
own record. Two implementations:

- :class:`PlatformBackend` over :class:`~strongroom.service.platform.Platform` (the CLI and
  Python programs): direct calls, on the thread that uses the platform;
- :class:`AsyncPlatformBackend` over :class:`~strongroom.service.async_platform.AsyncPlatform`
  (the HTTP service): called from an agent's own thread, it schedules each operation on the
  server's event loop (``asyncio.run_coroutine_threadsafe``) and waits for it, up to a
  timeout; called on the loop's own thread it refuses (it would wait on itself forever).

    backend = AsyncPlatformBackend(service.platform, loop)        # on the loop: get_running_loop()
    hits = backend.search(ana, SearchRequest(query="net sales", as_of=...)).hits   # from a worker thread
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from strongroom.data.base import QueryResult
from strongroom.errors import StoreError
from strongroom.service.async_platform import AsyncPlatform
from strongroom.service.clock import TimeInput
from strongroom.service.datasets import DatasetQuery, DatasetView
from strongroom.service.platform import Platform
from strongroom.service.requests import DocumentsRequest, DocumentView, PageView, SearchRequest, SearchResult, View
from strongroom.service.tables import VersionTables
from strongroom.types import Principal

__all__ = [
    "AsyncPlatformBackend",
    "DatasetReads",
    "DocumentReads",
    "PlatformBackend",
    "Recorder",
    "ToolBackend",
    "ToolContext",
]

T = TypeVar("T")


class DocumentReads(Protocol):
    """The document operations the tools use (each entitled, at the request's clocks, audited)."""

    def search(self, principal: Principal, request: SearchRequest) -> SearchResult: ...

    def documents(self, principal: Principal, request: DocumentsRequest) -> list[DocumentView]: ...

    def find_document(self, principal: Principal, name: str, view: View) -> DocumentView: ...

    def tables(self, principal: Principal, document_id: str, version_id: str, view: View) -> VersionTables: ...

    def page(self, principal: Principal, document_id: str, version_id: str, page: int, view: View) -> PageView: ...


class DatasetReads(Protocol):
    """The dataset operations the tools use (entitled, both clocks, engine limits, audited)."""

    def datasets(self, principal: Principal, known_at: TimeInput = None) -> list[DatasetView]: ...

    def query_datasets(self, principal: Principal, request: DatasetQuery) -> QueryResult: ...


class Recorder(Protocol):
    """Writes one audit record of ``principal`` doing ``action`` (fields as
    :func:`strongroom.service.records.event` takes them: the query is redacted there)."""

    def record(self, principal: Principal, action: str, **fields: object) -> None: ...


class ToolBackend(DocumentReads, DatasetReads, Recorder, Protocol):
    """Everything a :class:`~strongroom.service.agent_tools.EntitledToolbox` reads through."""


class PlatformBackend:
    """The tools' operations over a :class:`Platform`; use it on the thread that uses the platform."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def search(self, principal: Principal, request: SearchRequest) -> SearchResult:
        return self.platform.search(principal, request)

    def documents(self, principal: Principal, request: DocumentsRequest) -> list[DocumentView]:
        return self.platform.documents(principal, request)

    def find_document(self, principal: Principal, name: str, view: View) -> DocumentView:
        return self.platform.find_document(principal, name, view)

    def tables(self, principal: Principal, document_id: str, version_id: str, view: View) -> VersionTables:
        return self.platform.tables(principal, document_id, version_id, view)

    def page(self, principal: Principal, document_id: str, version_id: str, page: int, view: View) -> PageView:
        return self.platform.page(principal, document_id, version_id, page, view)

    def datasets(self, principal: Principal, known_at: TimeInput = None) -> list[DatasetView]:
        return self.platform.datasets(principal, known_at)

    def query_datasets(self, principal: Principal, request: DatasetQuery) -> QueryResult:
        return self.platform.query_datasets(principal, request)

    def record(self, principal: Principal, action: str, **fields: object) -> None:
        self.platform.audit.append_many([self.platform.ops.record(principal, action, **fields)])


class AsyncPlatformBackend:
    """The tools' operations over an :class:`AsyncPlatform` whose event loop is ``loop``, for
    callers on any other thread; each call waits at most ``timeout_s`` seconds."""

    def __init__(self, platform: AsyncPlatform, loop: asyncio.AbstractEventLoop, *, timeout_s: float = 60.0) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self.platform = platform
        self.loop = loop
        self.timeout_s = timeout_s

    def _run(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            # waiting here for the loop to run the operation would block the loop forever
            raise RuntimeError("call the agent's tools from a worker thread, not from the server's event loop")
        if self.loop.is_closed():
            raise StoreError("the service is stopping: its event loop is closed; try again once it is back")
        future = asyncio.run_coroutine_threadsafe(make(), self.loop)
        try:
            return future.result(self.timeout_s)
        except concurrent.futures.TimeoutError as exc:
            future.cancel()
            raise StoreError(
                f"the tool did not finish within {self.timeout_s:g} s; ask for less (fewer passages or rows, "
                "a narrower query)"
            ) from exc

    def search(self, principal: Principal, request: SearchRequest) -> SearchResult:
        return self._run(lambda: self.platform.search(principal, request))

    def documents(self, principal: Principal, request: DocumentsRequest) -> list[DocumentView]:
        return self._run(lambda: self.platform.documents(principal, request))

    def find_document(self, principal: Principal, name: str, view: View) -> DocumentView:
        return self._run(lambda: self.platform.find_document(principal, name, view))

    def tables(self, principal: Principal, document_id: str, version_id: str, view: View) -> VersionTables:
        return self._run(lambda: self.platform.tables(principal, document_id, version_id, view))

    def page(self, principal: Principal, document_id: str, version_id: str, page: int, view: View) -> PageView:
        return self._run(lambda: self.platform.page(principal, document_id, version_id, page, view))

    def datasets(self, principal: Principal, known_at: TimeInput = None) -> list[DatasetView]:
        return self._run(lambda: self.platform.datasets(principal, known_at))

    def query_datasets(self, principal: Principal, request: DatasetQuery) -> QueryResult:
        return self._run(lambda: self.platform.query_datasets(principal, request))

    def record(self, principal: Principal, action: str, **fields: object) -> None:
        self._run(lambda: self.platform.record(principal, action, **fields))


@dataclass(frozen=True)
class ToolContext:
    """One run's reach: its backend, its principal and its two clocks (instants, fixed when
    the run's toolbox was made, never past the time it was made)."""

    backend: ToolBackend
    principal: Principal
    as_of: datetime
    known_at: datetime

    def view(self) -> View:
        """The clocks as every document read takes them."""
        return View(as_of=self.as_of, known_at=self.known_at)

    def clocks(self) -> dict[str, str]:
        return {"as_of": self.as_of.isoformat(), "known_at": self.known_at.isoformat()}
