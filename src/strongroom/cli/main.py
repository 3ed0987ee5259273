"""The ``strongroom`` command: a thin shell over the application layer (``strongroom.service``),
which the HTTP API calls too. It parses options, prints, and sets the exit status.

strongroom ingest filings/ --acl research --published 2023-05-01 --groups research
strongroom search "Apple total net sales" -k 5 --groups research
strongroom ask "What was Apple's total net sales?" --as-of 2023-01-01
strongroom ask "What was Apple's total net sales?" --model chat   # through a model-gateway route
strongroom acl set DOC --acl research,credit --groups research,strongroom-admins
strongroom eval qa.jsonl -k 5 --json
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from strongroom import __version__
from strongroom.cli.bus import BusOpt, StreamOpt, dead_letters_command, worker_command
from strongroom.cli.common import (
    AsOfOpt,
    DocTypeOpt,
    GroupsOpt,
    HomeOpt,
    JsonOpt,
    KnownAtOpt,
    UserOpt,
    err,
    fail,
    out,
    parse_groups,
    platform_session,
)
from strongroom.cli.documents import acl_app, delete_cmd, documents_cmd, show_cmd
from strongroom.cli.models import app as models_app
from strongroom.cli.serve import audit_app, keys_app, serve_command
from strongroom.cli.store import migrate_command, reembed_command, upgrade_store_command, verify_store_command
from strongroom.cli.train import train_app
from strongroom.cli.understand import classify_app, eval_extraction_command, tables_app, termsheets_app
from strongroom.config import DEFAULT_ACL
from strongroom.errors import StrongroomError
from strongroom.evaluate import load_qa
from strongroom.ingest.pipeline import IngestReport
from strongroom.service import AskRequest, IngestRequest, SearchRequest, View
from strongroom.types import Answer, Hit, frozen_meta

__all__ = ["app", "main"]

EVERYDAY = "Everyday"
ADMIN = "Administration"
OPERATE = "Operations"
UNDERSTAND = "Document understanding and evaluation"


def _version(value: bool) -> None:
    if value:
        out.print(f"strongroom {__version__}", highlight=False)
        raise typer.Exit()


app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode="rich",
    # an unexpected error prints a plain traceback, never the locals (they may hold document text or keys)
    pretty_exceptions_show_locals=False,
    help="strongroom: cited, entitled, point-in-time answers over your documents.",
)


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """strongroom: cited, entitled, point-in-time answers over your documents.

    Start with `strongroom ingest FILES`, then `strongroom ask "QUESTION"`."""


KOpt = Annotated[int, typer.Option("-k", min=1, max=1000, help="How many results.")]
FilterOpt = Annotated[list[str] | None, typer.Option("--filter", help="Metadata equality KEY=VALUE (repeatable).")]


def _pairs(values: list[str] | None, option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise fail(f"{option} takes KEY=VALUE, got {item!r}")
        pairs[key.strip()] = value.strip()
    return pairs


def _view(as_of: str | None, known_at: str | None, filters: list[str] | None, doc_types: list[str] | None) -> View:
    return View(
        as_of=as_of,
        known_at=known_at,
        doc_types=frozenset(doc_types or ()),
        filters=frozen_meta(_pairs(filters, "--filter")),
    )


class _PagesPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        pages = task.fields.get("pages", 0)
        rate = pages / task.elapsed if task.elapsed else 0.0
        return Text(f"{pages} pages {rate:5.1f} pages/s", style="cyan")


@app.command("ingest", rich_help_panel=EVERYDAY)
def ingest_cmd(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (recursive).")],
    acl: Annotated[
        str,
        typer.Option(
            "--acl",
            help=f"Groups who may read, comma-separated (default: {DEFAULT_ACL}). A new version of an existing "
            "document must keep its ACL: change that with `strongroom acl set`.",
        ),
    ] = DEFAULT_ACL,
    published: Annotated[
        str | None,
        typer.Option(
            "--published",
            help="When it became knowable: DATE (midnight UTC) or ISO datetime (default: document metadata, "
            "else file time).",
        ),
    ] = None,
    doc_type: Annotated[str | None, typer.Option("--doc-type", help="Document type (default: detected).")] = None,
    source: Annotated[
        str | None, typer.Option("--source", help="Source label; documents are then keyed by label + relative path.")
    ] = None,
    meta: Annotated[list[str] | None, typer.Option("--meta", help="Metadata KEY=VALUE (repeatable).")] = None,
    bus: BusOpt = None,
    stream: StreamOpt = "strongroom:ingest",
    ray_address: Annotated[
        str | None,
        typer.Option("--ray", help="Parse and embed on Ray: 'local', or a cluster address (ray://head:10001)."),
    ] = None,
    user: UserOpt = None,
    groups: GroupsOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ingest documents: parse, redact, chunk, embed and store each version atomically.

    Exit status 1 if any file failed (each is listed with its reason). With --bus, queue one
    job per file for `strongroom worker` processes instead."""
    request = IngestRequest(
        paths=tuple(paths),
        acl=parse_groups(acl, "--acl"),
        published=published,
        doc_type=doc_type,
        source=source,
        meta=frozen_meta(_pairs(meta, "--meta")),
    )
    with platform_session(home, user, groups, create=True) as (platform, principal):
        if bus:
            queued = platform.queue(principal, request, bus, stream)
            if as_json:
                out.print_json(json.dumps({"queued": queued}))
            else:
                where = bus.split("@")[-1]
                out.print(f"queued {len(queued)} file(s) on {where}; `strongroom worker --bus URL` ingests them")
            return
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _PagesPerSecond(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=err, transient=as_json, disable=not err.is_terminal and as_json) as bar:
            task = bar.add_task("ingesting", total=None, pages=0)

            def advance(name: str, pages: int) -> None:
                done = bar.tasks[task].fields["pages"] + pages
                bar.update(task, advance=1, pages=done, description=f"ingesting {name[:40]}")

            report = platform.ingest(principal, request, advance, ray_address=ray_address)
    if as_json:
        out.print_json(json.dumps(report.as_dict()))
    else:
        _print_report(report)
    if not report.ok:
        raise typer.Exit(1)


