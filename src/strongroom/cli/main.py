"""The ``strongroom`` command: a thin shell over the application layer (:mod:`strongroom.service`).
Each command parses its options, calls the library, prints (a table, or JSON with ``--json``)
and sets the exit status: 1 for refused, not found or failed, 2 for bad input or settings.

    strongroom ingest filings/ --acl research --published 2023-05-01 --groups research
    strongroom ask "What was Apple's total net sales?" --as-of 2023-06-30 --model chat --json
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.text import Text

from strongroom import __version__
from strongroom.bus import display_url
from strongroom.cli.agent import agent_app
from strongroom.cli.agent_eval import eval_agent_command, load_synthetic_command
from strongroom.cli.approvals import approvals_app
from strongroom.cli.bus import BusOpt, StreamOpt, dead_letters_command, worker_command
from strongroom.cli.common import (
    AsOfOpt,
    DocTypeOpt,
    GroupsOpt,
    HomeOpt,
    JsonOpt,
    KnownAtOpt,
    PublishedFromOpt,
    UserOpt,
    emit,
    err,
    exits_on_error,
    out,
    platform_session,
    say,
    visible,
)
from strongroom.cli.data import data_app
from strongroom.cli.documents import acl_app, delete_cmd, documents_cmd, show_cmd
from strongroom.cli.erasure import erasure_app
from strongroom.cli.lineage import lineage_command
from strongroom.cli.mcp import mcp_command
from strongroom.cli.models import app as models_app
from strongroom.cli.registry import registry_app
from strongroom.cli.retention import holds_app, retention_app
from strongroom.cli.serve import audit_app, keys_app, serve_command
from strongroom.cli.store import migrate_command, reembed_command, upgrade_store_command, verify_store_command
from strongroom.cli.train import train_app
from strongroom.cli.understand import classify_app, eval_extraction_command, tables_app, termsheets_app
from strongroom.config import DEFAULT_ACL
from strongroom.errors import QueryError
from strongroom.evaluate import load_qa
from strongroom.governance.registry import parse_ref
from strongroom.ingest.pipeline import IngestReport
from strongroom.service import AskRequest, IngestRequest, SearchRequest, View, views
from strongroom.service.requests import parse_groups, parse_pairs

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
ACL_HELP = (
    f"Groups who may read, comma-separated (default: {DEFAULT_ACL}). A new version of an existing document must keep "
    "its ACL: change that with `strongroom acl set`."
)
PUBLISHED_HELP = "When it became knowable: DATE (midnight UTC) or ISO datetime (default: its metadata, else file time)."
MODEL_HELP = (
    "Write the answer with this model route (see `strongroom models`; STRONGROOM_ROUTE_GROUPS says who may use which); "
    "default: the extractive generator, which needs no model."
)
ENCODER_HELP = "What embeds the questions: model, or onnx-int8 (the service's cheaper query encoder; measure its cost)."


class _PagesPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        pages = task.fields.get("pages", 0)
        rate = pages / task.elapsed if task.elapsed else 0.0
        return Text(f"{pages} pages {rate:5.1f} pages/s", style="cyan")


@app.command("ingest", rich_help_panel=EVERYDAY)
def ingest_cmd(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (recursive).")],
    acl: Annotated[str, typer.Option("--acl", help=ACL_HELP)] = DEFAULT_ACL,
    published: Annotated[str | None, typer.Option("--published", help=PUBLISHED_HELP)] = None,
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
    with exits_on_error():
        request = IngestRequest(
            tuple(paths), parse_groups(acl, "--acl"), published, doc_type, source, parse_pairs(meta, "--meta")
        )
    with platform_session(home, user, groups, create=True) as (platform, principal):
        if bus:
            queued = platform.queue(principal, request, bus, stream)
            if as_json:
                return emit({"queued": queued}, as_json)
            where = display_url(bus)
            return say(f"queued {len(queued)} file(s) on {where}; `strongroom worker --bus URL` ingests them")
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _PagesPerSecond(),
                   TimeRemainingColumn())  # fmt: skip
        with Progress(*columns, console=err, transient=as_json, disable=not err.is_terminal and as_json) as bar:
            task = bar.add_task("ingesting", total=None, pages=0)

            def advance(name: str, pages: int) -> None:
                done = bar.tasks[task].fields["pages"] + pages
                bar.update(task, advance=1, pages=done, description=f"ingesting {name[:40]}")

            report = platform.ingest(principal, request, advance, ray_address=ray_address)
    emit(report.as_dict() if as_json else _at_a_glance(report), as_json, title=f"ingestion job {report.job_id[:12]}")
    for failure in () if as_json else report.failures:
        out.print(f"[red]failed[/] {escape(visible(failure.path))}: {escape(visible(failure.error))}", highlight=False)
    if not report.ok:
        raise typer.Exit(1)


@app.command("search", rich_help_panel=EVERYDAY)
def search_cmd(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: KOpt = 10,
    as_of: AsOfOpt = None,
    known_at: KnownAtOpt = None,
    published_from: PublishedFromOpt = None,
    filters: FilterOpt = None,
    doc_type: DocTypeOpt = None,
    user: UserOpt = None,
    groups: GroupsOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Hybrid keyword + vector search over what you may read (recorded in the audit log)."""
    with exits_on_error():
        request = SearchRequest(
            query=query, k=k, as_of=as_of, known_at=known_at, doc_types=frozenset(doc_type or ()),
            filters=parse_pairs(filters, "--filter"), published_from=published_from,
        )  # fmt: skip
    with platform_session(home, user, groups) as (platform, principal):
        result = platform.search(principal, request)
    if as_json:
        return emit(views.search_record(query, result), as_json)
    if not result.hits:
        out.print("No results in the documents you may read.")
    for i, hit in enumerate(result.hits, start=1):
        where = f"{escape(visible(hit.version.name))} p.{hit.chunk.page} [dim]({hit.version.id[:12]})[/]"
        out.print(f"[bold]{i}.[/] {where}", highlight=False)
        say(f"   {' '.join(hit.chunk.text.split())[:240]}")


