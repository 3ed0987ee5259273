#!/usr/bin/env python3
"""Checkpoint cost in distributed fine-tuning: step time with and without checkpoints.

Runs the bundled MiniLM under torchrun (2 processes, gloo on CPU) three times on synthetic
financial pairs: no checkpoints, synchronous saves, asynchronous saves (their own process
group). Reports the mean step time and the time the steps waited for saves.

    python benchmarks/checkpoint_bench.py --steps 30 --every 10

The target (issue 6) is about a save every 50 steps: the blocking part of an async save at
most 5% of step time over an interval, i.e. blocking per save / (50 x step time) <= 0.05.
A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ITEMS = "net sales|operating income|gross margin|cash and equivalents|long-term debt|diluted EPS|R&D expense".split("|")


def job(config_path: str) -> None:
    """One rank's work (run by torchrun)."""
    from strongroom.train.embedder import TrainConfig, train_embedder
    from strongroom.train.pairs import Pair

    raw = json.loads(Path(config_path).read_text())
    report = Path(raw.pop("report"))
    pairs = [
        Pair(
            f"{ITEMS[i % 7]} in quarter {i % 4 + 1} of {2020 + i % 5}",
            f"{ITEMS[i % 7]} for the quarter {i % 4 + 1}, {2020 + i % 5} was {i * 37 % 900} million, "
            f"compared with {i * 53 % 900} million a year earlier, driven by demand and pricing.",
            f"c{i}",
            f"d{i % 9}",
            (f"{ITEMS[(i + 3) % 7]} fell to {i * 11 % 500} million in the period.",),
        )
        for i in range(400)
    ]
    stats: dict[str, float] = {}
    train_embedder(TrainConfig(**raw), pairs, stats=stats)
    if os.environ.get("RANK", "0") == "0":
        report.write_text(json.dumps(stats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--nproc", type=int, default=2)
    args = parser.parse_args()
    from strongroom.embed import bundled_model_path

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode, every, background in (
            ("none", 10**6, False),
            ("sync", args.every, False),
            ("async", args.every, True),
        ):
            out = Path(tmp) / mode
            config = {
                "base_model": bundled_model_path(),
                "output_dir": str(out),
                "steps": args.steps,
                "batch_size": args.batch,
                "checkpoint_every": every,
                "async_save": background,
                "max_seq_length": 128,
                "report": str(out / "stats.json"),
            }
            path = Path(tmp) / f"{mode}.json"
            path.write_text(json.dumps(config))
            command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node"]
            command += [str(args.nproc), __file__, "--job", str(path)]
            env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
            subprocess.run(command, check=True, env=env, capture_output=True)
            stats = json.loads((out / "stats.json").read_text())
            saves = args.steps // every if every <= args.steps else 0
            # the final step always saves; in "none" that one save is excluded from step time below
            step_ms = 1000 * (stats["step_s"] - stats["save_blocking_s"]) / stats["steps"]
            blocking_ms = 1000 * stats["save_blocking_s"] / max(1, saves or 1)
            rows.append({"mode": mode, "saves": saves or 1, "step_ms": round(step_ms, 1),
                         "blocking_ms_per_save": round(blocking_ms, 1),
                         "blocking_share_at_50": round(blocking_ms / (50 * step_ms), 4)})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    print("\n| mode | saves | step ms (without saves) | blocking ms per save | share of 50 steps |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['mode']} | {r['saves']} | {r['step_ms']} | {r['blocking_ms_per_save']} "
            f"| {r['blocking_share_at_50']:.2%} |"
        )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--job":
        job(sys.argv[2])
    else:
        main()
