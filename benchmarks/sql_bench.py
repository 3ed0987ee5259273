"""What a single-instrument as-of query costs on the DuckDB datasets backend, through the full
path (check_select + rewrite + the locked engine), against the same question asked of the
physical table without the bitemporal rewrite.

Builds, in a temporary home: ``prices`` with --instruments x --days daily closes (default
4,000 x 2,500 = 10M rows, loaded from one Parquet file through ``DuckDBDatasets.load``), then
--corrections later loads of 1,000 corrected closes each. Then asks, --queries times, for a
random instrument and date D (seeded), "the close of X on the last date at or before D", at a
random known_at (before, between and after the corrections), and prints p50/p95: with the
read connection kept open between queries (the store's default: a service querying often), and
with the file opened for every query (``keep_open_s=0``: what a query pays after the store let
go of the file). Last, a load of 1,000 corrections in another process while this one queries
in a loop: how long the load took (the corrections above: alone), what the queries meanwhile waited, and the
first query after it (the file opened again).

    python benchmarks/sql_bench.py [--instruments 4000] [--days 2500] [--queries 300] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb

from strongroom.data.base import DatasetVersion
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
LOADER = """
import sys, time
from pathlib import Path
from strongroom.data.duckdb import DuckDBDatasets
store = DuckDBDatasets(Path(sys.argv[1]), lock_wait_s=60)
start = time.perf_counter()
store.load("prices", Path(sys.argv[2]), acl=frozenset({"research"}), valid_time_column="date",
           key_columns=["instrument"])
print(time.perf_counter() - start)
store.close()
"""
Ask = tuple[str, date, datetime]


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
                begin = time.perf_counter()
                v = store.load("prices", fix, loaded_at=at, **load)  # type: ignore[arg-type]
                took = time.perf_counter() - begin
                knowns.append(at + timedelta(hours=1))
                print(f"  correction {c + 1}: {v.rows} rows, {v.superseded} superseded, {took:.2f} s")
            size = (home / "datasets.duckdb").stat().st_size
            print(f"  datasets.duckdb: {size / 2**20:,.0f} MiB")
            asks = [
                (f"I{rng.randrange(args.instruments):05d}", rng.choice(calendar), rng.choice(knowns))
                for _ in range(args.queries)
            ]
            newest = store.versions("prices")[-1]
            full, checker, engine, raw = measure(store, asks, newest)
            print(f"{args.queries} single-instrument as-of queries ({args.threads} DuckDB threads):")
            print("read connection kept open between queries (the default):")
            print(summary("full path: check + rewrite + bitemporal", full))
            print(summary("  of which check_select + rewrite", checker))
            print(summary("  of which the engine (execute + fetch)", engine))
            print(summary("without the rewrite (raw table, current rows)", raw))
        finally:
            store.close()  # its read connection too: the next store opens the file itself
        each = DuckDBDatasets(home / "datasets.duckdb", threads=args.threads, keep_open_s=0)
        try:
            print("the file opened for every query (keep_open_s=0):")
            full, _, engine, _ = measure(each, asks, newest, raw=False)
            print(summary("full path, opening and closing the file", full))
            print(summary("  of which the engine (execute + fetch)", engine))
        finally:
            each.close()
        fix = home / "fix-late.csv"
        write_corrections(fix, rng, args.instruments, calendar, 1000)
        store = DuckDBDatasets(home / "datasets.duckdb", threads=args.threads)
        try:
            contend(store, home / "datasets.duckdb", fix, asks)
        finally:
            store.close()


def ask(store: DuckDBDatasets, instrument: str, day: date, known: datetime) -> float:
    as_of = datetime(day.year, day.month, day.day, 23, tzinfo=UTC)
    result = store.query(SQL.format(i=instrument, d=day), ["prices"], as_of=as_of, known_at=known)
    assert len(result.rows) == 1 and isinstance(result.rows[0][0], date) and result.rows[0][0] <= day
    return result.elapsed_ms


def measure(
    store: DuckDBDatasets, asks: list[Ask], newest: DatasetVersion, *, raw: bool = True
) -> tuple[list[float], list[float], list[float], list[float]]:
    """Milliseconds per query (after 20 to warm up): the full path, check + rewrite alone, the
    engine's part, and (``raw``) the raw table's query."""
    full: list[float] = []
    checker: list[float] = []
    engine: list[float] = []
    raws: list[float] = []
    for warm in (True, False):
        for instrument, day, known in asks[: 20 if warm else None]:
            start = time.perf_counter()
            engine_ms = ask(store, instrument, day, known)
            full_ms = (time.perf_counter() - start) * 1000
            start = time.perf_counter()
            as_of = datetime(day.year, day.month, day.day, 23, tzinfo=UTC)
            checked = check_select(SQL.format(i=instrument, d=day), ["prices"])
            rewrite(checked, {"prices": visible_rows(newest, as_of=as_of, known_at=known)}, max_rows=1000)
            check_ms = (time.perf_counter() - start) * 1000
            start = time.perf_counter()
            if raw:
                store._run_engine(RAW.format(i=instrument, d=day))
            raw_ms = (time.perf_counter() - start) * 1000
            if not warm:
                full.append(full_ms)
                checker.append(check_ms)
                engine.append(engine_ms)
                raws.append(raw_ms)
    return full, checker, engine, raws


def contend(store: DuckDBDatasets, path: Path, fix: Path, asks: list[Ask]) -> None:
    """A load in another process while this one queries in a loop (the store keeps the file
    open between queries, and lets go of it when the loader asks)."""
    for a in asks[:20]:
        ask(store, *a)  # warm: the file open, its blocks read
    start = time.perf_counter()
    loader = subprocess.Popen([sys.executable, "-c", LOADER, str(path), str(fix)], stdout=subprocess.PIPE, text=True)
    during: list[float] = []
    k = 0
    while loader.poll() is None:
        begin = time.perf_counter()
        ask(store, *asks[k % len(asks)])
        during.append((time.perf_counter() - begin) * 1000)
        k += 1
    out, _ = loader.communicate()
    wall = time.perf_counter() - start
    if loader.returncode != 0:
        raise SystemExit(f"the loader failed ({loader.returncode})")
    begin = time.perf_counter()
    instrument, day, _ = asks[0]
    ask(store, instrument, day, datetime.now(UTC))
    first = (time.perf_counter() - begin) * 1000
    versions = store.versions("prices")
    print("a load of 1,000 corrections by another process while this one queries in a loop:")
    print(f"  the load: {float(out):.2f} s in the loader ({wall:.2f} s with its start), version {versions[-1].version}")
    print(summary(f"{len(during)} queries meanwhile (the slowest waited)", during))
    print(f"  the longest query meanwhile: {max(during):.0f} ms; the next one after: {first:.1f} ms; "
          f"the file opened {store.connections_opened} times by this store")  # fmt: skip


if __name__ == "__main__":
    main()
