"""Field-level precision and recall of term-sheet extraction against ground truth.

A predicted field is a true positive when its canonical string equals the truth's; a
wrong value counts once as a false positive and once as a false negative; a field the
truth does not have is a false positive; a missed field a false negative.

    >>> score([({"isin": "US0378331005"}, {"isin": "US0378331005", "currency": "USD"})]).micro_precision
    1.0
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from strongroom.errors import QueryError
from strongroom.ingest.parsers import parse
from strongroom.ingest.understand.termsheet import extract_termsheet

__all__ = ["ExtractionScore", "FieldScore", "evaluate_directory", "score"]


@dataclass
class FieldScore:
    """True positives, false positives and false negatives for one field."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    def as_dict(self) -> dict[str, object]:
        return {"precision": round(self.precision, 4), "recall": round(self.recall, 4), "tp": self.tp, "fp": self.fp,
                "fn": self.fn}  # fmt: skip


@dataclass
class ExtractionScore:
    """Per-field scores, documents evaluated, and the mistakes (for debugging)."""

    fields: dict[str, FieldScore] = field(default_factory=dict)
    documents: int = 0
    errors: list[str] = field(default_factory=list)

    def _total(self) -> FieldScore:
        total = FieldScore()
        for s in self.fields.values():
            total.tp, total.fp, total.fn = total.tp + s.tp, total.fp + s.fp, total.fn + s.fn
        return total

    @property
    def micro_precision(self) -> float:
        return self._total().precision

    @property
    def micro_recall(self) -> float:
        return self._total().recall

    def as_dict(self) -> dict[str, object]:
        return {
            "documents": self.documents,
            "precision": round(self.micro_precision, 4),
            "recall": round(self.micro_recall, 4),
            "fields": {name: s.as_dict() for name, s in sorted(self.fields.items())},
        }

    def rows(self) -> list[dict[str, object]]:
        """One record per field: ``field``, precision, recall and the counts."""
        return [{"field": name, **s.as_dict()} for name, s in sorted(self.fields.items())]


def score(pairs: Iterable[tuple[Mapping[str, str], Mapping[str, str]]], label: str = "") -> ExtractionScore:
    """Score ``(predicted, truth)`` pairs of canonical field maps."""
    result = ExtractionScore()
    for predicted, truth in pairs:
        result.documents += 1
        for name in set(predicted) | set(truth):
            s = result.fields.setdefault(name, FieldScore())
            p, t = predicted.get(name), truth.get(name)
            if p is not None and p == t:
                s.tp += 1
                continue
            if p is not None:
                s.fp += 1
            if t is not None:
                s.fn += 1
            result.errors.append(f"{label}{name}: predicted {p!r}, truth {t!r}")
    return result


def evaluate_directory(directory: Path) -> ExtractionScore:
    """Extract every document in ``directory`` that has a ``NAME.truth.json`` beside it and score it."""
    if not directory.is_dir():
        raise QueryError(f"{directory}: not a folder; generate one with 'strongroom termsheets generate DIR'")
    pairs: list[tuple[dict[str, str], dict[str, str]]] = []
    for truth_path in sorted(directory.glob("*.truth.json")):
        doc_path = truth_path.with_name(truth_path.name.removesuffix(".truth.json"))
        truth = _truth(truth_path)
        try:
            data = doc_path.read_bytes()
        except OSError as exc:
            raise QueryError(
                f"{truth_path}: no document {doc_path.name} beside it ({exc.strerror or exc}); "
                "put the document there, or remove the truth file"
            ) from exc
        predicted = {f.name: f.canonical for f in extract_termsheet(parse(data, doc_path.name))}
        pairs.append((predicted, truth))
    if not pairs:
        raise QueryError(f"{directory}: no NAME.truth.json files found")
    return score(pairs)


def _truth(path: Path) -> dict[str, str]:
    """The ``fields`` of a ground-truth file: canonical strings by field name."""
    try:
        fields = json.loads(path.read_text())["fields"]
        if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
            raise ValueError("'fields' is not an object of strings")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        why = f"no {exc}" if isinstance(exc, KeyError) else str(exc)
        raise QueryError(
            f"{path}: not a truth file ({why}); it needs JSON with 'fields': {{name: canonical value}}, "
            "as 'strongroom termsheets generate' writes"
        ) from exc
    return fields
