#!/usr/bin/env python3
"""Does the fine-tuned embedder retrieve better on documents it never saw? (issue 6)

Reads the lineage a `strongroom train embedder` run wrote, takes the documents it held out,
ingests them twice (base embedder, fine-tuned embedder) into fresh stores, and evaluates
both on the questions whose evidence lies entirely in held-out documents. Side by side in
one run. A benchmark, not a test.

    python benchmarks/finetune_eval.py /tmp/ft/model/strongroom-lineage.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "sec10q"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("lineage", type=Path)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--out", type=Path, default=Path("bench-out/finetune"))
    parser.add_argument("-k", type=int, default=5)
    args = parser.parse_args()
    lineage = json.loads(args.lineage.read_text())
    held = set(lineage["held_out_documents"])
    questions = [
        line
        for line in (args.corpus / "qa.jsonl").read_text().splitlines()
        if line.strip() and {e["doc"] for e in json.loads(line)["evidence"]} <= held
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    qa = args.out / "held-out-qa.jsonl"
    qa.write_text("\n".join(questions) + "\n")
    print(json.dumps({"held_out_documents": sorted(held), "questions": len(questions)}), flush=True)
    cli = [sys.executable, "-m", "strongroom.cli"]
    results = {}
    for name, embedder_env in (
        ("base", {"STRONGROOM_EMBEDDER": "minilm"}),
        ("fine-tuned", {"STRONGROOM_EMBEDDER": "sentence-transformers", "STRONGROOM_EMBEDDER_MODEL": lineage["model"]}),
    ):
        home = args.out / name
        shutil.rmtree(home, ignore_errors=True)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "STRONGROOM_HOME": str(home), **embedder_env}
        files = [str(args.corpus / "docs" / d) for d in sorted(held)]
        subprocess.run([*cli, "ingest", *files, "--json"], env=env, check=True, capture_output=True)
        done = subprocess.run([*cli, "eval", str(qa), "-k", str(args.k), "--json"], env=env, check=True,
                              capture_output=True, text=True)  # fmt: skip
        results[name] = json.loads(done.stdout)
        print(json.dumps({"embedder": name, **results[name]}), flush=True)
    k = args.k
    print(f"\n| embedder | questions | doc_hit@{k} | fact_recall@{k} | MRR |\n|---|---:|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['n']} | {r[f'doc_hit_at_{k}']} | {r[f'fact_recall_at_{k}']} | {r['mrr']} |")


if __name__ == "__main__":
    main()
