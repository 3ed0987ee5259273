"""Retrieval evaluation on a QA file: doc/page/fact recall and hit at k, MRR and search latency.

The QA format (one JSON object per line) is that of ``shared/corpus/sec10q/qa.jsonl``::

    {"id": "q1", "question": "...", "evidence": [{"doc": "2023 Q1 AAPL.pdf", "page": 4}],
     "facts": ["117,154"]}

Page metrics count only questions with at least one ``page`` in their evidence: page recall
is the share of labelled (doc, page) pairs among the hits, page hit whether any of them is
(``benchmarks/data/sec10q_qa_pages.jsonl`` is sec10q with derived page labels).
Metrics are pure functions of the hits' file names, pages and texts, so they can be
checked by hand; ``run_eval`` drives the searches against whatever is in the store.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from strongroom.errors import QueryError
from strongroom.types import Hit

__all__ = ["Evidence", "QAItem", "load_qa", "run_eval", "score_item"]


class Evidence(BaseModel):
    doc: str
    page: int | None = Field(default=None, ge=1)


class QAItem(BaseModel):
    id: str
    question: str = Field(min_length=1)
    evidence: list[Evidence] = Field(default_factory=list)
    facts: list[str] = Field(default_factory=list)


def load_qa(path: Path) -> list[QAItem]:
    """Read a QA file; a bad line is an error naming the line, never skipped silently."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise QueryError(f"cannot read {path}: {exc.strerror or exc}") from exc
    items: list[QAItem] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            items.append(QAItem.model_validate_json(line))
        except ValidationError as exc:
            raise QueryError(
                f"{path}:{number}: not a QA record ({exc.errors()[0]['msg']}); see `strongroom eval --help`"
            ) from exc
    if not items:
        raise QueryError(f"{path} holds no questions")
    return items


def score_item(item: QAItem, hits: Sequence[Hit]) -> dict[str, float | None]:
    """Per-question metrics for hits ranked best first."""
    names = [h.version.name for h in hits]
    evidence_docs = {e.doc for e in item.evidence}
    pages = {(e.doc, e.page) for e in item.evidence if e.page is not None}
    hit_pages = {(h.version.name, h.chunk.page) for h in hits}
    first = next((i for i, n in enumerate(names, start=1) if n in evidence_docs), None)
    text = "\n".join(h.chunk.text for h in hits)
    return {
        "doc_recall": len(evidence_docs & set(names)) / len(evidence_docs) if evidence_docs else None,
        "doc_hit": float(bool(evidence_docs & set(names))) if evidence_docs else None,
        "page_recall": len(pages & hit_pages) / len(pages) if pages else None,
        "page_hit": float(bool(pages & hit_pages)) if pages else None,
        "fact_recall": sum(f in text for f in item.facts) / len(item.facts) if item.facts else None,
        "rr": (1.0 / first if first else 0.0) if evidence_docs else None,
    }


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(sum(present) / len(present), 4) if present else None


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_eval(items: Sequence[QAItem], search: Callable[[str], list[Hit]], k: int) -> dict[str, object]:
    """Search every question and aggregate; ``search`` is already bound to principal and k."""
    rows: list[dict[str, float | None]] = []
    latencies: list[float] = []
    for item in items:
        start = time.perf_counter()
        hits = search(item.question)
        latencies.append((time.perf_counter() - start) * 1000)
        rows.append(score_item(item, hits[:k]))
    return {
        "k": k,
        "n": len(items),
        f"doc_recall_at_{k}": _mean([r["doc_recall"] for r in rows]),
        f"doc_hit_at_{k}": _mean([r["doc_hit"] for r in rows]),
        f"page_recall_at_{k}": _mean([r["page_recall"] for r in rows]),
        f"page_hit_at_{k}": _mean([r["page_hit"] for r in rows]),
        f"fact_recall_at_{k}": _mean([r["fact_recall"] for r in rows]),
        "mrr": _mean([r["rr"] for r in rows]),
        "n_with_pages": sum(r["page_recall"] is not None for r in rows),
        "n_with_facts": sum(r["fact_recall"] is not None for r in rows),
        "search_ms_p50": round(statistics.median(latencies), 2),
        "search_ms_p95": round(_percentile(latencies, 0.95), 2),
    }
