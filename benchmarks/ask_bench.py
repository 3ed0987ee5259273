#!/usr/bin/env python3
"""Answers that carry the numbers: fact recall of the extractive answer and its latency.

Runs every question of a QA file against an already-ingested store, searches once, then
answers the same hits with each generator side by side:

* ``before``: strongroom before issue 16: retrieval without synonyms or statements, then
  the sentence extractor alone (searched separately, so its retrieval time is its own);
* ``sentences``: today's retrieval, then the sentence extractor alone;
* ``tables``: today's retrieval, then the table-cell answerer first, reading each hit's page
  for periods and scale (the default).

For the questions with facts it prints the share of facts found verbatim in the answer's
claims (answer fact recall), in its first claim (first-claim fact recall) and in the
retrieved chunks (fact_recall@k); and p50/p95 of retrieval and of each generator.

    python benchmarks/ask_bench.py ../shared/corpus/sec10q/qa.jsonl --home /tmp/sr16
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
from strongroom.retrieve import Fusion, search
from strongroom.runtime import open_runtime
from strongroom.types import Answer, Scope


def _recall(facts: list[str], text: str) -> float:
    return sum(f in text for f in facts) / len(facts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("qa", type=Path)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("-k", type=int, default=5)
    parser.add_argument("--show", action="store_true", help="print each question's first claim")
    args = parser.parse_args()
    runtime = open_runtime(Settings(home=args.home))
    scope = Scope(frozenset({"public"}))
    generators = {
        "before": ExtractiveGenerator(max_tables=0),
        "sentences": ExtractiveGenerator(max_tables=0),
        "tables": ExtractiveGenerator(pages=runtime.store.page_text),
    }
    before = Fusion(synonyms=False, statement=0.0)
    retrieval: list[float] = []
    timing: dict[str, list[float]] = {name: [] for name in generators}
    recall: dict[str, list[float]] = {name: [] for name in generators}
    first: dict[str, list[float]] = {name: [] for name in generators}
    found = dict.fromkeys(generators, 0)
    retrieved: list[float] = []
    retrieved_before: list[float] = []
    retrieval_before: list[float] = []
    for item in load_qa(args.qa):
        t0 = time.perf_counter()
        hits = search(runtime.store, runtime.embedder, item.question, scope, args.k)
        retrieval.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        old_hits = search(runtime.store, runtime.embedder, item.question, scope, args.k, fusion=before)
        retrieval_before.append((time.perf_counter() - t0) * 1000)
        for name, generator in generators.items():
            t1 = time.perf_counter()
            answer: Answer = generator.generate(item.question, old_hits if name == "before" else hits)
            timing[name].append((time.perf_counter() - t1) * 1000)
            found[name] += answer.found
            if item.facts:
                recall[name].append(_recall(item.facts, "\n".join(c.text for c in answer.claims)))
                first[name].append(_recall(item.facts, answer.claims[0].text) if answer.claims else 0.0)
                if args.show and name == "tables":
                    claim = answer.claims[0].text[:300] if answer.claims else "-"
                    print(f"{recall[name][-1]:.2f} {item.question[:90]}\n    {claim}")
        if item.facts:
            retrieved.append(_recall(item.facts, "\n".join(h.chunk.text for h in hits)))
            retrieved_before.append(_recall(item.facts, "\n".join(h.chunk.text for h in old_hits)))

    def pct(values: list[float], q: float) -> float:
        return round(sorted(values)[min(len(values) - 1, int(q * len(values)))], 2)

    print(
        json.dumps(
            {
                "questions": len(retrieval),
                "with_facts": len(retrieved),
                f"fact_recall_at_{args.k}": round(statistics.fmean(retrieved), 3),
                "retrieval_ms_p50": round(statistics.median(retrieval), 2),
                "retrieval_ms_p95": pct(retrieval, 0.95),
                f"before_fact_recall_at_{args.k}": round(statistics.fmean(retrieved_before), 3),
                "before_retrieval_ms_p50": round(statistics.median(retrieval_before), 2),
                **{
                    name: {
                        "answered": found[name],
                        "answer_fact_recall": round(statistics.fmean(recall[name]), 3),
                        "first_claim_fact_recall": round(statistics.fmean(first[name]), 3),
                        "generate_ms_p50": round(statistics.median(timing[name]), 2),
                        "generate_ms_p95": pct(timing[name], 0.95),
                    }
                    for name in generators
                },
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
