"""Retention policies and legal holds on the command line (admins).

    strongroom retention set research-7y --keep 7y --doc-type research_report
    strongroom retention list
    strongroom retention apply --dry-run          # what would be deleted, and what a hold keeps
    strongroom retention remove research-7y
    strongroom holds place --matter M-2026-001 --reason "litigation" --document note.pdf
    strongroom holds place --matter M-2026-002 --reason "inquiry" --where meta.ticker=AAPL --where doc_type=term_sheet
    strongroom holds list --active
    strongroom holds release 3f2a...

With four-eyes on (``STRONGROOM_FOUR_EYES=true``), ``retention set|remove`` and ``holds release``
print a proposal id instead; an approver makes them with ``strongroom approvals approve``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from strongroom.cli.approvals import proposing
from strongroom.cli.common import GroupsOpt, HomeOpt, JsonOpt, UserOpt, emit, platform_session, say
from strongroom.governance.holds import Hold
from strongroom.governance.retention import RetentionPolicy
from strongroom.service.admin import resolve_document_id
from strongroom.service.operations import Outcome
from strongroom.service.retention import Retention
from strongroom.types import Principal

__all__ = ["holds_app", "retention_app"]

retention_app = typer.Typer(
    help="Retention policies: how long documents are kept after publication; apply deletes what has expired.",
    no_args_is_help=True,
)
holds_app = typer.Typer(
    help="Legal holds: documents a matter covers are never deleted (by retention or by hand) until released.",
    no_args_is_help=True,
)
ReasonOpt = Annotated[str, typer.Option(help="Why (kept with a four-eyes proposal and in the audit log).")]
T = TypeVar("T")


def _retaining(home: Path | None, user: str | None, groups: str | None,
               op: Callable[[Retention, Principal], Outcome[T]]) -> T:  # fmt: skip
    """Run one retention or legal hold operation as the CLI's principal, in one platform session."""
    with platform_session(home, user, groups) as (platform, principal):
        return platform.retaining(lambda r: op(r, principal))


def _report(as_json: bool, described: dict[str, object], *lines: str) -> None:
    """With --json the described value, otherwise the lines as plain text."""
    if as_json:
        return emit(described, as_json)
    for line in lines:
        say(line)


def _policy_row(p: RetentionPolicy) -> dict[str, object]:
    return {k: v for k, v in p.describe().items() if k not in ("years", "days")}


def _hold_row(h: Hold) -> dict[str, object]:
    return {"id": h.id, "matter": h.matter_id, "target": h.target(), "creator": h.creator,
            "created": h.created_at.isoformat(timespec="seconds"), "released_by": h.released_by or "",
            "reason": h.reason}  # fmt: skip


@retention_app.command("set")
def retention_set(
    name: Annotated[
        str, typer.Argument(help="The policy's name (letters, digits, . _ -); an existing one is replaced.")
    ],
    keep: Annotated[str, typer.Option(help="How long after publication: 7y, 90d or 1y30d.")],
    doc_type: Annotated[str, typer.Option("--doc-type", help="Documents of this type.")] = "",
    source: Annotated[str, typer.Option(help="Documents whose source starts with this.")] = "",
    sensitivity: Annotated[str, typer.Option(help="Documents of this sensitivity (e.g. restricted).")] = "",
    reason: ReasonOpt = "",
    user: UserOpt = None,
    groups: GroupsOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add or replace a retention policy (admins). Every criterion given must match."""
    change = {"id": name, "keep": keep, "doc_type": doc_type, "source": source, "sensitivity": sensitivity}
    policy = proposing(home, user, groups, as_json, lambda p, who: p.set_retention_policy(who, change, reason))
    if policy is not None:
        emit(policy.describe() if as_json else _policy_row(policy), as_json)


@retention_app.command("list")
def retention_list(user: UserOpt = None, groups: GroupsOpt = None, home: HomeOpt = None,
                   as_json: JsonOpt = False) -> None:  # fmt: skip
    """The retention policies (admins)."""
    found = _retaining(home, user, groups, lambda r, principal: r.policies(principal))
    rows = [p.describe() if as_json else _policy_row(p) for p in found]
    emit(rows, as_json, title="Retention policies", empty="no retention policies: nothing is ever deleted by age")


@retention_app.command("remove")
def retention_remove(
    name: Annotated[str, typer.Argument(help="The policy's name.")],
    reason: ReasonOpt = "",
    user: UserOpt = None,
    groups: GroupsOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove a retention policy (admins)."""
    policy = proposing(home, user, groups, as_json, lambda p, who: p.remove_retention_policy(who, name, reason))
    if policy is not None:
        _report(as_json, {"removed": policy.describe()}, f"removed retention policy {policy.id}")


@retention_app.command("apply")
def retention_apply(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be deleted; delete nothing.")] = False,
    user: UserOpt = None,
    groups: GroupsOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete every document past its retention that no legal hold covers (admins; audited)."""
    report = _retaining(home, user, groups, lambda r, principal: r.apply(principal, dry_run=dry_run))
    verb = "would delete" if dry_run else "deleted"
    held = [f"held: {doc} (matter {matter}, hold {hold})" for doc, matter, hold in report.held]
    _report(as_json, report.describe(),
            f"{verb} {len(report.deleted)} of {report.documents} documents; {len(report.held)} expired but held; "
            f"{report.kept} kept", *held)  # fmt: skip


@holds_app.command("place")
def holds_place(
    matter: Annotated[str, typer.Option(help="The legal matter's id.")],
    reason: Annotated[str, typer.Option(help="Why the matter needs these documents kept.")],
    document: Annotated[str | None, typer.Option(help="Hold one document (id, version id or file name).")] = None,
    source: Annotated[str | None, typer.Option(help="Hold every document whose source starts with this.")] = None,
    where: Annotated[
        list[str] | None,
        typer.Option(help="Hold what matches every term: doc_type=X, source=PREFIX, title=TEXT, meta.KEY=X."),
    ] = None,
    user: UserOpt = None,
    groups: GroupsOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Place a legal hold on a document, a source or a query (admins). It takes effect at once."""
    with platform_session(home, user, groups) as (platform, principal):
        doc_id = resolve_document_id(platform, principal, document) if document else ""
        hold = platform.retaining(
            lambda r: r.place(principal, matter, reason, document_id=doc_id, source=source or "", query=where)
        )
    _report(as_json, hold.describe(), f"hold {hold.id} placed for matter {hold.matter_id} on {hold.target()}")


@holds_app.command("list")
def holds_list(
    active: Annotated[bool, typer.Option("--active", help="Only holds in force.")] = False,
    user: UserOpt = None,
    groups: GroupsOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Legal holds, oldest first (admins)."""
    found = _retaining(home, user, groups, lambda r, principal: r.holds(principal, active_only=active))
    emit([h.describe() if as_json else _hold_row(h) for h in found], as_json, title="Legal holds", empty="no holds")


@holds_app.command("release")
def holds_release(
    hold_id: Annotated[str, typer.Argument(help="The hold's id (from holds list).")],
    reason: ReasonOpt = "",
    user: UserOpt = None,
    groups: GroupsOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Release a legal hold (admins); what it kept may then be deleted."""
    hold = proposing(home, user, groups, as_json, lambda p, who: p.release_hold(who, hold_id, reason))
    if hold is not None:
        _report(as_json, hold.describe(), f"hold {hold.id} (matter {hold.matter_id}) released")