@app.command("ask", rich_help_panel=EVERYDAY)
def ask_cmd(
    question: Annotated[str, typer.Argument(help="The question.")],
    k: KOpt = 5,
    as_of: AsOfOpt = None,
    known_at: KnownAtOpt = None,
    published_from: PublishedFromOpt = None,
    filters: FilterOpt = None,
    doc_type: DocTypeOpt = None,
    user: UserOpt = None,
    groups: GroupsOpt = None,
    model: Annotated[str | None, typer.Option("--model", help=MODEL_HELP)] = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer from the documents you may read, citing page and version (recorded in the audit log)."""
    with exits_on_error():
        request = AskRequest(
            question=question, k=k, model=model, as_of=as_of, known_at=known_at, doc_types=frozenset(doc_type or ()),
            filters=parse_pairs(filters, "--filter"), published_from=published_from,
        )  # fmt: skip
    with platform_session(home, user, groups) as (platform, principal):
        result, seq = platform.ask_recorded(principal, request)
    if as_json:  # audit_seq: the record `strongroom lineage` explains, as over HTTP
        return emit({**views.answer_record(result), "audit_seq": seq}, as_json)
    out.print(f"[bold]Q:[/] {escape(visible(question))}", highlight=False)
    meta = result.metadata
    if "fallback" in meta:
        failed = f"model route {meta.get('model')} failed, answered extractively: {meta.get('gateway_error', '')}"
        err.print(f"[yellow]warning:[/] {escape(failed)}", highlight=False)
    if not result.found:
        return out.print(f"[yellow]{escape(result.note)}[/]", highlight=False)
    kinds = views.labels(result)
    for i, claim in enumerate(result.claims, start=1):
        say(f" {i}. {' '.join(claim.text.split())}")
        for c in claim.citations:
            where = f"{c.label} ({', '.join(kinds.get(c.version_id, ()))}), chars {c.char_start}-{c.char_end}"
            out.print(f"    [dim]— {escape(visible(where))}, version {c.version_id[:12]}[/]", highlight=False)
    if "deployment" in meta and "fallback" not in meta:  # what wrote it: the route, deployment and prompt
        left = f" (failed over from {meta['failed_over_from']})" if meta.get("failed_over_from") else ""
        by = f"route {meta['model']} v{meta['route_version']} answered by {meta['deployment']}{left}"
        out.print(f"[dim]{escape(by)}; prompt {escape(meta['prompt_template_version'])}[/]", highlight=False)
    out.print(f"[dim]audit record {seq} (strongroom lineage {seq})[/]", highlight=False)


def _at_a_glance(report: IngestReport) -> dict[str, object]:
    """An ingestion job as a table's rows (``report.as_dict()`` is the full record)."""
    return {
        "files": len(report.files), "ingested": report.ingested, "skipped duplicates": report.duplicates,
        "failed": len(report.failures), "pages": report.pages, "chunks": report.chunks, "embedded / from cache":
        f"{report.embedded} / {report.embed_cache_hits}", "wall time": f"{report.wall_seconds:.1f} s",
        **{f"  {stage}": f"{secs:.1f} s" for stage, secs in report.seconds.items()},
    }  # fmt: skip


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
    query_encoder: Annotated[str, typer.Option(help=ENCODER_HELP)] = "model",
    record: Annotated[
        str | None, typer.Option("--record", help="Attach the result to this registered model (NAME@VERSION; admins).")
    ] = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Score retrieval on a QA file against what you may read (one audit record for the run);
    --record attaches it to a model registry entry as evidence for its release gate."""
    with exits_on_error():
        view = View(as_of=as_of, known_at=known_at, doc_types=frozenset(doc_type or ()),
                    filters=parse_pairs(filters, "--filter"))  # fmt: skip
        items = load_qa(qa)
        try:
            ref = None if record is None else "@".join(parse_ref(record))
        except ValueError as exc:
            raise QueryError(f"--record: {exc}") from exc
    with platform_session(home, user, groups) as (platform, principal):
        if ref is not None:  # before the run: a model that is not there, or a retrieval run cannot measure, at once
            entry = platform.registering(lambda r: r.show(principal, ref))
            if entry.kind in ("chat", "reranker"):
                raise QueryError(
                    f"--record {ref}: a retrieval evaluation measures the embedder, not the {entry.kind} model "
                    f"{ref}; record it on the embedder's registry entry"
                    + (
                        "; a chat model's evidence is `strongroom eval-agent QUESTIONS --route R --record`"
                        if entry.kind == "chat"
                        else ""
                    )
                )
        result, seq = platform.evaluate_recorded(principal, items, k, view, query_encoder=query_encoder, name=qa.name)
        if ref is not None:
            platform.registering(lambda r: r.attach(principal, ref, seq))
            result = {**result, "recorded": {"model": ref, "audit_seq": seq}}
    emit(result, as_json, title=f"eval on {qa.name}")


def _mount() -> None:
    """The other commands and groups, each under its panel of `strongroom --help`."""
    app.command("documents", rich_help_panel=EVERYDAY)(documents_cmd)
    app.command("show", rich_help_panel=EVERYDAY)(show_cmd)
    app.add_typer(data_app, name="data", rich_help_panel=EVERYDAY)
    app.add_typer(agent_app, name="agent", rich_help_panel=EVERYDAY)
    app.add_typer(acl_app, name="acl", rich_help_panel=ADMIN)
    app.command("delete", rich_help_panel=ADMIN)(delete_cmd)
    app.add_typer(erasure_app, name="erasure", rich_help_panel=ADMIN)
    app.add_typer(keys_app, name="keys", rich_help_panel=ADMIN)
    app.add_typer(approvals_app, name="approvals", rich_help_panel=ADMIN)
    app.add_typer(audit_app, name="audit", rich_help_panel=ADMIN)
    app.command("lineage", rich_help_panel=ADMIN)(lineage_command)
    app.add_typer(models_app, name="models", rich_help_panel=ADMIN)
    app.add_typer(registry_app, name="registry", rich_help_panel=ADMIN)
    app.add_typer(retention_app, name="retention", rich_help_panel=ADMIN)
    app.add_typer(holds_app, name="holds", rich_help_panel=ADMIN)
    app.command("serve", rich_help_panel=OPERATE)(serve_command)
    app.command("mcp", rich_help_panel=OPERATE)(mcp_command)
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
    app.command("eval-agent", rich_help_panel=UNDERSTAND)(eval_agent_command)
    data_app.command("load-synthetic")(load_synthetic_command)


_mount()


def main() -> None:
    logging.basicConfig(level=os.environ.get("STRONGROOM_LOG_LEVEL", "WARNING"), stream=sys.stderr)
    os.umask(0o077)  # what the CLI writes (catalog, indexes, exports, keys) is its owner's alone
    app()
