"""Document understanding commands (``classify``, ``termsheets``, ``eval-extraction``, ``tables``),
mounted by :mod:`strongroom.cli`. The work is in :mod:`strongroom.ingest.understand.files` (files
on disk) and :mod:`strongroom.service.understanding` (what the store holds, as you may read it).
Work on files exits 2 when a file cannot be read or parsed, or an argument is wrong.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Annotated

import typer

from strongroom.cli.common import GroupsOpt, HomeOpt, JsonOpt, UserOpt, emit, exits_on_error, settings_for
from strongroom.cli.common import platform_session as session
from strongroom.ingest.understand import files
from strongroom.ingest.understand.evaluate import evaluate_directory
from strongroom.ingest.understand.synth import write_corpus
from strongroom.ingest.understand.tables import Table
from strongroom.service.understanding import table_at, tables_in, term_sheet, term_sheets

__all__ = ["classify_app", "eval_extraction_command", "tables_app", "termsheets_app"]

classify_app = typer.Typer(help="Classify documents: type, sensitivity, sensitive data.", no_args_is_help=True)
termsheets_app = typer.Typer(help="Term sheets: extract, list and show their fields.", no_args_is_help=True)
tables_app = typer.Typer(help="Tables as data: header, rows and cells with page and position.", no_args_is_help=True)
PathsArg = Annotated[list[Path], typer.Argument(help="Files or folders.")]
LabelledArg = Annotated[Path, typer.Argument(help="Folder with one sub-folder of documents per label.")]
TargetArg = Annotated[str, typer.Argument(help="A document file, or a stored document's name or id.")]


@classify_app.command("file")
def classify_file(paths: PathsArg, as_json: JsonOpt = False) -> None:
    """Classify files with the rules: type, confidence, sensitivity and finding counts (never values)."""
    with exits_on_error(2):
        rows = files.classify_files(paths, settings_for(None))
    emit(rows, as_json, title="documents")


@classify_app.command("train")
def classify_train(
    directory: LabelledArg,
    out: Annotated[Path, typer.Option("--out", help="Where to write the classifier (.npz).")],
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Fit the embedding classifier on labelled documents (DIR/<label>/<files>)."""
    with exits_on_error(2):
        model, documents = files.train_classifier(directory, out, settings_for(home))
    emit({"documents": documents, "labels": list(model.labels), "out": str(out)}, as_json, title="trained")


@classify_app.command("eval")
def classify_eval(
    directory: LabelledArg,
    model: Annotated[Path | None, typer.Option("--model", help="A trained classifier (default: the rules).")] = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Accuracy and confusion matrix of the rules (or of a trained classifier) on labelled documents."""
    with exits_on_error(2):
        found = files.evaluate_classifier(directory, settings_for(home), model)
    title = f"accuracy {found.accuracy:.3f} on {found.documents} documents (columns: predicted)"
    emit(found.as_dict() if as_json else found.rows(), as_json, title=title)


@termsheets_app.command("extract")
def termsheets_extract(paths: PathsArg, as_json: JsonOpt = False) -> None:
    """Extract term-sheet fields from files: value, page, character span and confidence."""
    with exits_on_error(2):
        found = files.extract_termsheets(paths, settings_for(None))
    if as_json:
        emit([{"document": name, "fields": [f.as_dict() for f in fields]} for name, fields in found], True)
    else:
        emit([{"document": name, **f.as_dict()} for name, fields in found for f in fields], False, title="fields")


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
    with session(home, user, groups) as (platform, principal):
        rows = term_sheets(platform, principal, underlying=underlying, maturing_before=maturing_before)
    main = ("document", "isin", "product_type", "maturity_date")
    emit(rows if as_json else [{k: r.get(k, "-") for k in main} for r in rows], as_json, title="term sheets")


@termsheets_app.command("show")
def termsheets_show(
    doc: Annotated[str, typer.Argument(help="Document name or version id (a prefix is enough).")],
    home: HomeOpt = None,
    user: UserOpt = None,
    groups: GroupsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the stored fields of one term sheet you may read."""
    with session(home, user, groups) as (platform, principal):
        found = term_sheet(platform, principal, doc)
    emit(found.as_dict() if as_json else found.fields, as_json, title=f"{found.document} ({found.version_id[:12]})")


@termsheets_app.command("generate")
def termsheets_generate(
    directory: Annotated[Path, typer.Argument(help="Folder to write into.")],
    n: Annotated[int, typer.Option("--n", min=1, help="How many term sheets.")] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Generator seed.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Write a synthetic term-sheet corpus with NAME.truth.json ground truth beside each file."""
    with exits_on_error(2):
        written = write_corpus(directory, n, seed)
    emit({"written": len(written), "folder": str(directory), "seed": seed}, as_json, title="generated")


def eval_extraction_command(
    directory: Annotated[Path, typer.Argument(help="Folder of documents with NAME.truth.json beside each.")],
    as_json: JsonOpt = False,
) -> None:
    """Print per-field precision and recall of term-sheet extraction against ground truth."""
    with exits_on_error(2):
        result = evaluate_directory(directory)
    title = f"{result.documents} documents: precision {result.micro_precision:.4f}, recall {result.micro_recall:.4f}"
    emit(result.as_dict() if as_json else result.rows(), as_json, title=title)


def _tables(target: str, home: Path | None, user: str | None, groups: str | None) -> list[Table]:
    """The tables of a file (one that cannot be read or parsed: exit 2), or of a stored document you may read."""
    with exits_on_error(2), ExitStack() as opened:  # the platform's errors exit as every command's
        return tables_in(target, settings_for(home), lambda: opened.enter_context(session(home, user, groups)))


@tables_app.command("list")
def tables_list(
    target: TargetArg, home: HomeOpt = None, user: UserOpt = None, groups: GroupsOpt = None, as_json: JsonOpt = False
) -> None:
    """List the tables in a document: index, page, kind, size and first row."""
    rows = [{"index": i, **t.summary()} for i, t in enumerate(_tables(target, home, user, groups))]
    emit(rows, as_json, title="tables")


@tables_app.command("show")
def tables_show(
    target: TargetArg,
    index: Annotated[int, typer.Option("--index", min=0, help="Which table (see 'tables list').")] = 0,
    home: HomeOpt = None,
    user: UserOpt = None,
    groups: GroupsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one table: header, rows, and (with --json) each cell's page, span and figure."""
    with exits_on_error():
        table = table_at(_tables(target, home, user, groups), index, target)
    emit(table.as_dict(cells=True) if as_json else table.records(), as_json, title=f"table {index}, page {table.page}")
