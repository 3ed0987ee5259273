"""Four-eyes approval on the command line: see, approve, reject and review proposals, and the
emergency path (break glass). Proposals are made by the changes themselves once four-eyes is
on (``STRONGROOM_FOUR_EYES=true``): ``acl set`` and ``keys create`` print the proposal's id.

    strongroom acl set note.md --acl research,credit --user ana      # proposed: a1b2...
    strongroom approvals list --user bo                               # needs the approver role
    strongroom approvals approve a1b2... --user bo
    strongroom approvals break-glass acl.set --document note.md --acl research --reason "incident 42"
    strongroom approvals review            # break-glass changes not yet reviewed
    strongroom approvals review a1b2...    # mark one reviewed (an approver, not who broke the glass)

The CLI's principal is who runs it (``--user``, ``STRONGROOM_CLI_USER``, ``$USER``) with the
roles in ``STRONGROOM_CLI_ROLES``: add ``approver`` there for the checkers' accounts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast, get_args

import typer

from strongroom.cli.common import GroupsOpt, HomeOpt, JsonOpt, UserOpt, emit, platform_session, say
from strongroom.errors import ApprovalPending, QueryError
from strongroom.service import Platform, parse_instant
from strongroom.service.admin import resolve_document_id
from strongroom.service.approvals import KINDS, Applied, Approvals
from strongroom.service.operations import Outcome
from strongroom.service.proposal_store import Proposal, Status
from strongroom.service.requests import KeyCreated, parse_groups
from strongroom.types import Principal

__all__ = ["approvals_app", "proposing", "say_proposed"]

approvals_app = typer.Typer(
    help="Four-eyes approval: changes to who sees what take effect when a second person approves them.",
    no_args_is_help=True,
)
T = TypeVar("T")
IdArg = Annotated[str, typer.Argument(help="The proposal id (from approvals list).")]


def _approving(home: Path | None, user: str | None, groups: str | None,
               op: Callable[[Approvals, Principal], Outcome[T]]) -> T:  # fmt: skip
    """Run one approvals operation as the CLI's principal, in one platform session."""
    with platform_session(home, user, groups) as (platform, principal):
        return platform.approving(lambda a: op(a, principal))


def _row(p: Proposal) -> dict[str, object]:
    return {"id": p.id, "kind": p.kind, "maker": p.maker, "status": p.status, "expires_at": p.expires_at.isoformat(),
            "break_glass": p.break_glass, "change_sha256": p.change_sha256[:12], "reason": p.reason}  # fmt: skip


def say_proposed(pending: ApprovalPending, as_json: bool) -> None:
    """What a change made while four-eyes is on prints: its proposal, not a result."""
    if as_json:
        return emit({"status": "proposed", "proposal_id": pending.proposal_id, "message": str(pending)}, as_json)
    say(str(pending))


def proposing(home: Path | None, user: str | None, groups: str | None, as_json: bool,
              change: Callable[[Platform, Principal], T], *, create: bool = False) -> T | None:  # fmt: skip
    """Make one change (never None) as the CLI's principal in one platform session; with four-eyes
    on it is proposed instead: this prints the proposal (:func:`say_proposed`) and returns None."""
    with platform_session(home, user, groups, create=create) as (platform, principal):
        try:
            return change(platform, principal)
        except ApprovalPending as pending:  # four-eyes is on: the change waits for an approver
            say_proposed(pending, as_json)
            return None


