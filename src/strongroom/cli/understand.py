"""Command-line commands for document understanding, mounted by ``strongroom.cli``.

strongroom classify file PATH...           rule-based type, confidence, sensitivity, findings
strongroom classify train DIR --out M.npz  fit the embedding classifier on DIR/<label>/<files>
strongroom classify eval DIR [--model M]   accuracy and confusion matrix (rules, or the model)
strongroom termsheets extract PATH...      fields with value, page, span and confidence
strongroom termsheets list|show DOC        term sheets in the store and their fields
strongroom termsheets generate DIR         a synthetic corpus with ground truth
strongroom eval-extraction DIR             per-field precision and recall
"""

from __future__ import annotations

import functools
import json
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from strongroom.cli.common import GroupsOpt, UserOpt
from strongroom.config import Settings
from strongroom.errors import StrongroomError
from strongroom.ingest.parsers import supported_suffixes
from strongroom.ingest.understand.classify import DOC_TYPES, classify, confusion_matrix
from strongroom.ingest.understand.core import understand
from strongroom.ingest.understand.evaluate import evaluate_directory
from strongroom.ingest.understand.policy import Policy
from strongroom.ingest.understand.synth import write_corpus
from strongroom.ingest.understand.tables import extract_tables
from strongroom.ingest.understand.termsheet import extract_termsheet
from strongroom.ingest.understand.trainable import LogisticClassifier, document_text
from strongroom.types import DocumentVersion, Page, ParsedDocument

__all__ = ["classify_app", "eval_extraction_command", "tables_app", "termsheets_app"]

classify_app = typer.Typer(help="Classify documents: type, sensitivity, sensitive data.", no_args_is_help=True)
termsheets_app = typer.Typer(help="Term sheets: extract, list and show their fields.", no_args_is_help=True)
tables_app = typer.Typer(help="Tables as data: header, rows and cells with page and position.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
HomeOpt = Annotated[
    Path | None, typer.Option("--home", help="Data folder (default: $STRONGROOM_HOME, else ~/.strongroom).")
]


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _files(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in supported_suffixes()))
        elif path.is_file():
            found.append(path)
        else:
            raise _fail(f"{path}: no such file or folder")
    return found


@functools.cache
def _settings() -> Settings:
    """The settings, read once per command (a folder of files is parsed file by file)."""
    from strongroom.cli.common import settings_for

    return settings_for(None)


def _parse(path: Path) -> ParsedDocument:
    """A file parsed as ingestion parses it: in a child process under the time and memory limits."""
    from strongroom.ingest.parsers.limits import ParseLimits
    from strongroom.ingest.sandbox import parse_bounded

    settings = _settings()
    try:
        size = path.stat().st_size
        if size > settings.max_file_bytes:
            raise _fail(f"{path}: {size:,} bytes is over the {settings.max_file_bytes:,}-byte limit")
        return parse_bounded(path.read_bytes(), path.name, ParseLimits.from_settings(settings))
    except OSError as exc:
        raise _fail(f"{path}: cannot read it: {exc.strerror or exc}") from exc
    except StrongroomError as exc:
        raise _fail(str(exc)) from exc


def _labelled(directory: Path) -> list[tuple[Path, str]]:
    if not directory.is_dir():
        raise _fail(f"{directory}: not a folder; give a folder with one sub-folder per label")
    pairs = [(p, sub.name) for sub in sorted(directory.iterdir()) if sub.is_dir() for p in _files([sub])]
    if not pairs:
        raise _fail(f"{directory}: no labelled documents; put each document in a sub-folder named after its type")
    return pairs


@classify_app.command("file")
def classify_file(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders.")],
    as_json: JsonOpt = False,
) -> None:
    """Classify files with the rules: type, confidence, sensitivity and finding counts (never values)."""
    rows = []
    for path in _files(paths):
        u = understand(_parse(path), path.name, Policy(action="flag", actions={}))
        rows.append(
            {
                "document": path.name,
                "doc_type": u.doc_type,
                "confidence": u.confidence,
                "sensitivity": u.sensitivity,
                "findings": u.finding_counts(),
                "evidence": list(u.classification.evidence),
            }
        )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        typer.echo(f"{r['document']}\t{r['doc_type']}\t{r['confidence']:.2f}\t{r['sensitivity']}\t{r['findings']}")


def _embedder(home: Path | None):  # type: ignore[no-untyped-def]  # the Embedder protocol, built lazily
    from strongroom.embed import create_embedder

    return create_embedder(Settings(home=home) if home else Settings())


@classify_app.command("train")
def classify_train(
    directory: Annotated[Path, typer.Argument(help="Folder with one sub-folder of documents per label.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the classifier (.npz).")],
    home: HomeOpt = None,
) -> None:
    """Fit the embedding classifier on labelled documents (DIR/<label>/<files>)."""
    pairs = _labelled(directory)
    embedder = _embedder(home)
    vectors = embedder.embed([document_text(_parse(p)) for p, _ in pairs])
    model = LogisticClassifier.fit(vectors, [label for _, label in pairs], model_id=embedder.model_id)
    model.save(out)
    typer.echo(f"trained on {len(pairs)} documents, {len(model.labels)} labels -> {out}")


