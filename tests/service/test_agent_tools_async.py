"""The agent's tools over the HTTP service's driver, :class:`~strongroom.service.AsyncPlatform`:
the platform lives on an event loop in its own thread (as under uvicorn), its store on a store
thread; a run's thread calls the toolbox synchronously and each operation is scheduled on the
loop. The same entitlements, clocks and audit records as through the sync driver; a call on
the loop's own thread is refused (it would wait on itself); a stuck operation times out."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from strongroom.audit import AuditEvent, open_audit_log
from strongroom.auth import open_key_store
from strongroom.config import Settings
from strongroom.errors import NotFound, QueryError, StoreError
from strongroom.runtime import open_runtime
from strongroom.service import IngestRequest, Platform
from strongroom.service.agent_tools import TOOL_ACTION, toolbox_for
from strongroom.service.async_platform import AsyncPlatform
from strongroom.service.batching import Batcher
from strongroom.service.datasets import DatasetLoad
from strongroom.service.operations import Operations
from strongroom.service.records import QueryRedactor
from strongroom.service.requests import DocumentView
from strongroom.testing import HashEmbedder
from strongroom.types import Principal

from .agent_world import ADMIN, ANA, DESK_NOTE, EVE, INJECTION, LOADER, PRICES, RATES, SECRETS, audit_events


@dataclass
class Served:
    platform: AsyncPlatform
    loop: asyncio.AbstractEventLoop
    store_pool: ThreadPoolExecutor
    settings: Settings


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    files = tmp_path_factory.mktemp("files")
    (files / "watchlist-memo.md").write_text(INJECTION)
    (files / "prices.csv").write_text(PRICES)
    settings = Settings(home=tmp_path_factory.mktemp("home"), embedder="hash")
    with Platform.open(settings, embedder=HashEmbedder(64)) as p:  # the operator's set-up
        for path, acl in ((DESK_NOTE, "rates-desk"), (files / "watchlist-memo.md", "public")):
            p.ingest(ADMIN, IngestRequest(paths=(path,), acl=frozenset({acl}), published="2023-05-01"))
        p.load_dataset(LOADER, DatasetLoad(files / "prices.csv", "prices", frozenset({"research"}), "day"))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-server-loop", daemon=True)
    thread.start()
    pool = ThreadPoolExecutor(1, thread_name_prefix="test-store")
    runtime = pool.submit(open_runtime, settings, HashEmbedder(64)).result()
    audit = open_audit_log(settings)
    keys = open_key_store(settings)
    writer: Batcher[AuditEvent, int] = Batcher(audit.append_many, 64, "audit")
    ops = Operations(settings, runtime.store, runtime.embedder, QueryRedactor.for_settings(settings))
    platform = AsyncPlatform(settings, ops, keys, audit, store_pool=pool, audit_writer=writer)
    try:
        yield Served(platform, loop, pool, settings)
    finally:
        asyncio.run_coroutine_threadsafe(platform.aclose(), loop).result(30)
        pool.submit(runtime.close).result()
        pool.shutdown(wait=True)
        writer.close()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        audit.close()
        keys.close()


def test_a_run_thread_reads_through_the_service_loop_with_the_principals_entitlements(served: Served) -> None:
    ask = {"query": "Example Bank senior notes order book", "k": 5}
    rates = toolbox_for(served.platform, RATES, loop=served.loop, run_id="run-async")
    found = rates.call("search_documents", ask)
    assert {p["source"].rsplit("/", 1)[-1] for p in found.content["passages"]} >= {"rates-desk-note.md"}  # type: ignore[attr-defined]
    eve = toolbox_for(served.platform, EVE, loop=served.loop, run_id="run-async")
    assert "rates-desk" not in str(eve.call("search_documents", ask).content)
    with pytest.raises(NotFound):
        eve.call("filing_table", {"document": "rates-desk-note.md", "page": 1})
    table = rates.call("filing_table", {"document": "rates-desk-note.md", "line_item": "coupon"})
    assert table.content["rows"]
    prices = toolbox_for(served.platform, ANA, loop=served.loop, as_of="2023-06-30")
    out = prices.call("query_data", {"sql": "SELECT max(day) AS last FROM prices"})
    assert out.content["rows"] == [["2023-06-30"]]
    with pytest.raises(QueryError, match="unknown dataset"):
        eve.call("query_data", {"sql": "SELECT * FROM prices"})


def test_the_toolbox_can_be_made_on_the_loop_and_called_off_it(served: Served) -> None:
    async def make() -> object:
        return toolbox_for(served.platform, ANA, run_id="run-made-on-loop")  # the running loop is the one

    box = asyncio.run_coroutine_threadsafe(make(), served.loop).result(10)
    out = box.call("list_datasets", {})  # type: ignore[attr-defined]
    assert [d["name"] for d in out.content["datasets"]] == ["prices"]


def test_a_call_on_the_loop_thread_is_refused_rather_than_deadlocking(served: Served) -> None:
    box = toolbox_for(served.platform, ANA, loop=served.loop)

    async def on_loop() -> object:
        return box.call("list_datasets", {})

    with pytest.raises(RuntimeError, match="worker thread"):
        asyncio.run_coroutine_threadsafe(on_loop(), served.loop).result(10)


def test_a_stuck_store_times_out_with_a_message_and_a_record(served: Served) -> None:
    box = toolbox_for(served.platform, ANA, loop=served.loop, timeout_s=0.2, run_id="run-stuck")
    release = threading.Event()
    served.store_pool.submit(release.wait, 30)  # the store thread is busy until released
    try:
        with pytest.raises(StoreError, match="did not finish within"):
            box.call("search_documents", {"query": "net sales"})
    finally:
        release.set()
    with Platform.open(served.settings, embedder=HashEmbedder(64)) as p:
        mine = [r for r in audit_events(p, TOOL_ACTION) if r["target"] == "run-stuck"]
        assert [(r["action"], r["outcome"]) for r in mine] == [("agent.tool.search_documents", "error")]


def test_records_come_through_the_service_audit_writer_without_content(served: Served) -> None:
    box = toolbox_for(served.platform, RATES, loop=served.loop, run_id="run-async-audit")
    box.call("search_documents", {"query": "relative value fair spread", "k": 3})
    with Platform.open(served.settings, embedder=HashEmbedder(64)) as p:
        mine = [r for r in audit_events(p, TOOL_ACTION) if r["target"] == "run-async-audit"]
        assert [(r["action"], r["outcome"], r["principal"]) for r in mine] == [
            ("agent.tool.search_documents", "ok", "rates")
        ]
        everything = str(audit_events(p))
    assert not [s for s in SECRETS if s in everything]


def test_find_document_on_the_loop_answers_as_the_platform_does(served: Served) -> None:
    def find(who: Principal, name: str) -> DocumentView:
        return asyncio.run_coroutine_threadsafe(served.platform.find_document(who, name), served.loop).result(30)

    found = find(RATES, "rates-desk-note.md")
    with Platform.open(served.settings, embedder=HashEmbedder(64)) as p:
        assert found == p.find_document(RATES, "rates-desk-note.md")
    assert find(RATES, found.document_id[:8]) == found
    with pytest.raises(NotFound):
        find(EVE, "rates-desk-note.md")  # not theirs: as absent as a name nobody has
    with pytest.raises(NotFound):
        find(RATES, "no-such-note.md")