@approvals_app.command("list")
def approvals_list(
    status: Annotated[str | None, typer.Option(help="Only proposals in this status (e.g. proposed).")] = None,
    user: UserOpt = None,
    groups: GroupsOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Proposals: every one for an approver, your own otherwise (expired ones are marked so)."""
    with platform_session(home, user, groups) as (platform, principal):
        if status is not None and status not in get_args(Status):
            raise QueryError(f"--status: one of {', '.join(get_args(Status))}")
        wanted = cast(Status | None, status)
        found = platform.approving(lambda a: a.proposals(principal, status=wanted))
    emit([p.describe() if as_json else _row(p) for p in found], as_json, title="Proposals", empty="no proposals")


@approvals_app.command("show")
def approvals_show(proposal_id: IdArg, user: UserOpt = None, groups: GroupsOpt = None, home: HomeOpt = None,
                   as_json: JsonOpt = False) -> None:  # fmt: skip
    """One proposal with its exact change and hash (its maker or an approver)."""
    p = _approving(home, user, groups, lambda a, principal: a.show(principal, proposal_id))
    emit(p.describe(), as_json)


def _applied(done: Applied, as_json: bool) -> None:
    if as_json:
        return emit(done.describe(), as_json)
    p, result = done.proposal, done.result
    say(f"proposal {p.id} ({p.kind}) {p.status}; change sha256 {p.change_sha256}")
    if isinstance(result, KeyCreated):
        say(f"key {result.id} for {result.owner}; hand this secret to its owner (shown once):")
        say(result.secret)


@approvals_app.command("approve")
def approvals_approve(proposal_id: IdArg, user: UserOpt = None, groups: GroupsOpt = None, home: HomeOpt = None,
                      as_json: JsonOpt = False) -> None:  # fmt: skip
    """Approve and apply a proposal (approver role; never your own, by any key or login of yours)."""
    done = _approving(home, user, groups, lambda a, principal: a.approve(principal, proposal_id))
    _applied(done, as_json)


@approvals_app.command("reject")
def approvals_reject(
    proposal_id: IdArg,
    reason: Annotated[str, typer.Option(help="Why, for the maker and the audit log.")] = "",
    user: UserOpt = None,
    groups: GroupsOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Reject a proposal (approver role); it never takes effect."""
    p = _approving(home, user, groups, lambda a, principal: a.reject(principal, proposal_id, reason))
    emit(p.describe() if as_json else _row(p), as_json)


@approvals_app.command("break-glass")
def approvals_break_glass(
    kind: Annotated[str, typer.Argument(help=f"The change: {', '.join(sorted(KINDS))}.")],
    reason: Annotated[str, typer.Option(help="Why this cannot wait for an approver (required).")] = "",
    document: Annotated[str | None, typer.Option(help="acl.set: the document.")] = None,
    acl: Annotated[str | None, typer.Option(help="acl.set: who may read it from now on, comma-separated.")] = None,
    owner: Annotated[str | None, typer.Option(help="keys.create: who answers for the key.")] = None,
    grant: Annotated[str | None, typer.Option(help="keys.create: the key's groups, comma-separated.")] = None,
    days: Annotated[int | None, typer.Option(min=1, help="keys.create: expire after this many days.")] = None,
    expires: Annotated[str | None, typer.Option(help="keys.create: expiry, ISO date or datetime.")] = None,
    user: UserOpt = None,
    groups: GroupsOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Apply a change at once without a checker (admins; emergencies): it needs --reason, and is
    flagged for review (``approvals review``) in the proposals and the audit log."""
    with platform_session(home, user, groups) as (platform, principal):
        change: dict[str, Any]
        if kind == "acl.set":
            doc_id = resolve_document_id(platform, principal, document or "")
            change = {"document_id": doc_id, "acl": sorted(parse_groups(acl or "", "--acl"))}
        else:
            until = parse_instant(expires, "--expires", bare_date="start")
            change = {"owner": owner or "", "groups": sorted(parse_groups(grant or "", "--grant")), "days": days,
                      "expires_at": until.isoformat() if until else None}  # fmt: skip
        done = platform.approving(lambda a: a.break_glass(principal, kind, change, reason))
    _applied(done, as_json)


@approvals_app.command("review")
def approvals_review(
    proposal_id: Annotated[str | None, typer.Argument(help="Mark this break-glass change reviewed.")] = None,
    user: UserOpt = None,
    groups: GroupsOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Break-glass changes no approver has reviewed yet; with an id, mark that one reviewed."""
    if proposal_id is None:
        found = _approving(home, user, groups, lambda a, principal: a.unreviewed(principal))
        return emit([_row(p) for p in found], as_json, title="Break-glass changes to review", empty="none")
    reviewed = proposal_id
    p = _approving(home, user, groups, lambda a, principal: a.review(principal, reviewed))
    emit(p.describe() if as_json else _row(p), as_json)
