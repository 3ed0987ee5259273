"""The commands about documents: list them, show one (its versions or a page), change who may
read one (``acl set``), delete one.

    strongroom documents --groups public,research
    strongroom show "2023 Q3 AAPL.pdf" --page 4
    strongroom acl set rates-desk-note.md --acl research,credit --groups research,strongroom-admins
    strongroom delete rates-desk-note.md --groups research
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from strongroom.cli.approvals import proposing
from strongroom.cli.common import (
    AsOfOpt,
    DocTypeOpt,
    GroupsOpt,
    HomeOpt,
    JsonOpt,
    KnownAtOpt,
    UserOpt,
    emit,
    exits_on_error,
    out,
    platform_session,
    say,
    visible,
)
from strongroom.service import DocumentsRequest, DocumentView, View, views
from strongroom.service.admin import resolve_document_id, shown_document
from strongroom.service.requests import parse_groups

__all__ = ["acl_app", "delete_cmd", "documents_cmd", "show_cmd"]

DocOpt = Annotated[str, typer.Argument(help="Document id, file name or source key (an id prefix will do).")]


def documents_cmd(
    as_of: AsOfOpt = None,
    known_at: KnownAtOpt = None,
    doc_type: DocTypeOpt = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="At most this many.")] = 1000,
    offset: Annotated[int, typer.Option("--offset", min=0, help="Skip this many first.")] = 0,
    user: UserOpt = None,
    groups: GroupsOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the documents you may read, each with its current version."""
    request = DocumentsRequest(
        as_of=as_of, known_at=known_at, doc_types=frozenset(doc_type or ()), limit=limit, offset=offset
    )
    with platform_session(home, user, groups) as (platform, principal):
        docs = platform.documents(principal, request)
    row = views.document_row if as_json else _brief
    emit([row(d) for d in docs], as_json, title="documents you may read", empty="No documents you may read.")


def _brief(doc: DocumentView) -> dict[str, object]:
    """A document as a table row, ids shortened to 12 characters (enough for any command that takes one)."""
    v = doc.current
    return {"document": v.name, "document id": doc.document_id[:12], "version": v.id[:12], "pages": v.pages,
            "type": v.doc_type, "acl": ",".join(sorted(v.acl)),
            "published": v.published_at.isoformat()[:10]}  # fmt: skip


def show_cmd(
    document: DocOpt,
    page: Annotated[int | None, typer.Option("--page", min=1, help="Print this page's text.")] = None,
    version: Annotated[
        str | None, typer.Option("--version", help="With --page: this version (id or prefix; default: current).")
    ] = None,
    as_of: AsOfOpt = None,
    known_at: KnownAtOpt = None,
    user: UserOpt = None,
    groups: GroupsOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a document you may read: its versions, or one page's text (what a citation points into)."""
    with platform_session(home, user, groups) as (platform, principal):
        doc, shown = shown_document(platform, principal, document, View(as_of=as_of, known_at=known_at), page, version)
    if shown is None and as_json:
        return emit(views.document_record(doc), as_json)
    if shown is None:
        out.print(
            f"[bold]{escape(visible(doc.title))}[/] ({escape(visible(doc.source))}, id {doc.document_id})",
            highlight=False,
        )
        rows = [{"version": v.id[:12], "published": v.published_at.isoformat()[:19],
                 "ingested": v.ingested_at.isoformat()[:19], "pages": v.pages, "type": v.doc_type,
                 "acl": ",".join(sorted(v.acl)), "": "current" if v.id == doc.current.id else ""}
                for v in doc.versions]  # fmt: skip
        return emit(rows, as_json, title="versions")
    if as_json:
        return emit(views.page_record(shown), as_json)
    out.print(
        f"[bold]{escape(visible(shown.version.name))}[/] p.{shown.page} version {shown.version.id[:12]}",
        highlight=False,
    )
    say(shown.text)


acl_app = typer.Typer(help="Who may read a document: an explicit, audited operation (admins).", no_args_is_help=True)


@acl_app.command("set")
def acl_set(
    document: DocOpt,
    acl: Annotated[str, typer.Option("--acl", help="The groups who may read it from now on, comma-separated.")],
    user: UserOpt = None,
    groups: GroupsOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change who may read every version of a document (needs the admin role and read access to it)."""
    with exits_on_error():
        after = parse_groups(acl, "--acl")
    change = proposing(home, user, groups, as_json,
                       lambda p, who: p.set_acl(who, resolve_document_id(p, who, document), after))  # fmt: skip
    if change is None:
        return
    if as_json:
        return emit(views.acl_record(change), as_json)
    was, now = ",".join(sorted(change.before)), ",".join(sorted(change.after))
    say(f"{change.name}: readable by {now} (was {was}); {len(change.versions)} version(s)")


def delete_cmd(document: DocOpt, user: UserOpt = None, groups: GroupsOpt = None, home: HomeOpt = None,
               as_json: JsonOpt = False) -> None:  # fmt: skip
    """Delete a document: its pages, chunks and vectors go; the audit log keeps that it happened."""
    with platform_session(home, user, groups) as (platform, principal):
        document_id = resolve_document_id(platform, principal, document)
        deleted = platform.delete(principal, document_id)
    if as_json:
        return emit({"document_id": document_id, "deleted_versions": deleted}, as_json)
    say(f"deleted {document} ({len(deleted)} version(s))")
