"""The ``strongroom`` command: a thin shell over the library (the HTTP API calls the same).

strongroom ingest filings/ --acl research --published 2023-05-01
strongroom search "Apple total net sales" -k 5 --groups research
strongroom ask "What was Apple's total net sales?" --as-of 2023-01-01
strongroom ask "What was Apple's total net sales?" --model chat   # through the model gateway
strongroom eval qa.jsonl -k 5 --json
strongroom models set-route chat -d vllm-a:100 -d extractive        # see `strongroom models --help`
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from time import perf_counter
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from strongroom.api.cli import audit_app, keys_app, serve_command
from strongroom.bus.cli import BusOpt, StreamOpt, dead_letters_command, publish, worker_command
from strongroom.cli_common import HomeOpt, JsonOpt, err, fail, open_runtime_for, out, settings_for
from strongroom.config import DEFAULT_ACL
from strongroom.errors import StrongroomError
from strongroom.evaluate import load_qa, run_eval
from strongroom.ingest.distributed import ingest_with_ray
from strongroom.ingest.pipeline import IngestOptions, IngestReport, discover, ingest
from strongroom.llm.cli import app as models_app
from strongroom.llm_generator import LLMGenerator, open_llm_generator
from strongroom.query_encoder import create_query_encoder
from strongroom.rag import answer
from strongroom.retrieve import search as hybrid_search
from strongroom.store.cli import migrate_command, reembed_command, upgrade_store_command, verify_store_command
from strongroom.train.cli import train_app
from strongroom.types import Answer, Hit, Principal, Scope, frozen_meta
from strongroom.understand.cli import classify_app, eval_extraction_command, tables_app, termsheets_app

__all__ = ["app", "main"]

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="strongroom: cited, entitled, point-in-time answers."
)
app.add_typer(models_app, name="models")
app.add_typer(classify_app, name="classify")
app.add_typer(termsheets_app, name="termsheets")
app.add_typer(tables_app, name="tables")
app.command("eval-extraction")(eval_extraction_command)
app.command("serve")(serve_command)
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")
app.add_typer(train_app, name="train")
app.command("worker")(worker_command)
app.command("dead-letters")(dead_letters_command)
app.command("migrate")(migrate_command)
app.command("verify-store")(verify_store_command)
app.command("upgrade-store")(upgrade_store_command)
app.command("reembed")(reembed_command)
KOpt = Annotated[int, typer.Option("-k", min=1, max=1000, help="How many results.")]
AsOfOpt = Annotated[
    str | None, typer.Option("--as-of", help="Point in time: DATE (end of that day, UTC) or ISO datetime.")
]
FilterOpt = Annotated[list[str] | None, typer.Option("--filter", help="Metadata equality KEY=VALUE (repeatable).")]
DocTypeOpt = Annotated[list[str] | None, typer.Option("--doc-type", help="Only these document types (repeatable).")]
UserOpt = Annotated[str | None, typer.Option("--user", help="Principal name (default: $USER).")]
GroupsOpt = Annotated[
    str, typer.Option("--groups", help=f"Principal's groups, comma-separated (default: {DEFAULT_ACL}).")
]


def _parse_time(value: str, *, end_of_day: bool) -> datetime:
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            moment = datetime.combine(day, time.min, UTC)
            return moment + timedelta(days=1, microseconds=-1) if end_of_day else moment
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise fail(f"{value!r} is not a date (YYYY-MM-DD) or an ISO datetime") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _pairs(values: list[str] | None, option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise fail(f"{option} takes KEY=VALUE, got {item!r}")
        pairs[key.strip()] = value.strip()
    return pairs


def _groups(value: str) -> frozenset[str]:
    groups = frozenset(g.strip() for g in value.split(",") if g.strip())
    if not groups:
        raise fail("give at least one group")
    return groups


def _scope(groups: str, as_of: str | None, filters: list[str] | None, doc_types: list[str] | None) -> Scope:
    principal = Principal(os.environ.get("USER", "cli"), _groups(groups))
    return Scope.for_principal(
        principal,
        as_of=_parse_time(as_of, end_of_day=True) if as_of else None,
        doc_types=frozenset(doc_types or ()),
        filters=_pairs(filters, "--filter"),
    )


class _PagesPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        pages = task.fields.get("pages", 0)
        rate = pages / task.elapsed if task.elapsed else 0.0
        return Text(f"{pages} pages {rate:5.1f} pages/s", style="cyan")


@app.command("ingest")
def ingest_cmd(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (recursive).")],
    acl: Annotated[
        str, typer.Option("--acl", help=f"Groups who may read, comma-separated (default: {DEFAULT_ACL}).")
    ] = DEFAULT_ACL,
    published: Annotated[
        str | None,
        typer.Option("--published", help="When it became knowable (default: document metadata, else file time)."),
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
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ingest documents: parse, chunk, embed and store each version atomically.

    With --bus, queue one job per file for `strongroom worker` processes instead."""
    settings = settings_for(home)
    options = IngestOptions(
        acl=_groups(acl),
        published=_parse_time(published, end_of_day=False) if published else None,
        doc_type=doc_type,
        source=source,
        meta=frozen_meta(_pairs(meta, "--meta")),
        max_file_bytes=settings.max_file_bytes,
        chunk_tokens=settings.chunk_tokens,
    )
    files, _ = discover(paths)
    if bus:
        publish(bus, stream, files, options, paths, as_json)
        return
    runtime = open_runtime_for(home)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _PagesPerSecond(),
        TimeRemainingColumn(),
    )
    try:
        with Progress(*columns, console=err, transient=as_json, disable=not err.is_terminal and as_json) as bar:
            task = bar.add_task("ingesting", total=len(files), pages=0)

            def advance(name: str, pages: int) -> None:
                done = bar.tasks[task].fields["pages"] + pages
                bar.update(task, advance=1, pages=done, description=f"ingesting {name[:40]}")

            if ray_address:
                report = ingest_with_ray(paths, runtime.store, settings, options, address=ray_address, progress=advance)
            else:
                report = ingest(paths, runtime.store, runtime.embedder, options, advance)
        started = perf_counter()
        runtime.store.save_indexes()  # build the search indexes now, not on the first query
        report.seconds["index"] += perf_counter() - started
        report.wall_seconds += perf_counter() - started
    except StrongroomError as exc:
        raise fail(str(exc)) from exc
    finally:
        runtime.close()
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
        out.print(f"[red]failed[/] {failure.path}: {failure.error}", highlight=False)


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
        "keyword_rank": hit.keyword_rank,
        "dense_rank": hit.dense_rank,
        "text": c.text,
    }


