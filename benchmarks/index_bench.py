"""Scale benchmark for the in-memory keyword (BM25) and vector indexes of the embedded store.

    python benchmarks/index_bench.py --sizes 10000,100000,1000000 --queries 200 --seed 0

The data are synthetic: texts of 60-150 tokens drawn from a Zipfian vocabulary of 50,000
made-up words plus numbers ("82,959", "1.20"), and 384-dim vectors drawn from a mixture of
2,000 Gaussian clusters, then L2-normalised. Chunks come in documents of 20; each document
gets one ACL group, and the groups are sized so that one admits 1% of the chunks and another
30% (the 30% group exercises the filtered IVF path; 1% goes to the exact plan).

Queries: keyword = 3-6 distinct words of a stored text; dense = a stored vector plus noise.
Reported per (size, filter): build times, p50/p99 latency of each index's search(k=10), and
recall@10 of the dense search against brute force with the same filter. One JSON line each,
then a Markdown table. Latencies are wall-clock (time.perf_counter) on whatever machine runs
this; the figures say nothing about real embedding quality.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
from dataclasses import dataclass

import faiss
import numpy as np
import numpy.typing as npt

from strongroom.store.keyword import KeywordIndex
from strongroom.store.vectors import VectorIndex

DIM = 384
VOCAB = 50_000
CLUSTERS = 2_000
CHUNKS_PER_DOC = 20
BATCH = 10_000
K = 10
FILTERS = {"none": None, "acl 1%": 0.01, "acl 30%": 0.30}


@dataclass
class Corpus:
    keyword: KeywordIndex
    vectors: VectorIndex
    groups: npt.NDArray[np.int8]  # per chunk: 1 = the 1% group, 2 = the 30% group, 0 = others
    keyword_queries: list[str]
    dense_queries: npt.NDArray[np.float32]
    keyword_build_s: float
    dense_build_s: float


def make_vocabulary(rng: np.random.Generator) -> list[str]:
    """Unique pronounceable made-up words (so stemming and stopwords behave as for real text)."""
    syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"] + ["ex", "in", "or", "an", "ul"]
    words: set[str] = set()
    while len(words) < VOCAB:
        n = rng.integers(2, 5, size=VOCAB)
        picks = rng.integers(0, len(syllables), size=(VOCAB, 4))
        words.update("".join(syllables[j] for j in picks[i, : n[i]]) for i in range(VOCAB))
    return sorted(words)[:VOCAB]


def make_number(rng: np.random.Generator) -> str:
    kind = rng.integers(0, 3)
    if kind == 0:
        return f"{int(rng.integers(1_000, 999_999)):,}"  # 82,959
    if kind == 1:
        return f"{rng.uniform(0, 10):.2f}"  # 1.20
    return f"({int(rng.integers(1_000, 99_999)):,})"  # (2,028)


def build_corpus(size: int, n_queries: int, seed: int, vocab: list[str]) -> Corpus:
    rng = np.random.default_rng(seed)
    zipf_cdf = np.cumsum(1.0 / np.arange(1, VOCAB + 1))
    zipf_cdf /= zipf_cdf[-1]
    centers = rng.standard_normal((CLUSTERS, DIM)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    cluster_p = rng.lognormal(0.0, 1.0, CLUSTERS)
    cluster_p /= cluster_p.sum()

    n_docs = -(-size // CHUNKS_PER_DOC)
    doc_group = rng.choice(3, size=n_docs, p=[0.69, 0.01, 0.30]).astype(np.int8)
    groups = np.repeat(doc_group, CHUNKS_PER_DOC)[:size]
    query_rows = np.sort(rng.choice(size, size=n_queries, replace=False))
    keyword_queries: list[str] = []
    dense_queries = np.zeros((n_queries, DIM), dtype=np.float32)

    keyword, vectors = KeywordIndex(), VectorIndex(DIM)
    keyword_s = dense_s = 0.0
    for start in range(0, size, BATCH):
        rows = np.arange(start, min(size, start + BATCH))
        lengths = rng.integers(60, 151, size=len(rows))
        token_ids = np.searchsorted(zipf_cdf, rng.random(int(lengths.sum())))
        texts, offset = [], 0
        for length in lengths:
            words = [vocab[i] for i in token_ids[offset : offset + length]]
            offset += length
            for pos in rng.integers(0, length, size=int(rng.integers(0, 6))):  # a few numbers
                words[pos] = make_number(rng)
            texts.append(" ".join(words))
        noise = rng.standard_normal((len(rows), DIM), dtype=np.float32) * np.float32(0.9 / np.sqrt(DIM))
        batch = centers[rng.choice(CLUSTERS, size=len(rows), p=cluster_p)] + noise
        batch /= np.linalg.norm(batch, axis=1, keepdims=True)

        for q in np.flatnonzero((query_rows >= rows[0]) & (query_rows <= rows[-1])):
            local = int(query_rows[q] - rows[0])
            distinct = sorted(set(texts[local].split()))
            picked = rng.choice(len(distinct), size=min(len(distinct), int(rng.integers(3, 7))), replace=False)
            keyword_queries.append(" ".join(distinct[i] for i in picked))
            moved = batch[local] + rng.standard_normal(DIM).astype(np.float32) * np.float32(0.5 / np.sqrt(DIM))
            dense_queries[q] = moved / np.linalg.norm(moved)

        t = time.perf_counter()
        keyword.add(rows, texts)
        keyword_s += time.perf_counter() - t
        t = time.perf_counter()
        vectors.add(rows, batch)
        dense_s += time.perf_counter() - t
        if (start + BATCH) % 100_000 == 0:
            print(f"# {start + BATCH:,} of {size:,} chunks added", file=sys.stderr, flush=True)

    t = time.perf_counter()
    keyword.build()
    keyword_s += time.perf_counter() - t
    t = time.perf_counter()
    vectors.build()
    dense_s += time.perf_counter() - t
    return Corpus(keyword, vectors, groups, keyword_queries, dense_queries, keyword_s, dense_s)


def percentile_ms(samples: list[float], q: float) -> float:
    return round(float(np.percentile(samples, q)) * 1e3, 2)


def measure(corpus: Corpus, size: int, name: str, share: float | None) -> dict[str, object]:
    if share is None:
        mask = None
    else:
        mask = corpus.groups == (1 if share == 0.01 else 2)
    kw_times, kw_full = [], 0
    for text in corpus.keyword_queries:
        t = time.perf_counter()
        rows, _ = corpus.keyword.search(text, K, mask)
        kw_times.append(time.perf_counter() - t)
        kw_full += len(rows) == K
        assert mask is None or bool(mask[rows].all())
    dense_times, recalls = [], []
    for vector in corpus.dense_queries:
        t = time.perf_counter()
        rows, _ = corpus.vectors.search(vector, K, mask)
        dense_times.append(time.perf_counter() - t)
        assert mask is None or bool(mask[rows].all())
        truth, _ = corpus.vectors.search_exact(vector, K, mask)
        recalls.append(len(set(rows.tolist()) & set(truth.tolist())) / max(1, len(truth)))
    both = [a + b for a, b in zip(kw_times, dense_times, strict=True)]
    return {
        "size": size,
        "filter": name,
        "admitted": size if mask is None else int(mask.sum()),
        "keyword_build_s": round(corpus.keyword_build_s, 1),
        "dense_build_s": round(corpus.dense_build_s, 1),
        "keyword_p50_ms": percentile_ms(kw_times, 50),
        "keyword_p99_ms": percentile_ms(kw_times, 99),
        "keyword_full_k": round(kw_full / len(kw_times), 3),
        "dense_plan": corpus.vectors.plan(mask),
        "dense_p50_ms": percentile_ms(dense_times, 50),
        "dense_p99_ms": percentile_ms(dense_times, 99),
        "both_p50_ms": percentile_ms(both, 50),
        "recall_at_10": round(float(np.mean(recalls)), 4),
    }


def markdown(results: list[dict[str, object]]) -> str:
    columns = [
        ("size", "size"),
        ("filter", "filter"),
        ("admitted", "admitted"),
        ("keyword_build_s", "kw build s"),
        ("dense_build_s", "dense build s"),
        ("keyword_p50_ms", "kw p50 ms"),
        ("keyword_p99_ms", "kw p99 ms"),
        ("dense_plan", "dense plan"),
        ("dense_p50_ms", "dense p50 ms"),
        ("dense_p99_ms", "dense p99 ms"),
        ("both_p50_ms", "kw+dense p50 ms"),
        ("recall_at_10", "recall@10"),
    ]
    lines = ["| " + " | ".join(title for _, title in columns) + " |", "|" + "---|" * len(columns)]
    for r in results:
        lines.append(
            "| "
            + " | ".join(f"{r[key]:,}" if key in ("size", "admitted") else str(r[key]) for key, _ in columns)
            + " |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated corpus sizes")
    parser.add_argument("--queries", type=int, default=200, help="queries per size and filter")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]

    print(
        f"# machine: {platform.machine()}, {os.cpu_count()} CPU cores, python {platform.python_version()}, "
        f"numpy {np.__version__}, faiss {faiss.__version__}, faiss threads {faiss.omp_get_max_threads()}"
    )
    print(
        "# data: synthetic (Zipfian texts over 50k made-up words + numbers; 384-dim vectors from a "
        "mixture of 2,000 Gaussian clusters, normalised), k=10",
        flush=True,
    )
    vocab = make_vocabulary(np.random.default_rng(args.seed))
    results = []
    for size in sizes:
        corpus = build_corpus(size, args.queries, args.seed + size, vocab)
        for name, share in FILTERS.items():
            result = measure(corpus, size, name, share)
            results.append(result)
            print(json.dumps(result), flush=True)
        del corpus
        gc.collect()
    print()
    print(markdown(results))


if __name__ == "__main__":
    main()
