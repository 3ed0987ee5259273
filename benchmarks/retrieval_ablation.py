#!/usr/bin/env python3
"""Retrieval settings side by side: page/doc/fact metrics at k for several `Fusion` variants,
in one process over one store (the ablation table of BENCHMARKS.md §2, issue 16).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/retrieval_ablation.py --home /tmp/sr16 \\
        '{"synonyms": false, "statement": 0}' '{}' '{"page": 0.1}'

Each variant is a JSON object of `strongroom.retrieve.Fusion` fields ({} is the defaults).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from strongroom.config import Settings
from strongroom.evaluate import load_qa, run_eval
from strongroom.retrieve import Fusion, search
from strongroom.runtime import open_runtime
from strongroom.types import Scope

DEFAULT_QA = Path(__file__).parent / "data" / "sec10q_qa_pages.jsonl"
DEFAULT_VARIANTS = ['{"synonyms": false, "statement": 0}', '{"statement": 0}', '{"synonyms": false}', "{}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("variants", nargs="*", default=DEFAULT_VARIANTS)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--qa", type=Path, default=DEFAULT_QA)
    parser.add_argument("-k", type=int, default=5)
    args = parser.parse_args()
    runtime = open_runtime(Settings(home=args.home))
    items = load_qa(args.qa)
    scope = Scope(frozenset({"public"}))
    store, embedder = runtime.store, runtime.embedder
    for variant in args.variants:
        fusion = Fusion(**json.loads(variant))
        found = run_eval(items, lambda q, f=fusion: search(store, embedder, q, scope, args.k, fusion=f), args.k)
        keys = ("doc_hit", "page_hit", "page_recall", "fact_recall")
        print(json.dumps({"variant": json.loads(variant), **{k: found[f"{k}_at_{args.k}"] for k in keys},
                          "mrr": found["mrr"], "search_ms_p50": found["search_ms_p50"]}))  # fmt: skip


if __name__ == "__main__":
    main()
