"""The model registry on the command line: register models, attach evaluations, propose stage
moves (another person approves them with ``strongroom approvals approve``), and ask which
model was in production when, or which answered a recorded question.

    strongroom registry register chat@2 --kind chat --owner model-risk --risk-tier high \\
        --binding vllm-a --parent llama-3.1-8b --data sec10q@v3 --code git:abc123 --card card.md
    strongroom eval qa.jsonl --record chat@2            # the evaluation, attached as evidence
    strongroom registry promote chat@2 --to validated --reason "MRM review 2026-14"
    strongroom approvals approve PROPOSAL --user bo      # a second person, with the approver role
    strongroom registry which --at 2026-03-03 --json
    strongroom registry resolve 4711 --json              # the models behind audit record 4711

Stages move only by approved proposals (or a flagged break glass), whether or not four-eyes is
on; a promotion to production passes the release gate (``STRONGROOM_RELEASE_GATE_TOLERANCE``)
when proposed and again when approved.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar, cast

import typer

from strongroom.cli.common import GroupsOpt, HomeOpt, JsonOpt, UserOpt, emit, platform_session, say
from strongroom.errors import QueryError
from strongroom.governance.registry import KINDS, RISK_TIERS, STAGES, Kind, Lineage, ModelEntry, RiskTier, parse_ref
from strongroom.service.operations import Outcome
from strongroom.service.registry import PROMOTE, Registry, promote_change
from strongroom.types import Principal

__all__ = ["registry_app"]

registry_app = typer.Typer(
    help="Model registry: versions, lineage, evidence; stages move only by approved proposals.",
    no_args_is_help=True,
)
T = TypeVar("T")
RefArg = Annotated[str, typer.Argument(help="The model as NAME@VERSION.")]


def _registering(home: Path | None, user: str | None, groups: str | None,
                 op: Callable[[Registry, Principal], Outcome[T]]) -> T:  # fmt: skip
    with platform_session(home, user, groups) as (platform, principal):
        return platform.registering(lambda r: op(r, principal))


def _row(e: ModelEntry) -> dict[str, object]:
    return {"ref": e.ref, "kind": e.kind, "stage": e.stage, "risk_tier": e.risk_tier, "owner": e.owner,
            "binding": e.binding, "evidence": len(e.evidence)}  # fmt: skip


@registry_app.command("register")
def register_cmd(
    ref: RefArg,
    kind: Annotated[str, typer.Option(help=f"One of {', '.join(KINDS)}.")],
    owner: Annotated[str, typer.Option(help="Who answers for the model (a person or team).")],
    risk_tier: Annotated[str, typer.Option(help=f"One of {', '.join(RISK_TIERS)}.")],
    binding: Annotated[
        str, typer.Option(help="What the platform calls it: a deployment's name, or the store embedder's model id.")
    ] = "",
    data: Annotated[str, typer.Option(help="Lineage: the training data (dataset, version or hash).")] = "",
    code: Annotated[str, typer.Option(help="Lineage: the code (repository at a commit).")] = "",
    parent: Annotated[str, typer.Option(help="Lineage: the parent model (NAME@VERSION or an id).")] = "",
    card: Annotated[Path | None, typer.Option(help="The model card: a text or Markdown file.")] = None,
    user: UserOpt = None,
    groups: GroupsOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a model version as a candidate (admins)."""
    with platform_session(home, user, groups, create=True) as (platform, principal):
        try:
            name, version = parse_ref(ref)
        except ValueError as exc:
            raise QueryError(str(exc)) from exc
        try:
            text = card.read_text(encoding="utf-8") if card is not None else ""
        except (OSError, UnicodeDecodeError) as exc:
            raise QueryError(f"--card {card}: cannot read it as text ({exc})") from exc
        entry = ModelEntry(
            name, version, cast(Kind, kind), owner, cast(RiskTier, risk_tier), binding, Lineage(data, code, parent),
            text,
        )  # fmt: skip
        found = platform.registering(lambda r: r.register(principal, entry))
    emit(found.as_dict() if as_json else _row(found), as_json, title=f"registered {found.ref}")


