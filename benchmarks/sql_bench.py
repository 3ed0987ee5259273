"""What a single-instrument as-of query costs on the DuckDB datasets backend, through the full
path (check_select + rewrite + the locked engine), against the same question asked of the
physical table without the bitemporal rewrite.

Builds, in a temporary home: ``prices`` with --instruments x --days daily closes (default
4,000 x 2,500 = 10M rows, loaded from one Parquet file through ``DuckDBDatasets.load``), then
--corrections later loads of 1,000 corrected closes each. Then asks, --queries times, for a
random instrument and date D (seeded), "the close of X on the last date at or before D", at a
random known_at (before, between and after the corrections), and prints p50/p95.

    python benchmarks/sql_bench.py [--instruments 4000] [--days 2500] [--queries 300] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb

from strongroom.data.bitemporal import visible_rows
from strongroom.data.duckdb import DuckDBDatasets
from strongroom.data.sql import check_select, rewrite

START = date(2014, 1, 1)
LOADED = datetime(2024, 6, 1, 18, tzinfo=UTC)
SQL = "SELECT date, close FROM prices WHERE instrument = '{i}' AND date <= DATE '{d}' ORDER BY date DESC LIMIT 1"
RAW = (
    "SELECT date, close FROM strongroom_data.prices WHERE instrument = '{i}' AND date <= DATE '{d}' "
    "AND _superseded_at IS NULL ORDER BY date DESC LIMIT 1"
)


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    models = (
        [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if "model name" in line]
        if cpuinfo.exists()
        else []
    )
    cpu = models[0] if models else platform.processor() or "unknown CPU"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{cpu}, {os.cpu_count()} cores visible, load average {load:.1f}; Python {platform.python_version()}, "
        f"DuckDB {duckdb.__version__}, {platform.system()} {platform.release()}"
    )


def write_prices(path: Path, instruments: int, days: int) -> None:
    """Daily closes of every instrument on ``days`` weekdays from START (deterministic values)."""
    with duckdb.connect() as db:
        db.execute(
            f"""COPY (
                WITH d AS (SELECT DATE '{START}' + CAST(range AS INTEGER) AS day FROM range({days * 7 // 5 + 7})),
                     weekdays AS (SELECT row_number() OVER (ORDER BY day) - 1 AS k, day FROM d WHERE isodow(day) <= 5)
                SELECT w.day AS date, printf('I%05d', i.range) AS instrument,
                       CAST(50 + ((i.range * 7919 + w.k * 104729) % 100000) / 1000.0 AS DOUBLE) AS close,
                       CAST((i.range * 31 + w.k * 17) % 1000000 AS BIGINT) AS volume
                FROM range({instruments}) AS i, weekdays AS w WHERE w.k < {days}
            ) TO '{path}' (FORMAT parquet)"""
        )  # fmt: skip


def weekdays(days: int) -> list[date]:
    out: list[date] = []
    day = START
    while len(out) < days:
        if day.isoweekday() <= 5:
            out.append(day)
        day += timedelta(days=1)
    return out


def write_corrections(path: Path, rng: random.Random, instruments: int, calendar: list[date], n: int) -> None:
    rows = {(f"I{rng.randrange(instruments):05d}", rng.choice(calendar)) for _ in range(n)}
    lines = [
        "date,instrument,close,volume",
        *(f"{d},{i},{rng.uniform(1, 500):.3f},{rng.randrange(10**6)}" for i, d in rows),
    ]
    path.write_text("\n".join(lines) + "\n")


def timed(label: str, action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    seconds = time.perf_counter() - start
    print(f"  {label}: {seconds:.1f} s")
    return seconds


def summary(name: str, ms: list[float]) -> str:
    ms = sorted(ms)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return f"  {name:<44} p50 {statistics.median(ms):7.2f} ms   p95 {p95:7.2f} ms   mean {statistics.fmean(ms):7.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instruments", type=int, default=4000)
    parser.add_argument("--days", type=int, default=2500)
    parser.add_argument("--corrections", type=int, default=3)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2, help="DuckDB threads (the target is for 2 cores)")
    parser.add_argument("--seed", type=int, default=19)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    calendar = weekdays(args.days)
    print(f"machine: {machine()}")
    print(f"data: {args.instruments:,} instruments x {args.days:,} days = {args.instruments * args.days:,} rows")
    with tempfile.TemporaryDirectory(prefix="sql-bench-") as tmp:
        home = Path(tmp)
        store = DuckDBDatasets(home / "datasets.duckdb", threads=args.threads)
        try:
            timed("write the Parquet file", lambda: write_prices(home / "prices.parquet", args.instruments, args.days))
            load = dict(acl=frozenset({"research"}), valid_time_column="date", key_columns=["instrument"])
            timed(
                "load it (stage: read, check, sort; copy in)",
                lambda: store.load("prices", home / "prices.parquet", loaded_at=LOADED, **load),  # type: ignore[arg-type]
            )
            knowns = [LOADED + timedelta(hours=1)]
            for c in range(args.corrections):
                fix = home / f"fix{c}.csv"
                write_corrections(fix, rng, args.instruments, calendar, 1000)
                at = LOADED + timedelta(days=c + 1)
                v = store.load("prices", fix, loaded_at=at, **load)  # type: ignore[arg-type]
                knowns.append(at + timedelta(hours=1))
                print(f"  correction {c + 1}: {v.rows} rows, {v.superseded} superseded")
            size = (home / "datasets.duckdb").stat().st_size
            print(f"  datasets.duckdb: {size / 2**20:,.0f} MiB")
            asks = [
                (f"I{rng.randrange(args.instruments):05d}", rng.choice(calendar), rng.choice(knowns))
                for _ in range(args.queries)
            ]
            full, raw, checker, engine = [], [], [], []
            newest = store.versions("prices")[-1]
            for warm in (True, False):
                for instrument, day, known in asks[: 20 if warm else None]:
                    as_of = datetime(day.year, day.month, day.day, 23, tzinfo=UTC)
                    sql = SQL.format(i=instrument, d=day)
                    start = time.perf_counter()
                    result = store.query(sql, ["prices"], as_of=as_of, known_at=known)
                    full_ms = (time.perf_counter() - start) * 1000
                    assert len(result.rows) == 1 and isinstance(result.rows[0][0], date) and result.rows[0][0] <= day
                    start = time.perf_counter()
                    checked = check_select(sql, ["prices"])
                    views = {"prices": visible_rows(newest, as_of=as_of, known_at=known)}
                    rewrite(checked, views, max_rows=1000)
                    check_ms = (time.perf_counter() - start) * 1000
                    start = time.perf_counter()
                    store._run_engine(RAW.format(i=instrument, d=day))
                    raw_ms = (time.perf_counter() - start) * 1000
                    if not warm:
                        full.append(full_ms)
                        checker.append(check_ms)
                        engine.append(result.elapsed_ms)
                        raw.append(raw_ms)
            print(f"{args.queries} single-instrument as-of queries ({args.threads} DuckDB threads):")
            print(summary("full path: check + rewrite + bitemporal", full))
            print(summary("  of which check_select + rewrite", checker))
            print(summary("  of which the engine (execute + fetch)", engine))
            print(summary("without the rewrite (raw table, current rows)", raw))
        finally:
            store.close()


if __name__ == "__main__":
    main()