def _print_report(report: IngestReport) -> None:
    table = Table(title=f"ingestion job {report.job_id[:12]}", show_header=False)
    for label, value in [
        ("files", len(report.files)),
        ("ingested", report.ingested),
        ("skipped duplicates", report.duplicates),
        ("failed", len(report.failures)),
        ("pages", report.pages),
        ("chunks", report.chunks),
        ("embedded / from cache", f"{report.embedded} / {report.embed_cache_hits}"),
        ("wall time", f"{report.wall_seconds:.1f} s"),
        *[(f"  {stage}", f"{secs:.1f} s") for stage, secs in report.seconds.items()],
    ]:
        table.add_row(label, str(value))
    out.print(table)
    for failure in report.failures:
        out.print(f"[red]failed[/] {escape(failure.path)}: {escape(failure.error)}", highlight=False)


def _hit_json(hit: Hit) -> dict[str, object]:
    c, v = hit.chunk, hit.version
    return {
        "chunk_id": c.id,
        "score": round(hit.score, 6),
        "document": v.name,
        "source": v.source,
        "document_id": v.document_id,
        "version_id": v.id,
        "page": c.page,
        "char_start": c.char_start,
        "char_end": c.char_end,
        "title": v.title,
        "doc_type": v.doc_type,
        "published_at": v.published_at.isoformat(),
        "ingested_at": v.ingested_at.isoformat(),
        "keyword_rank": hit.keyword_rank,
        "dense_rank": hit.dense_rank,
        "text": c.text,
    }


