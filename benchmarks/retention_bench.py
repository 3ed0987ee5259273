"""Retention over a large embedded (SQLite) store: how long ``retention apply`` takes to delete
the expired half of 1M chunks, with some expired documents under legal hold.

    python benchmarks/retention_bench.py --docs 10000 --chunks 100 --held 50 --seed 0

The store is seeded through its own write path (``SqliteStore.write``, one transaction per
version, as ingestion writes) with synthetic documents: ``--chunks`` chunks of ~40 made-up
words each, random unit vectors of 64 dimensions (the embedder is not what is measured), half
of the documents published in 2001 and half in 2024, every one a ``research_report``. One
policy keeps research 7 years; ``--held`` of the expired documents are under a document hold,
plus every expired document of one source folder under a source hold.

Then, through the application layer as an admin (``Platform.retaining``, the code path of
``strongroom retention apply`` and the service's schedule): a dry run, then the real run. It
prints one JSON line and a Markdown row: seed time, dry-run and apply wall time, documents and
chunks deleted, held, and the load average at start (the machine may be shared; say so).
"""

from __future__ import annotations

import argparse
import json
import os
import platform as host
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from strongroom.config import Settings
from strongroom.embed import cache_key
from strongroom.service import Platform
from strongroom.store.base import NewVersion
from strongroom.testing import HashEmbedder
from strongroom.types import Chunk, DocumentVersion, Page, Principal, document_id_for, frozen_meta, sha256_hex

DIM = 64
WORDS_PER_CHUNK = 40
OLD = datetime(2001, 3, 1, tzinfo=UTC)
NEW = datetime(2024, 3, 1, tzinfo=UTC)
ADMIN = Principal("bench", frozenset({"research"}), frozenset({"reader", "ingester", "admin"}), "python")


def make_version(i: int, chunks: int, rng: np.random.Generator, vocab: list[str]) -> NewVersion:
    """Document ``i``: one page of ``chunks`` chunks, each exactly its span of the page."""
    source = f"s3://bank/research/{'folder-a' if i % 10 == 0 else 'folder-b'}/note-{i:06d}.txt"
    picks = rng.integers(0, len(vocab), size=(chunks, WORDS_PER_CHUNK))
    texts = [f"note {i} part {c} " + " ".join(vocab[j] for j in picks[c]) + "." for c in range(chunks)]
    page_text = "\n".join(texts)
    version_id = sha256_hex(page_text.encode())
    out: list[Chunk] = []
    start = 0
    for c, text in enumerate(texts):
        end = start + len(text)
        out.append(Chunk(Chunk.make_id(version_id, 1, start, end), version_id, c, 1, start, end, text, source))
        start = end + 1
    vectors = rng.standard_normal((chunks, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    published = OLD if i % 2 == 0 else NEW
    version = DocumentVersion(
        id=version_id,
        document_id=document_id_for(source),
        source=source,
        title=f"Research note {i}",
        media_type="text/plain",
        doc_type="research_report",
        acl=frozenset({"research"}),
        published_at=published,
        ingested_at=published,
        size=len(page_text),
        pages=1,
        metadata=frozen_meta({"sensitivity": "internal"}),
    )
    keys = tuple(cache_key(f"hash-{DIM}", t) for t in texts)
    return NewVersion(version, (Page(1, page_text),), tuple(out), vectors, keys)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--chunks", type=int, default=100, help="chunks per document")
    parser.add_argument("--held", type=int, default=50, help="expired documents under a document hold")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--home", type=Path, default=None, help="where to build the store (default: a temp dir)")
    args = parser.parse_args()

    load = os.getloadavg()[0]
    home = args.home or Path(tempfile.mkdtemp(prefix="retention-bench-"))
    rng = np.random.default_rng(args.seed)
    vocab = [f"w{i:05d}" for i in range(20_000)]
    settings = Settings(home=home, embedder="hash")
    try:
        with Platform.open(settings, embedder=HashEmbedder(DIM)) as platform:
            store = platform.runtime.store
            started = time.perf_counter()
            for i in range(args.docs):
                store.write(make_version(i, args.chunks, rng, vocab))
            seed_s = time.perf_counter() - started
            before = store.counts()
            print(f"seeded {args.docs} documents, {before} in {seed_s:.1f} s", file=sys.stderr)

            platform.set_retention_policy(ADMIN, {"id": "research-7y", "keep": "7y", "doc_type": "research_report"})
            expired_ids = [document_id_for(f"s3://bank/research/folder-b/note-{i:06d}.txt")
                           for i in range(2, args.docs, 2) if i % 10 != 0][: args.held]  # fmt: skip
            for doc in expired_ids:
                platform.retaining(lambda r, d=doc: r.place(ADMIN, "M-BENCH", "benchmark", document_id=d))
            platform.retaining(
                lambda r: r.place(ADMIN, "M-BENCH-2", "benchmark", source="s3://bank/research/folder-a/")
            )

            started = time.perf_counter()
            dry = platform.retaining(lambda r: r.apply(ADMIN, dry_run=True))
            dry_s = time.perf_counter() - started
            started = time.perf_counter()
            report = platform.retaining(lambda r: r.apply(ADMIN))
            apply_s = time.perf_counter() - started
            after = store.counts()
    finally:
        if args.home is None:
            shutil.rmtree(home, ignore_errors=True)
    result = {
        "docs": args.docs,
        "chunks_per_doc": args.chunks,
        "chunks_before": before.get("chunks"),
        "chunks_after": after.get("chunks"),
        "chunks_deleted": (before.get("chunks") or 0) - (after.get("chunks") or 0),
        "docs_deleted": len(report.deleted),
        "docs_held": len(report.held),
        "docs_kept": report.kept,
        "dry_run_would_delete": len(dry.deleted),
        "seed_s": round(seed_s, 1),
        "dry_run_s": round(dry_s, 2),
        "apply_s": round(apply_s, 1),
        "load_avg_at_start": round(load, 2),
        "cpus": os.cpu_count(),
        "python": host.python_version(),
    }
    print(json.dumps(result))
    print(
        f"| {result['chunks_before']:,} chunks ({args.docs:,} docs x {args.chunks}) | {result['seed_s']} s | "
        f"{result['dry_run_s']} s | **{result['apply_s']} s** | {result['docs_deleted']:,} | "
        f"{result['chunks_deleted']:,} | {result['docs_held']} | {result['load_avg_at_start']} |"
    )


if __name__ == "__main__":
    main()
