#!/usr/bin/env python3
"""`ask` latency beyond retrieval: the extractive generator's time per question.

Runs every question of a QA file against an already-ingested store: times `search` and then
the generator on the same hits, and prints p50/p95 of each plus how many answers were found.

    python benchmarks/ask_bench.py ../shared/corpus/sec10q/qa.jsonl --home /tmp/srfinal
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from strongroom.config import Settings
from strongroom.evaluate import load_qa
from strongroom.rag import ExtractiveGenerator
from strongroom.retrieve import search
from strongroom.runtime import open_runtime
from strongroom.types import Scope


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("qa", type=Path)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("-k", type=int, default=5)
    args = parser.parse_args()
    runtime = open_runtime(Settings(home=args.home))
    scope = Scope(frozenset({"public"}))
    generator = ExtractiveGenerator()
    retrieval: list[float] = []
    generation: list[float] = []
    found = 0
    for item in load_qa(args.qa):
        t0 = time.perf_counter()
        hits = search(runtime.store, runtime.embedder, item.question, scope, args.k)
        t1 = time.perf_counter()
        answer = generator.generate(item.question, hits)
        t2 = time.perf_counter()
        retrieval.append((t1 - t0) * 1000)
        generation.append((t2 - t1) * 1000)
        found += answer.found

    def pct(values: list[float], q: float) -> float:
        return round(sorted(values)[min(len(values) - 1, int(q * len(values)))], 2)

    print(
        json.dumps(
            {
                "questions": len(retrieval),
                "answered": found,
                "retrieval_ms_p50": round(statistics.median(retrieval), 2),
                "retrieval_ms_p95": pct(retrieval, 0.95),
                "generate_ms_p50": round(statistics.median(generation), 2),
                "generate_ms_p95": pct(generation, 0.95),
            }
        )
    )


if __name__ == "__main__":
    main()
