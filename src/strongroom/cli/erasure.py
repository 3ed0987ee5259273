"""Erasure on the command line: erase an identifier (or a document) from every copy, prove it.

    strongroom erasure erase --identifier "Jane Quixote" --reason "DSAR 2026-114"
    strongroom erasure erase --document note.md --reason "DSAR 2026-115"
    strongroom erasure verify 5f2c... --identifier "Jane Quixote"     # exit 1 if anything is found
    strongroom erasure verify 7a9e...                                 # a document erasure: by its ids
    strongroom erasure list

The platform keeps no copy of an erased identifier, so ``verify`` is given it again (checked
against the keyed hash the erasure recorded: a wrong one is refused). ``--identifier -`` reads
it from standard input, which keeps it out of the shell's history and the process list.
Needs the admin role.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated, TypeVar

import typer

from strongroom.cli.common import GroupsOpt, HomeOpt, JsonOpt, UserOpt, emit, fail, platform_session, say
from strongroom.service.admin import resolve_document_id
from strongroom.service.erasure import Erasures, done
from strongroom.service.operations import Outcome
from strongroom.service.platform import Platform

__all__ = ["erasure_app"]

erasure_app = typer.Typer(
    help="Erasure of an identifier or a document from every copy, and its proof.", no_args_is_help=True
)
T = TypeVar("T")
IdentifierOpt = Annotated[
    str | None,
    typer.Option("--identifier", help="The identifier (a name, an account number); '-' reads it from stdin."),
]
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why (e.g. the data subject request's reference).")]


def _identifier(value: str | None) -> str:
    if value == "-":
        return sys.stdin.readline().strip()
    return value or ""


def _erasing(platform: Platform, op: Callable[[Erasures], Outcome[T]]) -> T:
    return done(platform.audit, op(Erasures(platform.ops, platform.audit)))


@erasure_app.command("erase")
def erase_cmd(
    reason: ReasonOpt,
    identifier: IdentifierOpt = None,
    document: Annotated[str | None, typer.Option("--document", help="Erase this whole document (id or name).")] = None,
    user: UserOpt = None,
    groups: GroupsOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Erase every occurrence of an identifier (or a whole document) from every store and file."""
    if (identifier is None) == (document is None):
        raise fail("give --identifier or --document, one of the two")
    secret = _identifier(identifier)
    with platform_session(home, user, groups) as (platform, principal):
        document_id = resolve_document_id(platform, principal, document) if document else ""
        report = _erasing(
            platform, lambda e: e.erase(principal, identifier=secret, document_id=document_id, reason=reason)
        )
    out = report.as_dict()
    if as_json:
        return emit(out, as_json)
    say(f"erasure {report.plan.erasure_id}: {sum(report.erased.values())} occurrence(s) erased")
    for place, n in sorted(report.erased.items()):
        if n:
            say(f"  {place}: {n}")
    if report.held:
        say(f"kept by a legal hold (not erased): {', '.join(report.held)}")
    for line in report.pending:
        say(f"not reached: {line}")
    say(f"prove it: strongroom erasure verify {report.plan.erasure_id} --identifier -")


@erasure_app.command("verify")
def verify_cmd(
    erasure_id: Annotated[str, typer.Argument(help="The erasure's id (from erasure erase or erasure list).")],
    identifier: IdentifierOpt = None,
    user: UserOpt = None,
    groups: GroupsOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Search every store and every file under the home for the erased identifier (or every
    place for a copy of the erased document); exit 1 if found."""
    secret = _identifier(identifier)  # a document erasure needs none; an identifier erasure refuses none
    with platform_session(home, user, groups) as (platform, principal):
        report = _erasing(platform, lambda e: e.verify(principal, erasure_id, secret))
    if as_json:
        emit(report.as_dict(), as_json)
    elif report.proven:
        say(f"erasure {erasure_id}: proven, 0 occurrences in {report.searched} places searched")
    else:
        say(f"erasure {erasure_id}: FOUND in {len(report.found)} place(s):")
        for place, n in sorted(report.found.items()):
            say(f"  {place}: {n}")
    if not report.proven:
        raise typer.Exit(1)


@erasure_app.command("list")
def list_cmd(user: UserOpt = None, groups: GroupsOpt = None, home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """Erasures carried out (ids, who, when, counts; never an identifier)."""
    with platform_session(home, user, groups) as (platform, principal):
        rows = _erasing(platform, lambda e: e.listed(principal))
    emit(rows, as_json, title="Erasures", empty="no erasures")