@app.command("search", rich_help_panel=EVERYDAY)
def search_cmd(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: KOpt = 10,
    as_of: AsOfOpt = None,
    known_at: KnownAtOpt = None,
    filters: FilterOpt = None,
    doc_type: DocTypeOpt = None,
    user: UserOpt = None,
    groups: GroupsOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Hybrid keyword + vector search over what you may read (recorded in the audit log)."""
    view = _view(as_of, known_at, filters, doc_type)
    with platform_session(home, user, groups) as (platform, principal):
        request = SearchRequest(
            query=query, k=k, as_of=as_of, known_at=known_at, doc_types=view.doc_types, filters=view.filters
        )
        result = platform.search(principal, request)
    if as_json:
        hits = [_hit_json(h) for h in result.hits]
        out.print_json(json.dumps({"query": query, **result.clocks.describe(), "hits": hits}))
        return
    if not result.hits:
        out.print("No results in the documents you may read.")
    for i, hit in enumerate(result.hits, start=1):
        snippet = " ".join(hit.chunk.text.split())[:240]
        out.print(
            f"[bold]{i}.[/] {escape(hit.version.name)} p.{hit.chunk.page} [dim]({hit.version.id[:12]})[/]",
            highlight=False,
        )
        out.print(f"   {snippet}", highlight=False, markup=False)


def _labels(result: Answer) -> dict[str, tuple[str, str]]:
    """Document type and sensitivity of each cited version, for showing beside citations."""
    return {
        h.version.id: (h.version.doc_type, h.version.metadata.get("sensitivity", "unclassified")) for h in result.hits
    }


def _answer_json(result: Answer) -> dict[str, object]:
    labels = _labels(result)
    return {
        "question": result.question,
        "found": result.found,
        "answer": result.text,
        "generator": result.generator,
        "claims": [
            {
                "text": c.text,
                "citations": [
                    {
                        "document": x.name,
                        "source": x.source,
                        "document_id": x.document_id,
                        "version_id": x.version_id,
                        "page": x.page,
                        "char_start": x.char_start,
                        "char_end": x.char_end,
                        "quote": x.quote,
                        "doc_type": labels.get(x.version_id, ("", ""))[0],
                        "sensitivity": labels.get(x.version_id, ("", ""))[1],
                    }
                    for x in c.citations
                ],
            }
            for c in result.claims
        ],
        "retrieved": [h.chunk.id for h in result.hits],
        "metadata": dict(result.metadata),
    }


@app.command("ask", rich_help_panel=EVERYDAY)
def ask_cmd(
    question: Annotated[str, typer.Argument(help="The question.")],
    k: KOpt = 5,
    as_of: AsOfOpt = None,
    known_at: KnownAtOpt = None,
    filters: FilterOpt = None,
    doc_type: DocTypeOpt = None,
    user: UserOpt = None,
    groups: GroupsOpt = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="Write the answer with this model route (see `strongroom models`; STRONGROOM_ROUTE_GROUPS says "
            "who may use which); default: the extractive generator, which needs no model.",
        ),
    ] = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer from the documents you may read, citing page and version (recorded in the audit log)."""
    view = _view(as_of, known_at, filters, doc_type)
    with platform_session(home, user, groups) as (platform, principal):
        request = AskRequest(
            question=question,
            k=k,
            model=model,
            as_of=as_of,
            known_at=known_at,
            doc_types=view.doc_types,
            filters=view.filters,
        )
        result = platform.ask(principal, request)
    if as_json:
        out.print_json(json.dumps(_answer_json(result)))
        return
    out.print(f"[bold]Q:[/] {escape(question)}", highlight=False)
    meta = result.metadata
    if "fallback" in meta:
        why = escape(f"model route {model} failed, answered extractively: {meta.get('gateway_error', '')}")
        err.print(f"[yellow]warning:[/] {why}", highlight=False)
    if not result.found:
        out.print(f"[yellow]{escape(result.note)}[/]", highlight=False)
        return
    labels = _labels(result)
    for i, claim in enumerate(result.claims, start=1):
        out.print(f" {i}. {' '.join(claim.text.split())}", highlight=False, markup=False)
        for c in claim.citations:
            kind = ", ".join(labels.get(c.version_id, ()))
            out.print(
                f"    [dim]— {escape(c.label)} ({escape(kind)}), chars {c.char_start}-{c.char_end}, "
                f"version {c.version_id[:12]}[/]",
                highlight=False,
            )
    if "deployment" in meta and "fallback" not in meta:
        left = meta.get("failed_over_from")
        failed = f" (failed over from {escape(left)})" if left else ""
        out.print(
            f"[dim]route {escape(meta['model'])} v{meta['route_version']} answered by "
            f"{escape(meta['deployment'])}{failed}; prompt {escape(meta['prompt_template_version'])}[/]",
            highlight=False,
        )


@app.command("eval", rich_help_panel=UNDERSTAND)
def eval_cmd(
    qa: Annotated[Path, typer.Argument(help="QA file (JSON lines: id, question, evidence, facts).")],
    k: KOpt = 5,
    as_of: AsOfOpt = None,
    known_at: KnownAtOpt = None,
    filters: FilterOpt = None,
    doc_type: DocTypeOpt = None,
    user: UserOpt = None,
    groups: GroupsOpt = None,
    query_encoder: Annotated[
        str,
        typer.Option(
            help="What embeds the questions: model, or onnx-int8 (the service's cheaper query encoder), "
            "to measure what it costs in quality."
        ),
    ] = "model",
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Score retrieval on a QA file against what you may read (one audit record for the run)."""
    view = _view(as_of, known_at, filters, doc_type)
    try:
        items = load_qa(qa)
    except StrongroomError as exc:
        raise fail(str(exc)) from exc
    with platform_session(home, user, groups) as (platform, principal):
        result = platform.evaluate(principal, items, k, view, query_encoder=query_encoder, name=qa.name)
    if as_json:
        out.print(json.dumps(result))
        return
    table = Table("metric", "value", title=f"eval on {qa.name}")
    for key, value in result.items():
        table.add_row(key, str(value))
    out.print(table)


def _mount() -> None:
    """The other commands and groups, each under its panel of `strongroom --help`."""
    app.command("documents", rich_help_panel=EVERYDAY)(documents_cmd)
    app.command("show", rich_help_panel=EVERYDAY)(show_cmd)
    app.add_typer(acl_app, name="acl", rich_help_panel=ADMIN)
    app.command("delete", rich_help_panel=ADMIN)(delete_cmd)
    app.add_typer(keys_app, name="keys", rich_help_panel=ADMIN)
    app.add_typer(audit_app, name="audit", rich_help_panel=ADMIN)
    app.add_typer(models_app, name="models", rich_help_panel=ADMIN)
    app.command("serve", rich_help_panel=OPERATE)(serve_command)
    app.command("worker", rich_help_panel=OPERATE)(worker_command)
    app.command("dead-letters", rich_help_panel=OPERATE)(dead_letters_command)
    app.command("migrate", rich_help_panel=OPERATE)(migrate_command)
    app.command("verify-store", rich_help_panel=OPERATE)(verify_store_command)
    app.command("upgrade-store", rich_help_panel=OPERATE)(upgrade_store_command)
    app.command("reembed", rich_help_panel=OPERATE)(reembed_command)
    app.add_typer(train_app, name="train", rich_help_panel=OPERATE)
    app.add_typer(classify_app, name="classify", rich_help_panel=UNDERSTAND)
    app.add_typer(termsheets_app, name="termsheets", rich_help_panel=UNDERSTAND)
    app.add_typer(tables_app, name="tables", rich_help_panel=UNDERSTAND)
    app.command("eval-extraction", rich_help_panel=UNDERSTAND)(eval_extraction_command)


_mount()


def main() -> None:
    logging.basicConfig(level=os.environ.get("STRONGROOM_LOG_LEVEL", "WARNING"), stream=sys.stderr)
    os.umask(0o077)  # what the CLI writes (catalog, indexes, exports, keys) is its owner's alone
    app()


if __name__ == "__main__":
    main()
