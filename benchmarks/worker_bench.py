#!/usr/bin/env python3
"""Ingestion throughput through the Redis Streams bus with 1 and 2 workers (issue 7).

For each worker count: a fresh store and a fresh stream; every sec10q filing is queued,
then N `strongroom worker --until-idle` processes (the bundled MiniLM) consume them. The
wall time runs from the workers' start until the last one exits, so it includes loading
the model. Prints JSON lines and a Markdown table. A benchmark, not a test.

    python benchmarks/worker_bench.py --workers 1,2 [--redis redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "sec10q" / "docs"


def run(n: int, redis_url: str, out: Path) -> dict[str, object]:
    home = out / f"home-{n}"
    shutil.rmtree(home, ignore_errors=True)
    stream = f"strongroom:bench:{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "STRONGROOM_BUS_URL": redis_url, "STRONGROOM_BUS_STREAM": stream}
    cli = [sys.executable, "-m", "strongroom.cli"]
    subprocess.run([*cli, "ingest", str(CORPUS), "--bus", redis_url, "--home", str(home), "--json"], env=env,
                   check=True, capture_output=True)  # fmt: skip
    started = time.perf_counter()
    worker = [*cli, "worker", "--home", str(home), "--until-idle"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    workers = [subprocess.Popen([*worker, "--consumer", f"w{i}"], env=env, **quiet) for i in range(n)]
    codes = [w.wait() for w in workers]
    wall = time.perf_counter() - started
    with sqlite3.connect(home / "catalog.sqlite3") as db:
        pages, chunks, versions = db.execute(
            "SELECT SUM(pages), (SELECT COUNT(*) FROM chunks), COUNT(*) FROM versions"
        ).fetchone()
    import redis

    with redis.Redis.from_url(redis_url) as r:
        r.delete(stream, f"{stream}:dead", f"{stream}:errors")
    return {
        "workers": n,
        "exit_codes": codes,
        "versions": versions,
        "pages": pages,
        "chunks": chunks,
        "wall_s": round(wall, 1),
        "pages_per_s": round(pages / wall, 2),
        "chunks_per_s": round(chunks / wall, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--out", type=Path, default=Path("bench-out/workers"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in (int(x) for x in args.workers.split(",")):
        row = run(n, args.redis, args.out)
        print(json.dumps(row), flush=True)
        rows.append(row)
    print("\n| workers | versions | pages | chunks | wall s | pages/s | chunks/s |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['workers']} | {r['versions']} | {r['pages']} | {r['chunks']} | {r['wall_s']} | "
              f"{r['pages_per_s']} | {r['chunks_per_s']} |")  # fmt: skip


if __name__ == "__main__":
    main()
