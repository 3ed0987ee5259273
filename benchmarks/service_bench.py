"""What the application layer costs per search, over calling retrieval directly, side by side.

One store, one process, the same questions with the same query vectors (embedded once,
beforehand), three arms interleaved question by question so the machine's drift hits all
three alike:

* ``direct``: ``retrieve.search(store, v, q, scope, k)``, the scope built by hand;
* ``operation``: ``Operations.search(principal, SearchRequest(...), vector=v)``: roles, clock
  parsing and clamping, scope, the entitlement re-check, the redacted query and its keyed
  hash, the audit record built (what the HTTP service runs on its store thread; the record is
  then committed with those of concurrent requests on another thread);
* ``platform``: ``Platform.search``: the operation and the audit record's synchronous append
  (a signed checkpoint and a committed transaction: what each CLI command pays).

It prints p50/p90 per arm and the per-question differences' median (the layer's cost).

    python benchmarks/service_bench.py --docs 2000 --queries 300
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from strongroom.config import Settings
from strongroom.retrieve import search
from strongroom.service import Platform, SearchRequest
from strongroom.testing import HashEmbedder
from strongroom.testing.builders import make_version
from strongroom.types import Scope

QA = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "sec10q" / "qa.jsonl"
WORDS = (
    "revenue net sales operating income margin cash flow capital expenditure guidance segment quarter fiscal "
    "dividend share repurchase liquidity debt covenant inventory gross profit research development tax"
).split()


def _questions(n: int) -> list[str]:
    if QA.is_file():
        lines = [json.loads(line)["question"] for line in QA.read_text().splitlines() if line.strip()]
        return [lines[i % len(lines)] for i in range(n)]
    rng = np.random.default_rng(1)
    return [" ".join(rng.choice(WORDS, 6)) for _ in range(n)]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=2000, help="documents in the store (5 chunks each)")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("-k", type=int, default=10)
    args = parser.parse_args()

    embedder = HashEmbedder(64)
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp) / "home", embedder="hash")
        with Platform.open(settings, embedder=embedder) as platform:
            store = platform.runtime.store
            groups = ["public", "research", "desk", "legal"]
            started = time.perf_counter()
            for i in range(args.docs):
                pages = [" ".join(rng.choice(WORDS, 60)) + f" doc{i}" for _ in range(5)]
                store.write(make_version(embedder, f"corpus/doc{i}.txt", pages, acl=[groups[i % len(groups)]]))
            store.save_indexes()
            built = time.perf_counter() - started
            print(f"store: {args.docs} documents, {store.counts()['chunks']} chunks in {built:.0f} s")

            principal = platform.principal("bench", ["public", "research"], auth="python")
            scope = Scope.for_principal(principal)
            questions = _questions(args.queries)
            vectors = embedder.embed(questions)
            arms: dict[str, list[float]] = {"direct": [], "operation": [], "platform": []}
            for q, v in zip(questions[:20], vectors[:20], strict=True):  # warm the indexes and caches
                search(store, v, q, scope, args.k)
                platform.ops.search(principal, SearchRequest(query=q, k=args.k), vector=v)
            for i, (q, v) in enumerate(zip(questions, vectors, strict=True)):
                request = SearchRequest(query=q, k=args.k)
                # alternate which arm runs first, so neither gains from the other's warm caches
                for arm in ("direct", "operation") if i % 2 == 0 else ("operation", "direct"):
                    t0 = time.perf_counter()
                    if arm == "direct":
                        direct = search(store, v, q, scope, args.k)
                    else:
                        outcome = platform.ops.search(principal, request, vector=v)
                    arms[arm].append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                platform.audit.append_many(list(outcome.events))
                arms["platform"].append(arms["operation"][-1] + (time.perf_counter() - t0) * 1000)
                assert [h.chunk.id for h in direct] == [h.chunk.id for h in outcome.result().hits]

    print(f"{args.queries} searches, k={args.k}, interleaved; milliseconds")
    print(f"{'arm':<10} {'p50':>8} {'p90':>8} {'p99':>8}")
    for name, values in arms.items():
        p50, p90, p99 = statistics.median(values), _percentile(values, 0.9), _percentile(values, 0.99)
        print(f"{name:<10} {p50:8.3f} {p90:8.3f} {p99:8.3f}")
    for name in ("operation", "platform"):
        extra = [a - b for a, b in zip(arms[name], arms["direct"], strict=True)]
        median, p90 = statistics.median(extra), _percentile(extra, 0.9)
        print(f"{name} - direct, per question: median {median:.3f} ms, p90 {p90:.3f} ms")


if __name__ == "__main__":
    main()
