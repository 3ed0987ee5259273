"""What an audit append costs: ``append_many`` on the SQLite catalog, now (format 2, a signed
checkpoint per batch, ``synchronous=FULL``) against the code before (format 1, no checkpoint,
``synchronous=NORMAL``, taken from git), and what ``verify`` costs per record.

    python benchmarks/audit_append_bench.py [--batches 300] [--before 4a4efca]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import strongroom.audit as audit_log
from strongroom.audit import AuditEvent, open_audit_log
from strongroom.config import Settings


def _event(i: int) -> AuditEvent:
    return AuditEvent(
        principal=f"key:bot{i % 7}", groups=("public", "research"), action="search", auth="api-key",
        request_id=f"{i:032x}", query="What were total net sales in the quarter?", query_hmac="ab" * 32,
        filters={"k": 10, "as_of": None, "doc_types": ["10-Q"], "filters": {"ticker": "AAPL"}},
        chunks=tuple((f"chunk{j}", f"version{j}") for j in range(10)), generator="extractive",
    )  # fmt: skip


def _old_module(commit: str) -> Any:
    """The audit module as it was at ``commit``."""
    source = subprocess.run(
        ["git", "show", f"{commit}:src/strongroom/audit.py"], check=True, capture_output=True, text=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "old_audit.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("old_audit", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_audit"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _time(log: Any, make: Any, batch: int, batches: int) -> list[float]:
    times = []
    for b in range(batches):
        events = [make(b * batch + i) for i in range(batch)]
        start = time.perf_counter()
        log.append_many(events)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--before", default="4a4efca", help="a commit with the old strongroom/audit.py")
    parser.add_argument("--dir", type=Path, default=None, help="where the catalogs go (default: a temp dir)")
    parser.add_argument(
        "--no-fsync", action="store_true", help="run the new log with synchronous=NORMAL: its CPU cost alone"
    )
    args = parser.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="audit-bench-"))
    old = _old_module(args.before)
    print(f"catalogs under {root} ({sys.platform}); median and p90 of {args.batches} batches")
    print(f"{'batch':>5}  {'before':>22}  {'now':>22}  {'now, per record':>15}")
    for batch in (1, 8, 64):
        old_log = old.AuditLog(root / f"old-{batch}" / "catalog.sqlite3")

        def old_event(i: int) -> Any:
            e = _event(i)
            return old.AuditEvent(**{k: getattr(e, k) for k in old.AuditEvent.__dataclass_fields__})

        before = _time(old_log, old_event, batch, args.batches)
        old_log.close()
        log = open_audit_log(Settings(home=root / f"new-{batch}", store_url=""))
        if args.no_fsync:
            log._db.execute("PRAGMA synchronous=NORMAL")  # type: ignore[attr-defined]
        audit_log.append(log, _event(0))  # the key is made and the anchor opened once, not per batch
        now = _time(log, _event, batch, args.batches)
        log.close()

        def fmt(ts: list[float]) -> str:
            qs = statistics.quantiles(ts, n=10)
            return f"{statistics.median(ts) * 1e6:8.0f} µs (p90 {qs[8] * 1e6:6.0f})"

        print(f"{batch:>5}  {fmt(before):>22}  {fmt(now):>22}  {statistics.median(now) / batch * 1e6:12.1f} µs")
    log = open_audit_log(Settings(home=root / "new-64", store_url=""))
    n = log.head().seq
    start = time.perf_counter()
    report = log.verify()
    took = time.perf_counter() - start
    per = took / n * 1e6
    print(f"verify: {n} records, {report.checkpoints} checkpoints: {took:.2f} s ({per:.1f} µs a record)")
    log.close()


if __name__ == "__main__":
    main()
