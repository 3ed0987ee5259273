"""The commands about documents: list them, show one (its versions or a page), change who may
read one (``acl set``), delete one. Mounted by :mod:`strongroom.cli`; a thin shell over the
application layer like the rest.

    strongroom documents --groups public,research
    strongroom show "2023 Q3 AAPL.pdf" --page 4
    strongroom acl set rates-desk-note.md --acl research,credit --groups research,strongroom-admins
    strongroom delete rates-desk-note.md --groups research
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from strongroom.cli.common import (
    AsOfOpt,
    DocTypeOpt,
    GroupsOpt,
    HomeOpt,
    JsonOpt,
    KnownAtOpt,
    UserOpt,
    fail,
    out,
    parse_groups,
    platform_session,
)
from strongroom.errors import NotFound
from strongroom.service import DocumentsRequest, Platform, View
from strongroom.service.requests import DocumentView
from strongroom.types import DocumentVersion, Principal

__all__ = ["acl_app", "delete_cmd", "documents_cmd", "show_cmd"]


def _version_row(v: DocumentVersion) -> dict[str, object]:
    return {
        "document": v.name,
        "document_id": v.document_id,
        "version_id": v.id,
        "title": v.title,
        "pages": v.pages,
        "doc_type": v.doc_type,
        "acl": sorted(v.acl),
        "published_at": v.published_at.isoformat(),
        "ingested_at": v.ingested_at.isoformat(),
        "metadata": dict(v.metadata),
    }


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
    rows = [_version_row(d.current) | {"versions": len(d.versions)} for d in docs]
    if as_json:
        out.print_json(json.dumps(rows))
        return
    if not rows:
        out.print("No documents you may read.")
        return
    table = Table("document", "document id", "version", "pages", "type", "acl", "published")
    for d in docs:
        v = d.current
        table.add_row(
            v.name, d.document_id[:12], v.id[:12], str(v.pages), v.doc_type, ",".join(sorted(v.acl)),
            v.published_at.isoformat()[:10],
        )  # fmt: skip
    out.print(table)


def show_cmd(
    document: Annotated[str, typer.Argument(help="Document id, file name or source key (an id prefix will do).")],
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
    view = View(as_of=as_of, known_at=known_at)
    with platform_session(home, user, groups) as (platform, principal):
        doc = platform.find_document(principal, document, view)
        doc = platform.document(principal, doc.document_id, view)
        if page is None:
            _print_document(doc, as_json)
            return
        chosen = doc.current if version is None else _pick_version(doc, version)
        shown = platform.page(principal, doc.document_id, chosen.id, page, view)
    if as_json:
        out.print_json(json.dumps({**_version_row(shown.version), "page": shown.page, "text": shown.text}))
        return
    out.print(f"[bold]{escape(shown.version.name)}[/] p.{shown.page} version {shown.version.id[:12]}", highlight=False)
    out.print(shown.text, highlight=False, markup=False)


def _pick_version(doc: DocumentView, version: str) -> DocumentVersion:
    found = [v for v in doc.versions if v.id.startswith(version)]
    if len(found) != 1:
        raise fail(f"--version {version!r}: {'no' if not found else 'more than one'} version of the document matches")
    return found[0]


def _print_document(doc: DocumentView, as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps({"document_id": doc.document_id, "source": doc.source, "title": doc.title,
                                   "current": _version_row(doc.current),
                                   "versions": [_version_row(v) for v in doc.versions]}))  # fmt: skip
        return
    out.print(f"[bold]{escape(doc.title)}[/] ({escape(doc.source)}, id {doc.document_id})", highlight=False)
    table = Table("version", "published", "ingested", "pages", "type", "acl", "")
    for v in doc.versions:
        table.add_row(
            v.id[:12], v.published_at.isoformat()[:19], v.ingested_at.isoformat()[:19], str(v.pages), v.doc_type,
            ",".join(sorted(v.acl)), "current" if v.id == doc.current.id else "",
        )  # fmt: skip
    out.print(table)


acl_app = typer.Typer(help="Who may read a document: an explicit, audited operation (admins).", no_args_is_help=True)


@acl_app.command("set")
def acl_set(
    document: Annotated[str, typer.Argument(help="Document id, file name or source key.")],
    acl: Annotated[str, typer.Option("--acl", help="The groups who may read it from now on, comma-separated.")],
    user: UserOpt = None,
    groups: GroupsOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change who may read every version of a document (needs the admin role and read access to it)."""
    after = parse_groups(acl, "--acl")
    with platform_session(home, user, groups) as (platform, principal):
        change = platform.set_acl(principal, _document_id(platform, principal, document), after)
        doc = platform.document(principal, change.document_id) if principal.may_read(after) else None
    if as_json:
        out.print_json(json.dumps({"document_id": change.document_id, "before": sorted(change.before),
                                   "after": sorted(change.after), "versions": list(change.versions)}))  # fmt: skip
        return
    name = doc.current.name if doc else change.document_id
    out.print(
        f"{escape(name)}: readable by {','.join(sorted(change.after))} "
        f"(was {','.join(sorted(change.before))}); {len(change.versions)} version(s)",
        highlight=False,
    )


def delete_cmd(
    document: Annotated[str, typer.Argument(help="Document id, file name or source key.")],
    user: UserOpt = None,
    groups: GroupsOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete a document: its pages, chunks and vectors go; the audit log keeps that it happened."""
    with platform_session(home, user, groups) as (platform, principal):
        document_id = _document_id(platform, principal, document)
        deleted = platform.delete(principal, document_id)
    if as_json:
        out.print_json(json.dumps({"document_id": document_id, "deleted_versions": deleted}))
        return
    out.print(f"deleted {escape(document)} ({len(deleted)} version(s))", highlight=False)


def _document_id(platform: Platform, principal: Principal, name: str) -> str:
    """The id of the document ``name`` names, for a write; a name that finds nothing is passed on
    as given, so the operation itself refuses it (and its audit record says so)."""
    try:
        return platform.find_document(principal, name).document_id
    except NotFound:
        return name
