"""Benchmark document understanding: cost per sec10q filing, classification, term-sheet extraction.

    python benchmarks/understand_bench.py                       # everything, evaluation seed 20261122
    python benchmarks/understand_bench.py --n 240 --seed 20261122 --json out.json
    python benchmarks/understand_bench.py --embed 2             # also embed 2 filings with the real embedder

Figures, not assertions: speed depends on the machine (see STYLE.md). The corpus paths
default to ../shared/corpus next to the repository.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

from strongroom.ingest.chunking import chunk_pages
from strongroom.ingest.parsers import parse
from strongroom.ingest.understand.classify import DOC_TYPES, classify, confusion_matrix
from strongroom.ingest.understand.core import understand
from strongroom.ingest.understand.evaluate import score
from strongroom.ingest.understand.policy import Policy
from strongroom.ingest.understand.synth import FORMATS, LAYOUTS, write_corpus
from strongroom.ingest.understand.termsheet import extract_termsheet
from strongroom.types import ParsedDocument

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"


def _timed_parse(path: Path) -> tuple[ParsedDocument, float]:
    started = time.perf_counter()
    parsed = parse(path.read_bytes(), path.name)
    return parsed, time.perf_counter() - started


def bench_sec10q(docs: Path, embed: int, full_embed_seconds: float) -> dict[str, object]:
    """Parse each filing, then time understand() on it (best of 3) and compare."""
    rows: list[dict[str, object]] = []
    parse_times: dict[str, float] = {}
    understand_times: dict[str, float] = {}
    findings: Counter[str] = Counter()
    parsed_docs = []
    for path in sorted(docs.glob("*.pdf")):
        parsed, parse_s = _timed_parse(path)
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            u = understand(parsed, path.name, Policy())
            runs.append(time.perf_counter() - started)
        findings.update(u.finding_counts())
        parse_times[path.name], understand_times[path.name] = parse_s, min(runs)
        rows.append(
            {
                "document": path.name,
                "pages": len(parsed.pages),
                "chars": parsed.text_length,
                "parse_s": round(parse_s, 4),
                "understand_s": round(min(runs), 4),
                "doc_type": u.doc_type,
                "confidence": u.confidence,
                "sensitivity": u.sensitivity,
            }
        )
        parsed_docs.append((path, parsed))
    parse_total = sum(parse_times.values())
    understand_total = sum(understand_times.values())
    result: dict[str, object] = {
        "documents": len(rows),
        "parse_total_s": round(parse_total, 3),
        "understand_total_s": round(understand_total, 3),
        "understand_median_ms": round(statistics.median(understand_times.values()) * 1000, 1),
        "understand_vs_parse": round(understand_total / parse_total, 3) if parse_total else None,
        "full_ingest_embed_s_reference": full_embed_seconds,
        "understand_vs_ingest_wall": round(understand_total / (full_embed_seconds + parse_total + understand_total), 4),
        "findings_by_type": dict(findings),
        "rows": rows,
    }
    if embed:
        from strongroom.config import Settings
        from strongroom.embed import create_embedder

        embedder = create_embedder(Settings())
        embed_rows = []
        for path, parsed in parsed_docs[:embed]:
            spans = chunk_pages(parsed.pages, 400)
            texts = {p.number: p.text for p in parsed.pages}
            started = time.perf_counter()
            embedder.embed([texts[s.page][s.start : s.end] for s in spans])
            embed_s = time.perf_counter() - started
            embed_rows.append(
                {
                    "document": path.name,
                    "chunks": len(spans),
                    "embed_s": round(embed_s, 3),
                    "understand_over_embed": round(understand_times[path.name] / embed_s, 4),
                }
            )
        result["embedded"] = embed_rows
    return result


def bench_classification(sec10q: Path, transcripts: Path, n_sheets: int, seed: int) -> dict[str, object]:
    """Accuracy and confusion matrix over the filings, the transcripts and generated term sheets."""
    pairs: list[tuple[str, str]] = []
    for path in sorted(sec10q.glob("*.pdf")) if sec10q.is_dir() else []:
        pairs.append(("regulatory_filing", classify(parse(path.read_bytes(), path.name), path.name).doc_type))
    for path in sorted(transcripts.glob("*.txt")) if transcripts.is_dir() else []:
        pairs.append(("earnings_call_transcript", classify(parse(path.read_bytes(), path.name), path.name).doc_type))
    with tempfile.TemporaryDirectory() as tmp:
        for path in write_corpus(Path(tmp), n_sheets, seed):
            pairs.append(("term_sheet", classify(parse(path.read_bytes(), path.name), path.name).doc_type))
    labels = [t for t in DOC_TYPES if any(t in pair for pair in pairs)]
    by_class = {
        t: sum(1 for truth, p in pairs if truth == t and p == t) / max(1, sum(1 for x, _ in pairs if x == t))
        for t in {truth for truth, _ in pairs}
    }
    return {
        "documents": len(pairs),
        "accuracy": round(sum(t == p for t, p in pairs) / len(pairs), 4),
        "accuracy_by_class": by_class,
        "labels": labels,
        "matrix": confusion_matrix(pairs, labels),
    }


def bench_extraction(n: int, seed: int) -> dict[str, object]:
    """Field-level precision and recall on ``n`` generated term sheets, overall and per layout x format."""
    groups: dict[str, list[tuple[dict[str, str], dict[str, str]]]] = {}
    all_pairs: list[tuple[dict[str, str], dict[str, str]]] = []
    seconds = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for path in write_corpus(Path(tmp), n, seed):
            meta = json.loads(path.with_name(path.name + ".truth.json").read_text())
            parsed = parse(path.read_bytes(), path.name)
            started = time.perf_counter()
            predicted = {f.name: f.canonical for f in extract_termsheet(parsed)}
            seconds += time.perf_counter() - started
            pair = (predicted, meta["fields"])
            all_pairs.append(pair)
            groups.setdefault(f"{meta['layout']}/{meta['format']}", []).append(pair)
    overall = score(all_pairs)
    return {
        "seed": seed,
        **overall.as_dict(),
        "extract_ms_per_doc": round(seconds / n * 1000, 2),
        "by_layout_format": {
            key: {
                "documents": len(pairs),
                "precision": round(score(pairs).micro_precision, 4),
                "recall": round(score(pairs).micro_recall, 4),
            }
            for key, pairs in sorted(groups.items())
        },
        "layouts": list(LAYOUTS),
        "formats": list(FORMATS),
        "errors": overall.errors[:20],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--n", type=int, default=240, help="generated term sheets for the extraction eval")
    parser.add_argument("--seed", type=int, default=20261122, help="evaluation seed (not a development seed)")
    parser.add_argument("--embed", type=int, default=0, help="also embed this many filings with the real embedder")
    parser.add_argument(
        "--full-embed-seconds",
        type=float,
        default=350.0,
        help="embedding time of the full sec10q ingest on this machine (reference)",
    )
    parser.add_argument("--json", type=Path, help="write the full report here")
    args = parser.parse_args()
    sec10q = args.corpus / "sec10q" / "docs"
    report: dict[str, object] = {}
    if sec10q.is_dir():
        report["sec10q"] = bench_sec10q(sec10q, args.embed, args.full_embed_seconds)
    report["classification"] = bench_classification(sec10q, args.corpus / "earnings21" / "transcripts", 60, args.seed)
    report["extraction"] = bench_extraction(args.n, args.seed)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    summary = {
        k: {kk: vv for kk, vv in v.items() if kk not in {"rows", "errors", "fields"}}  # type: ignore[attr-defined]
        for k, v in report.items()
    }
    print(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
    main()
