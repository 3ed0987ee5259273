#!/usr/bin/env python3
"""Hostile input (issue 15): what the parse sandbox costs, and how fast it refuses attacks.

1. Overhead: each of the 20 sec10q filings parsed in-process and in the sandbox
   (forkserver warm), alternating, ``--rounds`` times; the median per file is compared.
2. Attacks: each hostile file (tests/ingest/hostile_files.py: zip bombs, a forged zip
   header, entity bombs, a spreadsheet that stalls and eats memory, a PDF content bomb) is
   parsed by a fresh caller process, so that its peak memory is its own. Reported: the
   refusal, the time to it (forkserver warm), the parse child's peak RSS (sampled from
   /proc every 5 ms, and as the child reports it) and the caller's peak RSS
   (getrusage(RUSAGE_SELF)). The child is the forkserver's child, not the caller's, so
   RUSAGE_CHILDREN of the caller does not see it.

Prints JSON lines and a Markdown table. A benchmark, not a test.

    python benchmarks/hostile_bench.py [--rounds 5] [--before] [--part overhead|attacks]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPUS = ROOT.parent / "shared" / "corpus" / "sec10q" / "docs"

from tests.ingest import hostile_files as hostile  # noqa: E402

from strongroom.ingest.parsers import parse  # noqa: E402
from strongroom.ingest.parsers.limits import ParseLimits  # noqa: E402
from strongroom.ingest.sandbox import run_parse, running_parses  # noqa: E402

BUILDERS: dict[str, Callable[[], bytes]] = {
    "bomb.docx": lambda: hostile.zip_bomb_docx(200),
    "bomb.xlsx": lambda: hostile.zip_bomb_xlsx(200),
    "forged.docx": lambda: hostile.lying_header_docx(200),
    "bz.docx": lambda: hostile.bzip2_lying_docx(200),
    "many.docx": lambda: hostile.many_members_docx(10_001),
    "lol.docx": hostile.entity_bomb_docx,
    "lol.xlsx": hostile.entity_bomb_xlsx,
    "lol.html": hostile.entity_bomb_html,
    "wide.xlsx": lambda: hostile.wide_xlsx(20_000),
    "bomb.pdf": lambda: hostile.pdf_content_bomb(500),
    "report.docx": lambda: hostile.long_docx(200),
}
# label, file (a BUILDERS key), limits other than the defaults
CASES: list[tuple[str, str, dict[str, float]]] = [
    ("docx zip bomb, 200 MB of XML (the reported attack)", "bomb.docx", {}),
    ("xlsx zip bomb, 200 MB of XML", "bomb.xlsx", {}),
    ("docx, header says 1000 bytes, inflates to 200 MB", "forged.docx", {}),
    ("the same with bzip2", "bz.docx", {}),
    ("docx with 10,001 extra members", "many.docx", {}),
    ("docx entity bomb (billion laughs)", "lol.docx", {}),
    ("xlsx entity bomb", "lol.xlsx", {}),
    ("html entity bomb (parsed, never expanded)", "lol.html", {}),
    ("xlsx, 20k rows reaching column XFD", "wide.xlsx", {}),
    ("the same, 10 s limit", "wide.xlsx", {"timeout_s": 10, "memory_mb": 8192}),
    ("the same, 400 MB limit", "wide.xlsx", {"memory_mb": 400}),
    ("pdf content bomb (500 MB inflated)", "bomb.pdf", {}),
    ("the same, 400 MB limit", "bomb.pdf", {"memory_mb": 400}),
    ("genuine 200-page docx (not hostile)", "report.docx", {}),
]


def _median_ms(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def overhead(rounds: int) -> dict[str, object]:
    files = sorted(CORPUS.glob("*.pdf"))
    started = time.perf_counter()
    run_parse(b"warm", "warm.txt")  # starts the forkserver, which imports the parsers once
    cold_ms = (time.perf_counter() - started) * 1000
    tiny = (
        _median_ms(lambda: parse(b"a line", "t.txt"), rounds * 4),
        _median_ms(lambda: run_parse(b"a line", "t.txt"), rounds * 4),
    )
    rows = []
    for path in files:
        data = path.read_bytes()
        inproc = _median_ms(lambda data=data, name=path.name: parse(data, name), rounds)  # type: ignore[misc]
        sandbox = _median_ms(lambda data=data, name=path.name: run_parse(data, name), rounds)  # type: ignore[misc]
        rows.append({"file": path.name, "kb": len(data) // 1024, "in_process_ms": inproc, "sandbox_ms": sandbox})
        print(json.dumps({k: round(v, 1) if isinstance(v, float) else v for k, v in rows[-1].items()}), flush=True)
    total_in = sum(float(r["in_process_ms"]) for r in rows)  # type: ignore[arg-type]
    total_sb = sum(float(r["sandbox_ms"]) for r in rows)  # type: ignore[arg-type]
    extra = [float(r["sandbox_ms"]) - float(r["in_process_ms"]) for r in rows]  # type: ignore[arg-type]
    return {
        "files": len(rows),
        "forkserver_start_ms": round(cold_ms, 1),
        "tiny_file_in_process_ms": round(tiny[0], 2),
        "tiny_file_sandbox_ms": round(tiny[1], 2),
        "in_process_total_ms": round(total_in, 1),
        "sandbox_total_ms": round(total_sb, 1),
        "overhead_per_file_median_ms": round(statistics.median(extra), 1),
        "overhead_per_file_max_ms": round(max(extra), 1),
        "overhead_pct": round(100 * (total_sb - total_in) / total_in, 1),
    }


def one(path: str, name: str, limits_json: str) -> None:
    """In a fresh caller process: warm the forkserver, then parse one hostile file."""
    data = Path(path).read_bytes()
    limits = ParseLimits(**json.loads(limits_json))
    run_parse(b"warm", "warm.txt")
    peak = [0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for pid in running_parses():
                try:
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            peak[0] = max(peak[0], int(line.split()[1]) / 1024)
                except (OSError, ValueError):
                    pass
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    outcome = run_parse(data, name, limits)
    done.set()
    sampler.join()
    child_peak = max(peak[0], outcome.peak_rss_mb or 0.0)
    result = str(outcome.error).removeprefix(f"{name}: ") if outcome.error else "parsed"
    print(
        json.dumps(
            {
                "seconds": round(outcome.seconds, 3),
                "child_peak_mb": round(child_peak) if child_peak else None,
                "caller_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                "result": result,
            }
        )
    )


def attacks(before: bool) -> list[dict[str, object]]:
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for name, build in BUILDERS.items():
            (Path(scratch) / name).write_bytes(build())
        for label, name, limits in CASES:
            path = Path(scratch) / name
            shown = {**ParseLimits().__dict__, **limits}
            done = subprocess.run(
                [sys.executable, __file__, "--one", str(path), name, json.dumps(limits)],
                capture_output=True,
                text=True,
                check=True,
            )
            row = {
                "case": label,
                "kb": path.stat().st_size // 1024,
                "limits": f"{shown['timeout_s']:g} s, {shown['memory_mb']} MB",
                **json.loads(done.stdout.splitlines()[-1]),
            }
            print(json.dumps(row), flush=True)
            results.append(row)
        if before:
            results.append(_before(Path(scratch) / "bomb.docx"))
    return results


def _before(path: Path) -> dict[str, object]:
    """The reported attack as it was: parsed in-process with no zip limits (60 s at most)."""
    code = (
        "import sys, time, resource; from pathlib import Path\n"
        "from strongroom.ingest.parsers import parse, ParseLimits\n"
        "data = Path(sys.argv[1]).read_bytes(); t = time.perf_counter()\n"
        "try:\n    parse(data, 'bomb.docx', ParseLimits(zip_max_ratio=1e9, zip_max_bytes=10**12))\n"
        "except Exception as e:\n    print(type(e).__name__)\n"
        "print(round(time.perf_counter() - t, 1), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)\n"
    )
    started = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
        seconds, peak = done.stdout.split()[-2:]
        row: dict[str, object] = {"case": "docx zip bomb, before (in-process, no limits)", "seconds": float(seconds),
                                  "caller_peak_mb": int(peak), "result": "parsed"}  # fmt: skip
    except subprocess.TimeoutExpired:
        row = {
            "case": "docx zip bomb, before",
            "seconds": round(time.perf_counter() - started),
            "result": "still parsing",
        }
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--before", action="store_true", help="also parse the attack in-process, without limits")
    parser.add_argument("--part", choices=("all", "overhead", "attacks"), default="all")
    parser.add_argument("--one", nargs=3, metavar=("PATH", "NAME", "LIMITS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(*args.one)
        return
    summary = overhead(args.rounds) if args.part in ("all", "overhead") else None
    if summary:
        print(json.dumps(summary), flush=True)
    rows = attacks(args.before) if args.part in ("all", "attacks") else []
    if summary:
        print("\n| sec10q filings | in-process | sandbox | overhead |\n|---|---|---|---|")
        print(
            f"| {summary['files']} PDFs, median of {args.rounds} | {summary['in_process_total_ms']} ms "
            f"| {summary['sandbox_total_ms']} ms | {summary['overhead_pct']}% (median "
            f"{summary['overhead_per_file_median_ms']} ms/file, max {summary['overhead_per_file_max_ms']}) |"
        )
        print(
            f"\nFixed cost of one sandboxed parse (a one-line .txt): {summary['tiny_file_sandbox_ms']} ms against "
            f"{summary['tiny_file_in_process_ms']} ms in-process; first parse (forkserver start): "
            f"{summary['forkserver_start_ms']} ms."
        )
    if rows:
        print("\n| case | size | limits | time to answer | child peak RSS | caller peak RSS | answer |")
        print("|---|---|---|---|---|---|---|")
    for row in rows:
        child = f"{row['child_peak_mb']} MB" if row.get("child_peak_mb") else "-"
        print(
            f"| {row['case']} | {row.get('kb', '-')} KB | {row.get('limits', '-')} | {row['seconds']} s | {child} "
            f"| {row.get('caller_peak_mb', '-')} MB | {str(row['result']).split(';')[0]} |"
        )
    print("\n(MB are MiB; the memory limit is address space above what the child starts with)")


if __name__ == "__main__":
    main()
