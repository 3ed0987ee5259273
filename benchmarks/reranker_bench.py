#!/usr/bin/env python3
"""Does a cross-encoder reranker trained here pay for its latency? (issue 16, deliverable 4)

Trains :mod:`strongroom.train.reranker` from the bundled MiniLM (a fresh one-output head) on
pairs made from the store's own chunks (:mod:`strongroom.train.pairs`: pseudo-queries, BM25
hard negatives from other filings, plus retrieval's near misses mined from the store; no
labels, no network), on a budget two CPU cores get through in minutes, and writes its
lineage beside it. Then, side by side in one run on the page-labelled sec10q questions:
plain ``search(k=5)``, and ``search(k=N)`` reranked to the top 5 by the trained model for
each N in ``--depths`` (and by the untrained one, the bundled MiniLM with a fresh head, to
show what training bought). Latency is the whole call, query embedding included. Figures
are also given for the questions whose filings the training held out. A benchmark, not a test.

    cp -a /tmp/sr16 /tmp/sr16rr   # a home holding the 20 filings (its own copy: the job writes nothing there, but)
    HF_HUB_OFFLINE=1 nice -n 10 .venv/bin/python benchmarks/reranker_bench.py --home /tmp/sr16rr --out /tmp/rr-bench
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

from strongroom.config import DEFAULT_ACL, Settings
from strongroom.embed import bundled_model_path
from strongroom.evaluate import QAItem, load_qa, run_eval
from strongroom.retrieve import search
from strongroom.runtime import open_runtime
from strongroom.service.training import write_reranker_lineage
from strongroom.train.pairs import make_pairs
from strongroom.train.reranker import Reranker, RerankerConfig, mine_negatives, train_reranker
from strongroom.types import Hit, Scope

DEFAULT_QA = Path(__file__).parent / "data" / "sec10q_qa_pages.jsonl"
EVAL_SHARE, SEED, K = 0.2, 0, 5
METRICS = ("page_hit_at_5", "page_recall_at_5", "fact_recall_at_5", "doc_hit_at_5", "mrr")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True, help="a home holding the sec10q filings (a copy)")
    parser.add_argument("--out", type=Path, required=True, help="where the reranker, its checkpoints and lineage go")
    parser.add_argument("--qa", type=Path, default=DEFAULT_QA)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=8, help="queries per step")
    parser.add_argument("--group", type=int, default=4, help="passages per query: positive + negatives")
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--train-max-len", type=int, default=128, help="tokens per (query, passage) in training")
    parser.add_argument("--max-len", type=int, default=256, help="tokens per (query, passage) when reranking")
    parser.add_argument("--depths", default="10,20", help="candidates searched before reranking to the top 5")
    parser.add_argument("--questions", type=int, default=0, help="only the first N labelled questions (0: all)")
    parser.add_argument("--no-untrained", action="store_true", help="skip the untrained cross-encoder")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

    runtime = open_runtime(Settings(home=args.home))
    store, embedder = runtime.store, runtime.embedder
    scope = Scope(frozenset({DEFAULT_ACL}))

    # pairs: one epoch's worth, a seeded sample of the training documents' pairs
    started = time.perf_counter()
    pairs = list(make_pairs(store.iter_versions(), store, scope, split="train", eval_share=EVAL_SHARE, seed=SEED))
    sample = random.Random(SEED).sample(range(len(pairs)), min(len(pairs), args.steps * args.batch_size))
    chosen = [pairs[i] for i in sorted(sample)]
    vectors = dict(zip([p.query for p in chosen], embedder.embed([p.query for p in chosen]), strict=True))
    mined = mine_negatives(chosen, store, lambda q: search(store, vectors[q], q, scope, k=10))
    pairs_s = time.perf_counter() - started
    print(json.dumps({"pairs_available": len(pairs), "pairs_used": len(mined), "pairs_s": round(pairs_s, 1)}))

    config = RerankerConfig(
        base_model=bundled_model_path(), output_dir=args.out, seed=SEED, steps=args.steps,
        checkpoint_every=max(1, args.steps // 4), batch_size=args.batch_size, group=args.group,
        learning_rate=args.learning_rate, max_seq_length=args.train_max_len,
    )  # fmt: skip
    stats: dict[str, float] = {}

    def progress(step: int, loss: float) -> None:
        if step % 5 == 0 or step == args.steps:
            print(f"step {step}/{args.steps} loss {loss:.3f}", flush=True)

    started = time.perf_counter()
    model = train_reranker(config, mined, on_step=progress, stats=stats)
    train_s = time.perf_counter() - started
    lineage = write_reranker_lineage(model, store, training_pairs=len(mined), eval_share=EVAL_SHARE, seed=SEED)
    print(json.dumps({"trained": str(model), "steps": int(stats["steps"]), "train_s": round(train_s, 1),
                      "step_s_mean": round(stats["step_s"] / max(1.0, stats["steps"]), 2),
                      "weights_sha256": lineage["weights_sha256"]}), flush=True)  # fmt: skip

    items = [i for i in load_qa(args.qa) if any(e.page is not None for e in i.evidence)]
    items = items[: args.questions] if args.questions else items
    held = set(lineage["held_out_documents"])  # type: ignore[call-overload]
    held_items = [i for i in items if {e.doc for e in i.evidence} <= held]

    def plain(query: str, k: int = K) -> list[Hit]:
        return search(store, embedder, query, scope, k=k)

    def reranked(reranker: Reranker, depth: int) -> Callable[[str], list[Hit]]:
        return lambda query: reranker.rerank(query, plain(query, depth), top=K)

    trained = Reranker(model, max_length=args.max_len)
    depths = [int(d) for d in args.depths.split(",")]
    variants: list[tuple[str, Callable[[str], list[Hit]]]] = [("search k=5", plain)]
    variants += [(f"search k={n} + trained rerank", reranked(trained, n)) for n in depths]
    if args.train_max_len != args.max_len:  # the cheaper window, at the shallower depth
        short = Reranker(model, max_length=args.train_max_len)
        name = f"search k={depths[0]} + trained rerank @{args.train_max_len} tokens"
        variants.append((name, reranked(short, depths[0])))
    if not args.no_untrained:
        untrained = Reranker(bundled_model_path(), max_length=args.max_len, fresh_head=True)
        variants.append((f"search k={depths[-1]} + untrained rerank", reranked(untrained, depths[-1])))

    results = []
    for name, fn in variants:
        row = _measure(name, fn, items, held_items)
        results.append(row)
        print(json.dumps(row), flush=True)
    runtime.close()
    print(json.dumps({"questions": len(items), "held_out_questions": len(held_items),
                      "held_out_documents": sorted(held),
                      "training": {"steps": args.steps, "batch_size": args.batch_size, "group": args.group,
                                   "learning_rate": args.learning_rate, "train_max_len": args.train_max_len,
                                   "pairs_s": round(pairs_s, 1), "train_s": round(train_s, 1)},
                      "results": results}, indent=1))  # fmt: skip


def _measure(
    name: str, fn: Callable[[str], list[Hit]], items: list[QAItem], held_items: list[QAItem]
) -> dict[str, object]:
    """``fn`` on every question (latency and metrics), then its hits again for the held-out ones."""
    fn(items[0].question)  # load and warm up once, untimed
    seen: dict[str, list[Hit]] = {}

    def recorded(query: str) -> list[Hit]:
        seen[query] = fn(query)
        return seen[query]

    every = run_eval(items, recorded, k=K)
    held = run_eval(held_items, seen.__getitem__, k=K) if held_items else {}
    return {
        "variant": name,
        **{m: every[m] for m in METRICS},
        "search_ms_p50": every["search_ms_p50"],
        "search_ms_p95": every["search_ms_p95"],
        "held_out": {m: held.get(m) for m in ("page_hit_at_5", "page_recall_at_5", "fact_recall_at_5")},
    }


if __name__ == "__main__":
    main()