@registry_app.command("list")
def list_cmd(
    name: Annotated[str | None, typer.Option(help="Only versions of this model.")] = None,
    user: UserOpt = None,
    groups: GroupsOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every registered model version (admins and approvers)."""
    found = _registering(home, user, groups, lambda r, p: r.entries(p, name))
    emit([e.as_dict() if as_json else _row(e) for e in found], as_json, title="Model registry", empty="no models")


@registry_app.command("show")
def show_cmd(ref: RefArg, user: UserOpt = None, groups: GroupsOpt = None, home: HomeOpt = None,
             as_json: JsonOpt = False) -> None:  # fmt: skip
    """One model version: lineage, card, evidence and stage history."""
    found = _registering(home, user, groups, lambda r, p: r.show(p, ref))
    if as_json:
        return emit(found.as_dict(), as_json)
    emit({**_row(found), "lineage": found.lineage.as_dict(), "created": f"{found.created_at} by {found.created_by}"},
         as_json, title=found.ref)  # fmt: skip
    emit([{"eval_set": e.eval_set, "sha256": e.eval_sha256[:12], "audit_seq": e.audit_seq,
           **{k: v for k, v in e.metrics.items() if v is not None}} for e in found.evidence],
         as_json, title="evidence", empty="no evaluations attached")  # fmt: skip
    emit([h.as_dict() for h in found.history], as_json, title="stages")
    if found.card:
        say(found.card)


@registry_app.command("evidence")
def evidence_cmd(
    ref: RefArg,
    seq: Annotated[int, typer.Option("--seq", help="The audit seq of a `strongroom eval` run.")],
    user: UserOpt = None,
    groups: GroupsOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Attach an evaluation run (by its audit seq) as evidence (admins); `eval --record` does it in one step."""
    found = _registering(home, user, groups, lambda r, p: r.attach(p, ref, seq))
    emit(found.as_dict() if as_json else _row(found), as_json, title=f"{found.ref}: evaluation {seq} attached")


@registry_app.command("promote")
def promote_cmd(
    ref: RefArg,
    to: Annotated[str, typer.Option("--to", help=f"The stage: one of {', '.join(STAGES)}.")],
    reason: Annotated[str, typer.Option(help="Why (the approver reads it).")] = "",
    user: UserOpt = None,
    groups: GroupsOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Propose a stage move (admins); it takes effect when another person with the approver role
    approves it (`strongroom approvals approve ID`). Into production: the release gate first."""
    with platform_session(home, user, groups) as (platform, principal):
        change = promote_change(ref, to)
        p = platform.approving(lambda a: a.propose(principal, PROMOTE, change, reason))
    if as_json:
        return emit({"status": "proposed", "proposal": p.describe()}, as_json)
    say(f"proposed {ref} -> {to}: proposal {p.id}; another approver runs `strongroom approvals approve {p.id}` "
        f"before {p.expires_at.isoformat()}")  # fmt: skip


@registry_app.command("which")
def which_cmd(
    at: Annotated[str | None, typer.Option("--at", help="DATE (its end, UTC) or ISO datetime; default: now.")] = None,
    user: UserOpt = None,
    groups: GroupsOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The model versions in production at a time."""
    found = _registering(home, user, groups, lambda r, p: r.which(p, at))
    emit([e.as_dict() if as_json else _row(e) for e in found], as_json, title=f"in production at {at or 'now'}",
         empty="none in production then")  # fmt: skip


@registry_app.command("resolve")
def resolve_cmd(
    seq: Annotated[int, typer.Argument(help="The audit seq of an answer (ask, chat, agent run).")],
    user: UserOpt = None,
    groups: GroupsOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The registered models behind an audit record: its generator, and the embedder in production then (admins)."""
    found = _registering(home, user, groups, lambda r, p: r.resolve(p, seq))
    emit(found.as_dict(), as_json, title=f"audit record {seq}")
