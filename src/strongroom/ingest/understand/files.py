"""Document understanding over files on disk, as the ``classify``, ``termsheets`` and
``tables`` commands run it: folders expanded to the files strongroom can parse, each file
parsed as ingestion parses it (in a child process, under the size, time and memory limits),
and the results as records.

    classify_files([Path("inbox/")], Settings())          # [{"document": ..., "doc_type": ...}]
    evaluate_classifier(Path("labelled/"), Settings())    # the rules on DIR/<label>/<files>
    train_classifier(Path("labelled/"), Path("m.npz"), Settings())
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from strongroom.config import Settings
from strongroom.errors import IngestError, QueryError, TooLarge
from strongroom.ingest.parsers import supported_suffixes
from strongroom.ingest.understand.classify import DOC_TYPES, classify, confusion_matrix
from strongroom.ingest.understand.core import understand
from strongroom.ingest.understand.policy import Policy
from strongroom.ingest.understand.termsheet import TermSheetField, extract_termsheet
from strongroom.ingest.understand.trainable import LogisticClassifier, document_text
from strongroom.types import ParsedDocument

__all__ = [
    "ClassifierEval",
    "classify_files",
    "evaluate_classifier",
    "extract_termsheets",
    "files_in",
    "labelled_files",
    "parse_file",
    "train_classifier",
]


def files_in(paths: Iterable[Path]) -> list[Path]:
    """The files named, and the parseable files under the folders named (sorted)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in supported_suffixes()))
        elif path.is_file():
            found.append(path)
        else:
            raise QueryError(f"{path}: no such file or folder")
    return found


def parse_file(path: Path, settings: Settings) -> ParsedDocument:
    """``path`` parsed as ingestion parses it: in a child process under the configured limits."""
    from strongroom.ingest.parsers.limits import ParseLimits
    from strongroom.ingest.sandbox import parse_bounded

    try:
        size = path.stat().st_size
        if size > settings.max_file_bytes:
            raise TooLarge(f"{path}: {size:,} bytes is over the {settings.max_file_bytes:,}-byte limit")
        return parse_bounded(path.read_bytes(), path.name, ParseLimits.from_settings(settings))
    except OSError as exc:
        raise IngestError(f"{path}: cannot read it: {exc.strerror or exc}") from exc


def labelled_files(directory: Path) -> list[tuple[Path, str]]:
    """``(file, label)`` for each document under ``directory/<label>/``."""
    if not directory.is_dir():
        raise QueryError(f"{directory}: not a folder; give a folder with one sub-folder per label")
    pairs = [(p, sub.name) for sub in sorted(directory.iterdir()) if sub.is_dir() for p in files_in([sub])]
    if not pairs:
        raise QueryError(f"{directory}: no labelled documents; put each document in a sub-folder named after its type")
    return pairs


def classify_files(paths: Iterable[Path], settings: Settings) -> list[dict[str, object]]:
    """Each file classified by the rules: type, confidence, sensitivity, and how many sensitive
    findings of each kind (never their values), with the rules' evidence."""
    rows: list[dict[str, object]] = []
    for path in files_in(paths):
        u = understand(parse_file(path, settings), path.name, Policy(action="flag", actions={}))
        rows.append({"document": path.name, "doc_type": u.doc_type, "confidence": u.confidence,
                     "sensitivity": u.sensitivity, "findings": u.finding_counts(),
                     "evidence": list(u.classification.evidence)})  # fmt: skip
    return rows


def train_classifier(directory: Path, out: Path, settings: Settings) -> tuple[LogisticClassifier, int]:
    """Fit the embedding classifier (with the embedder ``settings`` name) on labelled documents
    (``directory/<label>/<files>``) and save it to ``out`` (.npz); it and how many documents it learnt from."""
    from strongroom.embed import create_embedder

    pairs = labelled_files(directory)
    embedder = create_embedder(settings)
    vectors = embedder.embed([document_text(parse_file(p, settings)) for p, _ in pairs])
    model = LogisticClassifier.fit(vectors, [label for _, label in pairs], model_id=embedder.model_id)
    model.save(out)
    return model, len(pairs)


@dataclass(frozen=True)
class ClassifierEval:
    """Accuracy and the confusion matrix (rows: truth, columns: predicted, both ``labels``)."""

    accuracy: float
    documents: int
    labels: list[str]
    matrix: list[list[int]]

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def rows(self) -> list[dict[str, object]]:
        """The matrix as records: ``truth``, then the count predicted as each label."""
        by_truth = zip(self.labels, self.matrix, strict=True)
        return [{"truth": t, **dict(zip(self.labels, row, strict=True))} for t, row in by_truth]


def evaluate_classifier(directory: Path, settings: Settings, model: Path | None = None) -> ClassifierEval:
    """The rules (or the trained classifier at ``model``) on labelled documents."""
    parsed = [(parse_file(p, settings), p, label) for p, label in labelled_files(directory)]
    if model is None:
        predicted = [classify(doc, p.name).doc_type for doc, p, _ in parsed]
        labels = list(DOC_TYPES)
    else:
        from strongroom.embed import create_embedder

        classifier = LogisticClassifier.load(model)
        vectors = create_embedder(settings).embed([document_text(doc) for doc, _, _ in parsed])
        predicted = [label for label, _ in classifier.predict(vectors)]
        labels = sorted(set(classifier.labels))
    truth = [label for _, _, label in parsed]
    labels += sorted(set(truth) - set(labels))
    labels = [lab for lab in labels if lab in set(truth) | set(predicted)]
    pairs = list(zip(truth, predicted, strict=True))
    accuracy = sum(t == p for t, p in pairs) / len(truth)
    return ClassifierEval(accuracy, len(truth), labels, confusion_matrix(pairs, labels))


def extract_termsheets(paths: Iterable[Path], settings: Settings) -> list[tuple[str, list[TermSheetField]]]:
    """Each file's name and term-sheet fields: value, source text, page, character span, confidence."""
    return [(path.name, extract_termsheet(parse_file(path, settings))) for path in files_in(paths)]