@classify_app.command("eval")
def classify_eval(
    directory: Annotated[Path, typer.Argument(help="Folder with one sub-folder of documents per label.")],
    model: Annotated[Path | None, typer.Option("--model", help="A trained classifier (default: the rules).")] = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Accuracy and confusion matrix of the rules (or of a trained classifier) on labelled documents."""
    pairs = _labelled(directory)
    parsed = [(_parse(p), p, label) for p, label in pairs]
    if model is None:
        predicted = [classify(doc, p.name).doc_type for doc, p, _ in parsed]
        labels = list(DOC_TYPES)
    else:
        try:
            classifier = LogisticClassifier.load(model)
        except StrongroomError as exc:
            raise _fail(str(exc)) from exc
        vectors = _embedder(home).embed([document_text(doc) for doc, _, _ in parsed])
        predicted = [label for label, _ in classifier.predict(vectors)]
        labels = sorted(set(classifier.labels))
    truth = [label for _, _, label in parsed]
    labels += sorted(set(truth) - set(labels))
    labels = [lab for lab in labels if lab in set(truth) | set(predicted)]
    matrix = confusion_matrix(list(zip(truth, predicted, strict=True)), labels)
    accuracy = sum(t == p for t, p in zip(truth, predicted, strict=True)) / len(truth)
    if as_json:
        typer.echo(json.dumps({"accuracy": accuracy, "documents": len(truth), "labels": labels, "matrix": matrix}))
        return
    typer.echo(f"accuracy {accuracy:.3f} on {len(truth)} documents (rows: truth, columns: predicted)")
    width = max(len(lab) for lab in labels)
    typer.echo(" " * width + "  " + " ".join(f"{i:>4}" for i in range(len(labels))))
    for i, (lab, row) in enumerate(zip(labels, matrix, strict=True)):
        typer.echo(f"{lab:>{width}}  " + " ".join(f"{n:>4}" for n in row) + f"   ({i})")


@termsheets_app.command("extract")
def termsheets_extract(
    paths: Annotated[list[Path], typer.Argument(help="Term-sheet files or folders.")],
    as_json: JsonOpt = False,
) -> None:
    """Extract term-sheet fields from files: value, page, character span and confidence."""
    out: list[dict[str, Any]] = []
    for path in _files(paths):
        fields = extract_termsheet(_parse(path))
        out.append(
            {
                "document": path.name,
                "fields": [
                    {
                        "field": f.name,
                        "value": f.canonical,
                        "text": f.text,
                        "page": f.page,
                        "start": f.start,
                        "end": f.end,
                        "confidence": f.confidence,
                    }
                    for f in fields
                ],
            }
        )
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    for doc in out:
        typer.echo(str(doc["document"]))
        for f in doc["fields"]:
            typer.echo(
                f"  {f['field']:<18} {f['value']:<40} p{f['page']}:{f['start']}-{f['end']} {f['confidence']:.2f}"
            )


def _term_sheets(home: Path | None, user: str | None, groups: str | None) -> list[DocumentVersion]:
    """The current versions of the stored term sheets you may read (through the application layer)."""
    from strongroom.cli.common import platform_session
    from strongroom.service import DocumentsRequest

    with platform_session(home, user, groups) as (platform, principal):
        docs = platform.documents(principal, DocumentsRequest(limit=1000))
    versions = [d.current for d in docs]
    return [v for v in versions if v.doc_type == "term_sheet" or any(k.startswith("ts.") for k in v.metadata)]


def _document(target: str, home: Path | None, user: str | None, groups: str | None) -> ParsedDocument:
    """A file, or a stored document (file name, document id or version id prefix) you may
    read, rebuilt from its stored page text, so cell offsets match its citations."""
    if Path(target).is_file():
        return _parse(_files([Path(target)])[0])
    from strongroom.cli.common import exit_code, platform_session

    with platform_session(home, user, groups) as (platform, principal):
        try:
            doc = platform.find_document(principal, target)
        except StrongroomError as exc:
            raise _fail(f"{target}: no such file, and {exc}", exit_code(exc)) from exc
        version = doc.current
        pages = tuple(
            Page(n, platform.page(principal, doc.document_id, version.id, n).text) for n in range(1, version.pages + 1)
        )
    return ParsedDocument(pages, version.media_type, title=version.title)


def _ts_fields(version: DocumentVersion) -> dict[str, str]:
    return {k.removeprefix("ts."): v for k, v in version.metadata.items() if k.startswith("ts.")}


@termsheets_app.command("list")
def termsheets_list(
    home: HomeOpt = None,
    underlying: Annotated[str | None, typer.Option("--underlying", help="Only those on this underlying.")] = None,
    maturing_before: Annotated[
        str | None, typer.Option("--maturing-before", help="Only those maturing before DATE (YYYY-MM-DD).")
    ] = None,
    user: UserOpt = None,
    groups: GroupsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the stored term sheets you may read, with their main fields."""
    try:
        before = date.fromisoformat(maturing_before) if maturing_before else None
    except ValueError as exc:
        raise _fail(f"{maturing_before!r} is not a date (YYYY-MM-DD)") from exc
    rows = []
    for v in _term_sheets(home, user, groups):
        fields = _ts_fields(v)
        if underlying and underlying.lower() not in fields.get("underlying", "").lower().split("; "):
            continue
        if before and not (fields.get("maturity_date") and date.fromisoformat(fields["maturity_date"]) < before):
            continue
        rows.append({"document": v.name, "version_id": v.id, **fields})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        typer.echo(
            f"{r['document']}\t{r.get('isin', '-')}\t{r.get('product_type', '-')}\t{r.get('maturity_date', '-')}"
        )


@termsheets_app.command("show")
def termsheets_show(
    doc: Annotated[str, typer.Argument(help="Document name or version id (a prefix is enough).")],
    home: HomeOpt = None,
    user: UserOpt = None,
    groups: GroupsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the stored fields of one term sheet you may read."""
    matches = [v for v in _term_sheets(home, user, groups) if v.name == doc or v.id.startswith(doc)]
    if not matches:
        raise _fail(f"no term sheet named {doc!r}; see 'strongroom termsheets list'")
    version = matches[-1]
    fields = _ts_fields(version)
    if as_json:
        typer.echo(json.dumps({"document": version.name, "version_id": version.id, "fields": fields}, indent=2))
        return
    typer.echo(f"{version.name} ({version.id[:12]})")
    for k, v in fields.items():
        typer.echo(f"  {k:<18} {v}")


@termsheets_app.command("generate")
def termsheets_generate(
    directory: Annotated[Path, typer.Argument(help="Folder to write into.")],
    n: Annotated[int, typer.Option("--n", min=1, help="How many term sheets.")] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Generator seed.")] = 0,
) -> None:
    """Write a synthetic term-sheet corpus with NAME.truth.json ground truth beside each file."""
    written = write_corpus(directory, n, seed)
    typer.echo(f"wrote {len(written)} term sheets to {directory} (seed {seed})")


def eval_extraction_command(
    directory: Annotated[Path, typer.Argument(help="Folder of documents with NAME.truth.json beside each.")],
    as_json: JsonOpt = False,
) -> None:
    """Print per-field precision and recall of term-sheet extraction against ground truth."""
    if not directory.is_dir():
        raise _fail(f"{directory}: not a folder; generate one with 'strongroom termsheets generate DIR'")
    result = evaluate_directory(directory)
    if not result.documents:
        raise _fail(f"{directory}: no NAME.truth.json files found")
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2))
        return
    typer.echo(
        f"{result.documents} documents: precision {result.micro_precision:.4f}, recall {result.micro_recall:.4f}"
    )
    for name, s in sorted(result.fields.items()):
        typer.echo(f"  {name:<18} P {s.precision:.3f}  R {s.recall:.3f}  (tp {s.tp}, fp {s.fp}, fn {s.fn})")


@tables_app.command("list")
def tables_list(
    target: Annotated[str, typer.Argument(help="A document file, or a stored document's name or id.")],
    home: HomeOpt = None,
    user: UserOpt = None,
    groups: GroupsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the tables in a document: index, page, kind, size and first row."""
    tables = extract_tables(_document(target, home, user, groups))
    rows = [
        {
            "index": i,
            "page": t.page,
            "kind": t.kind,
            "rows": len(t.rows),
            "columns": t.columns,
            "first": [c.text for c in t.rows[0]] if t.rows else [],
        }
        for i, t in enumerate(tables)
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        typer.echo(f"{r['index']:>3}  p{r['page']:<4} {r['kind']:<8} {r['rows']}x{r['columns']}  {r['first']}")


@tables_app.command("show")
def tables_show(
    target: Annotated[str, typer.Argument(help="A document file, or a stored document's name or id.")],
    index: Annotated[int, typer.Option("--index", min=0, help="Which table (see 'tables list').")] = 0,
    home: HomeOpt = None,
    user: UserOpt = None,
    groups: GroupsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one table: header, rows, and (with --json) each cell's page, span and figure."""
    tables = extract_tables(_document(target, home, user, groups))
    if index >= len(tables):
        raise _fail(f"{target} has {len(tables)} tables; pick --index below that")
    table = tables[index]
    if as_json:
        cells = [
            [{"text": c.text, "number": c.number, "page": c.page, "start": c.start, "end": c.end} for c in row]
            for row in table.rows
        ]
        typer.echo(json.dumps({**table.as_dict(), "cells": cells}, indent=2))
        return
    if table.header:
        typer.echo(" | ".join(table.header))
    for row in table.rows:
        typer.echo(" | ".join(c.text for c in row))