@app.command("search")
def search_cmd(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: KOpt = 10,
    as_of: AsOfOpt = None,
    filters: FilterOpt = None,
    doc_type: DocTypeOpt = None,
    user: UserOpt = None,
    groups: GroupsOpt = DEFAULT_ACL,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Hybrid keyword + vector search over what the principal may read."""
    scope = _scope(groups, as_of, filters, doc_type)
    runtime = open_runtime_for(home)
    try:
        hits = hybrid_search(runtime.store, runtime.embedder, query, scope, k)
    except StrongroomError as exc:
        raise fail(str(exc)) from exc
    finally:
        runtime.close()
    if as_json:
        out.print_json(json.dumps({"query": query, "hits": [_hit_json(h) for h in hits]}))
        return
    if not hits:
        out.print("No results in the documents you may read.")
    for i, hit in enumerate(hits, start=1):
        snippet = " ".join(hit.chunk.text.split())[:240]
        out.print(
            f"[bold]{i}.[/] {hit.version.name} p.{hit.chunk.page} [dim]({hit.version.id[:12]})[/]", highlight=False
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


@app.command("ask")
def ask_cmd(
    question: Annotated[str, typer.Argument(help="The question.")],
    k: KOpt = 5,
    as_of: AsOfOpt = None,
    filters: FilterOpt = None,
    doc_type: DocTypeOpt = None,
    user: UserOpt = None,
    groups: GroupsOpt = DEFAULT_ACL,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="Write the answer with this model route (see `strongroom models`); "
            "default: the extractive generator, which needs no model.",
        ),
    ] = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer from the documents the principal may read, citing page and version."""
    scope = _scope(groups, as_of, filters, doc_type)
    generator = _llm_generator(home, model, user) if model else None
    runtime = open_runtime_for(home)
    try:
        result = answer(question, scope, runtime.store, runtime.embedder, generator=generator, k=k)
    except StrongroomError as exc:
        raise fail(str(exc)) from exc
    finally:
        runtime.close()
        if generator is not None:
            generator.close()
    if as_json:
        out.print_json(json.dumps(_answer_json(result)))
        return
    out.print(f"[bold]Q:[/] {question}", highlight=False)
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


def _llm_generator(home: Path | None, route: str, user: str | None) -> LLMGenerator:
    try:
        return open_llm_generator(settings_for(home).home, route, user=user or os.environ.get("USER"))
    except StrongroomError as exc:
        raise fail(str(exc)) from exc


@app.command("eval")
def eval_cmd(
    qa: Annotated[Path, typer.Argument(help="QA file (JSON lines: id, question, evidence, facts).")],
    k: KOpt = 5,
    as_of: AsOfOpt = None,
    filters: FilterOpt = None,
    doc_type: DocTypeOpt = None,
    user: UserOpt = None,
    groups: GroupsOpt = DEFAULT_ACL,
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
    """Score retrieval on a QA file against what is already ingested."""
    scope = _scope(groups, as_of, filters, doc_type)
    try:
        items = load_qa(qa)
    except StrongroomError as exc:
        raise fail(str(exc)) from exc
    runtime = open_runtime_for(home)
    try:
        encoder = create_query_encoder(
            query_encoder,  # type: ignore[arg-type]  # checked there: a clear error, not a traceback
            runtime.embedder,
            runtime.settings.home / "models",
        )
        result = run_eval(items, lambda q: hybrid_search(runtime.store, encoder, q, scope, k), k)
    except StrongroomError as exc:
        raise fail(str(exc)) from exc
    finally:
        runtime.close()
    if as_json:
        out.print(json.dumps(result))
        return
    table = Table("metric", "value", title=f"eval on {qa.name}")
    for key, value in result.items():
        table.add_row(key, str(value))
    out.print(table)


@app.command("documents")
def documents_cmd(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """List the stored document versions."""
    runtime = open_runtime_for(home)
    try:
        versions = runtime.store.versions()
    finally:
        runtime.close()
    rows = [
        {
            "document": v.name,
            "document_id": v.document_id,
            "version_id": v.id,
            "pages": v.pages,
            "doc_type": v.doc_type,
            "acl": sorted(v.acl),
            "published_at": v.published_at.isoformat(),
            "ingested_at": v.ingested_at.isoformat(),
        }
        for v in versions
    ]
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table("document", "version", "pages", "type", "acl", "published")
    for r, v in zip(rows, versions, strict=True):
        table.add_row(
            str(r["document"]),
            str(r["version_id"])[:12],
            str(r["pages"]),
            str(r["doc_type"]),
            ",".join(sorted(v.acl)),
            str(r["published_at"])[:10],
        )
    out.print(table)


def main() -> None:
    logging.basicConfig(level=os.environ.get("STRONGROOM_LOG_LEVEL", "WARNING"), stream=sys.stderr)
    app()


if __name__ == "__main__":
    main()
