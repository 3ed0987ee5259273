"""The model registry through the application layer: register models, attach evaluations,
move stages only by approved four-eyes proposals, and answer which model was in force when.

- **Register** (admin): a ``NAME@VERSION`` of an embedder, reranker, chat deployment or
  fine-tuned model, with lineage, model card, risk tier, owner and ``binding`` (what the running
  platform calls it: a deployment's name, or the store embedder's ``model_id``). It starts as
  ``candidate``.
- **Evidence** (admin): an evaluation run of this home's audit log (``strongroom eval QA
  --record NAME@VERSION``; for a chat model ``strongroom eval-agent QUESTIONS --route R
  --record NAME@VERSION``), attached by its audit seq. The metrics and the evaluation set's
  SHA-256 are read from that audit record, never taken from the caller, so evidence cannot be
  typed in. A run narrowed by document type, metadata filter or publication date is refused
  (its scores are not comparable with production's on the same questions), and so is a run on
  a set a production version was already evaluated on (a newer, worse run would lower the bar).
  The run must have evaluated the entry (its audit record names its subject: the store's
  ``embedder``, the ``query_encoder``, the clocks and the evaluator's groups): an embedder or
  fine-tuned entry's ``binding`` is the record's ``embedder`` or ``query_encoder``. A chat
  (or fine-tuned) entry takes an end-to-end agent evaluation (``agent.eval``) whose every model
  turn was served by its ``binding``: the record names the deployments its runs'
  ``agent.run.model`` records say answered (after failover) and the turns none answered; a run
  that touched another deployment, left a turn unanswered or asked no model (``--tools-only``)
  is refused, and so is a retrieval run for a chat or reranker entry (it measures the embedder).
  A reranker takes no evidence yet. Agent runs compare on the questions' hash, their groups and
  no ``k`` (each question carries its clocks). A run recorded before runs named their subject,
  or one already attached to another entry, is refused. (Reading runs from the audit records:
  :mod:`strongroom.service.registry_evidence`.)
- **Stages** move only by a ``registry.promote`` proposal (``{"name", "version", "stage"}``)
  that another person with the approver role approves, whether or not ``four_eyes`` is on;
  there is no direct move (only break glass, by one admin with a reason: applied at once,
  still gated, flagged until an approver reviews it). The stage rules and the release gate
  (:mod:`strongroom.governance.registry`) are checked when the proposal is made and again when
  it is applied (evidence and production may have changed in between). A promotion to
  production retires the version in production before it.
- **Which** (admin, approver): the production entries in force at a time; **resolve** (admin):
  an audit record's model (its ``generator``) and the embedder in force when it was written,
  as registry entries: "what model answered this on 3 March" is one query.

Every step is an audit record (``registry.register|list|show|evidence|promote|which|resolve``).

    registry = Registry(ops, open_registry_store(settings), read_record)
    registry.register(ana, entry).result()
    approvals.propose(ana, "registry.promote", {"name": "chat", "version": "2", "stage": "validated"})
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, cast

from strongroom.audit import AuditRecord
from strongroom.errors import NotFound, PermissionDenied, QueryError, StoreError
from strongroom.governance.registry import (
    KINDS,
    NAME_PATTERN,
    RISK_TIERS,
    STAGES,
    Evidence,
    GateResult,
    ModelEntry,
    Stage,
    allowed,
    gate,
    in_force,
    parse_ref,
    retired_bindings,
)
from strongroom.llm.deployments import save_retired
from strongroom.service.clock import TimeInput, parse_instant
from strongroom.service.operations import Operations, Outcome
from strongroom.service.registry_evidence import (
    Subject,
    agent_subject,
    eval_filters,
    eval_set_sha256,
    eval_subject,
    read_run,
    record_at,
    run_subject,
    with_subjects,
)
from strongroom.service.registry_store import RegistryStore
from strongroom.types import Principal, utcnow

__all__ = [
    "PROMOTE",
    "Promotion",
    "Registry",
    "Resolution",
    "Subject",
    "agent_subject",
    "eval_filters",
    "eval_set_sha256",
    "eval_subject",
    "promote_change",
    "record_at",
    "run_subject",
]

#: the four-eyes kind that moves an entry's stage
PROMOTE = "registry.promote"
_MAX_CARD = 64_000
_MAX_FIELD = 500
_READERS = frozenset({"admin", "approver"})


@dataclass(frozen=True)
class Promotion:
    """An applied stage move: the entry after it, the refs moved (a production version retired
    by it follows the entry's own), and the gate's decision (for a move into production)."""

    entry: ModelEntry
    moved: tuple[str, ...]
    gate: GateResult | None

    def as_dict(self) -> dict[str, object]:
        return {
            "entry": self.entry.as_dict(),
            "moved": list(self.moved),
            "gate": self.gate.as_dict() if self.gate else None,
        }


@dataclass(frozen=True)
class Resolution:
    """An audit record's models as registry entries: those bound to the record's ``generator``
    and those bound to the store's embedder (each with its stage then), and the embedders in
    production then."""

    seq: int
    at: datetime
    action: str
    generator: str
    models: tuple[tuple[ModelEntry, Stage | None], ...]
    embedders: tuple[ModelEntry, ...]
    store_embedder: str
    store_embedder_entries: tuple[tuple[ModelEntry, Stage | None], ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {
            "seq": self.seq,
            "at": self.at.isoformat(),
            "action": self.action,
            "generator": self.generator,
            "models": [{"ref": e.ref, "kind": e.kind, "stage_then": s, "stage_now": e.stage} for e, s in self.models],
            "embedders": [{"ref": e.ref, "binding": e.binding} for e in self.embedders],
            "store_embedder": self.store_embedder,
            "store_embedder_entries": [
                {"ref": e.ref, "stage_then": s, "stage_now": e.stage} for e, s in self.store_embedder_entries
            ],
        }


def _text(value: object, what: str, limit: int = _MAX_FIELD) -> str:
    text = "" if value is None else str(value).strip()
    if len(text) > limit:
        raise QueryError(f"{what} is at most {limit} characters")
    if any(ord(c) < 32 and c not in "\n\t" for c in text):
        raise QueryError(f"{what} holds control characters")
    return text


class Registry:
    """Register, list, show, attach evidence, which and resolve; the stage moves'
    :meth:`check` and :meth:`apply` for four-eyes (kind :data:`PROMOTE`)."""

    def __init__(
        self,
        ops: Operations,
        store: RegistryStore,
        read_record: Callable[[int], AuditRecord | None],
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.ops = ops
        self.store = store
        self.read_record = read_record
        self.clock = clock

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _reader(principal: Principal) -> None:
        if not principal.roles & _READERS:
            raise PermissionDenied("the model registry is for the admin and approver roles; ask an administrator")

    def _entry(self, ref: str) -> ModelEntry:
        try:
            name, version = parse_ref(ref)
        except ValueError as exc:
            raise QueryError(str(exc)) from exc
        entry = self.store.get(name, version)
        if entry is None:
            raise NotFound(f"no model {ref!r} in the registry; see `strongroom registry list`")
        return entry

    def gate_for(self, entry: ModelEntry) -> GateResult:
        """The release gate for promoting ``entry`` to production now: against the version of
        its name in production, and every production entry bound to the same deployment or
        embedder (a new name on the production deployment is not a way round the gate); with
        none in production, against the one last in production (retiring it first is not either)."""
        related = [
            e
            for e in self.store.entries()
            if e.ref != entry.ref
            and (e.name == entry.name or (entry.binding and e.binding == entry.binding and e.kind == entry.kind))
        ]
        current = [e for e in related if e.stage == "production"]
        if not current:  # production retired meanwhile: the version last in production is the bar
            served = [(h.at, e.ref, e) for e in related for h in e.history if h.stage == "production"]
            current = [max(served, key=lambda t: (t[0], t[1]))[2]] if served else []
        baseline = tuple(ev for e in current for ev in self._evidence(e))
        return gate(self._evidence(entry), baseline, self.ops.settings.release_gate_tolerance)

    def _full(self, entry: ModelEntry) -> ModelEntry:
        """``entry`` with its evidence's subjects (what :meth:`show` and :meth:`entries` give)."""
        return replace(entry, evidence=self._evidence(entry))

    def _evidence(self, entry: ModelEntry) -> tuple[Evidence, ...]:
        """``entry``'s evidence with each run's subject read from its audit record."""
        return with_subjects(entry.evidence, self.read_record)

    # -- register, list, show, evidence ----------------------------------------------------

    def register(self, principal: Principal, entry: ModelEntry) -> Outcome[ModelEntry]:
        """Register ``entry`` as a candidate (admins); its stage, creator and time are set here."""

        def body() -> tuple[ModelEntry, dict[str, object]]:
            self.ops.require(principal, "admin")
            if not re.match(NAME_PATTERN, entry.name) or not re.match(NAME_PATTERN, entry.version):
                raise QueryError(f"{entry.ref!r}: name and version are letters, digits, '.', '_', '-' (at most 80)")
            if entry.kind not in KINDS:
                raise QueryError(f"kind {entry.kind!r}: one of {', '.join(KINDS)}")
            if entry.risk_tier not in RISK_TIERS:
                raise QueryError(f"risk tier {entry.risk_tier!r}: one of {', '.join(RISK_TIERS)}")
            owner = _text(entry.owner, "owner", 200)
            if not owner:
                raise QueryError("give the model an owner (--owner)")
            lineage = replace(
                entry.lineage,
                data=_text(entry.lineage.data, "lineage data"),
                code=_text(entry.lineage.code, "lineage code"),
                parent=_text(entry.lineage.parent, "lineage parent"),
            )
            new = replace(
                entry, owner=owner, lineage=lineage, binding=_text(entry.binding, "binding", 200),
                card=_text(entry.card, "the model card", _MAX_CARD), stage="candidate", created_at=self.clock(),
                created_by=principal.name, evidence=(), history=(),
            )  # fmt: skip
            self.store.add(new)
            found = self.store.get(new.name, new.version)
            assert found is not None
            card = hashlib.sha256(new.card.encode()).hexdigest()
            facts = {"kind": new.kind, "risk_tier": new.risk_tier, "binding": new.binding, "card_sha256": card}
            return found, {"filters": {**facts, "lineage": lineage.as_dict()}}

        return self.ops.run_audited(principal, "registry.register", {"target": entry.ref}, body)

    def entries(self, principal: Principal, name: str | None = None) -> Outcome[list[ModelEntry]]:
        """Every entry (of ``name``), for admins and approvers."""

        def body() -> tuple[list[ModelEntry], dict[str, object]]:
            self._reader(principal)
            found = [self._full(e) for e in self.store.entries(name)]
            return found, {"detail": f"{len(found)} entries"}

        return self.ops.run_audited(principal, "registry.list", {"target": name or ""}, body)

    def show(self, principal: Principal, ref: str) -> Outcome[ModelEntry]:
        """One entry with its evidence and stage history, for admins and approvers."""

        def body() -> tuple[ModelEntry, dict[str, object]]:
            self._reader(principal)
            return self._full(self._entry(ref)), {}

        return self.ops.run_audited(principal, "registry.show", {"target": ref}, body)

    def attach(self, principal: Principal, ref: str, audit_seq: int) -> Outcome[ModelEntry]:
        """Attach the evaluation run recorded at ``audit_seq`` to ``ref`` (admins): its metrics
        and evaluation set are read from that record, which must be a successful ``eval``."""

        def body() -> tuple[ModelEntry, dict[str, object]]:
            self.ops.require(principal, "admin")
            entry = self._entry(ref)
            record = self.read_record(audit_seq) if audit_seq > 0 else None
            fields, subject = read_run(entry, record, audit_seq)
            filters = fields["filters"]
            if any(e.audit_seq == audit_seq for e in entry.evidence):
                raise QueryError(f"evaluation {audit_seq} is attached to {ref} already")
            elsewhere = [e.ref for e in self.store.entries() if any(v.audit_seq == audit_seq for v in e.evidence)]
            if elsewhere:  # production's own run is not the candidate's
                raise QueryError(
                    f"evaluation {audit_seq} is evidence of {', '.join(elsewhere)} already; one run is evidence of "
                    f"one model: evaluate {ref} itself"
                )
            metrics = {
                str(k): float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None
                for k, v in filters["metrics"].items()
            }
            try:
                evidence = Evidence(
                    str(fields.get("target") or "evaluation"), str(filters.get("eval_sha256")), metrics,
                    self.clock(), audit_seq, **subject,
                )  # fmt: skip
            except ValueError as exc:
                raise QueryError(f"audit record {audit_seq}: {exc}") from exc
            if entry.stage == "production" and any(e.key == evidence.key for e in self._evidence(entry)):
                # the newest run counts: one admin could lower the bar every candidate is gated against
                raise QueryError(
                    f"{ref} is in production and already evaluated on {evidence.eval_set} (same questions, "
                    f"k={evidence.key[1]}): production's bar is not re-set; evaluate the candidates on it"
                )
            self.store.add_evidence(entry.name, entry.version, evidence, principal.name)
            found = self.store.get(entry.name, entry.version)
            assert found is not None
            found = self._full(found)
            facts = {"audit_seq": audit_seq, "eval_set": evidence.eval_set, "eval_sha256": evidence.eval_sha256}
            return found, {"filters": {**facts, "metrics": metrics, "embedder": evidence.embedder}}

        return self.ops.run_audited(principal, "registry.evidence", {"target": ref}, body)

    # -- stage moves: four-eyes only ---------------------------------------------------------

    def _move(self, change: Mapping[str, Any]) -> tuple[ModelEntry, Stage, GateResult | None]:
        """The entry a change moves, where to, and the gate (into production): or why not."""
        if set(change) != {"name", "version", "stage"}:
            raise QueryError('a registry.promote change is {"name", "version", "stage"}')
        stage = str(change["stage"])
        if stage not in STAGES:
            raise QueryError(f"stage {stage!r}: one of {', '.join(STAGES)}")
        entry = self._entry(f"{change['name']}@{change['version']}")
        if not allowed(entry.stage, stage):
            raise QueryError(
                f"{entry.ref} is {entry.stage}; it cannot move to {stage} (candidate -> validated -> production "
                "-> retired; a retired version is validated again first)"
            )
        result = self.gate_for(entry) if stage == "production" else None
        if result is not None and not result.accepted:
            raise PermissionDenied(f"the release gate refuses {entry.ref}: {'; '.join(result.reasons)}")
        return entry, cast(Stage, stage), result

    def _after(self, entry: ModelEntry, stage: Stage) -> list[ModelEntry]:
        """Every entry as it will be once ``entry`` moves to ``stage`` (into production: the
        production version of its name retired)."""
        out = []
        for e in self.store.entries():
            if (e.name, e.version) == (entry.name, entry.version):
                e = replace(e, stage=stage)
            elif stage == "production" and e.name == entry.name and e.stage == "production":
                e = replace(e, stage="retired")
            out.append(e)
        return out

    def _project(self, entries: Sequence[ModelEntry]) -> None:
        """Tell the gateway which deployments serve only retired models (``HOME/models/retired.json``)."""
        try:
            save_retired(self.ops.settings.home, retired_bindings(entries))
        except OSError as exc:
            raise StoreError(f"cannot write the retired deployments under {self.ops.settings.home}: {exc}") from exc

    def check(self, principal: Principal, change: Mapping[str, Any]) -> None:
        """What a proposal to move a stage must pass when it is made (the apply checks it again)."""
        self._move(change)

    def apply(self, who: Principal, change: Mapping[str, Any]) -> Outcome[Promotion]:
        """Apply an approved stage move as its maker ``who``: the rules and the gate again, then
        a compare-and-set on the stage (retiring the production version it replaces)."""
        target = f"{change.get('name')}@{change.get('version')}"

        def body() -> tuple[Promotion, dict[str, object]]:
            self.ops.require(who, "admin")
            entry, stage, result = self._move(change)
            proposal = who.key_id if who.auth == "four-eyes" else "break-glass"
            self._project(self._after(entry, stage))  # first: a move the gateway cannot follow is not made
            moved = self.store.move(
                entry.name, entry.version, entry.stage, stage, at=self.clock(), by=who.name, proposal_id=proposal
            )
            if not moved:
                self._project(self.store.entries())
                raise StoreError(f"{entry.ref} changed stage meanwhile; see `strongroom registry show {entry.ref}`")
            found = self.store.get(entry.name, entry.version)
            assert found is not None
            facts: dict[str, object] = {"from": entry.stage, "to": stage, "moved": moved}
            if result is not None:
                facts["gate"] = {"accepted": True, "compared": len(result.compared)}
            return Promotion(found, tuple(moved), result), {"filters": facts}

        return self.ops.run_audited(who, "registry.promote", {"target": target}, body)

    # -- which and resolve -----------------------------------------------------------------

    def which(self, principal: Principal, at: TimeInput = None) -> Outcome[list[ModelEntry]]:
        """The production entries in force at ``at`` (default: now; a bare date: its end)."""

        def body() -> tuple[list[ModelEntry], dict[str, object]]:
            self._reader(principal)
            when = parse_instant(at, "--at") or self.clock()
            found = in_force(self.store.entries(), when)
            return found, {"filters": {"at": when.isoformat()}, "detail": ", ".join(e.ref for e in found)[:500]}

        return self.ops.run_audited(principal, "registry.which", {}, body)

    def resolve(self, principal: Principal, seq: int) -> Outcome[Resolution]:
        """Audit record ``seq``'s model (its ``generator``) and embedder as registry entries (admins)."""

        def body() -> tuple[Resolution, dict[str, object]]:
            self.ops.require(principal, "admin")
            record = self.read_record(seq) if seq > 0 else None
            if record is None:
                raise NotFound(f"no audit record {seq}; see `strongroom audit export`")
            fields = record.event()
            when = parse_instant(record.at, "at")
            assert when is not None
            generator = str(fields.get("generator") or "")
            everything = self.store.entries()
            models = [e for e in everything if generator and e.binding == generator and e.kind != "embedder"]
            bound = tuple((e, e.stage_at(when)) for e in models)
            embedders = tuple(e for e in in_force(everything, when) if e.kind == "embedder")
            model_id = self.ops.store.model_id
            stored = tuple((e, e.stage_at(when)) for e in everything if e.kind == "embedder" and e.binding == model_id)
            action = str(fields.get("action", ""))
            found = Resolution(seq, when, action, generator, bound, embedders, model_id, stored)
            return found, {"detail": ", ".join(e.ref for e, _ in bound)[:500]}

        return self.ops.run_audited(principal, "registry.resolve", {"target": str(seq)}, body)


def promote_change(ref: str, stage: str) -> dict[str, str]:
    """The ``registry.promote`` change moving ``ref`` to ``stage`` (QueryError if ``ref`` is malformed)."""
    try:
        name, version = parse_ref(ref)
    except ValueError as exc:
        raise QueryError(str(exc)) from exc
    return {"name": name, "version": version, "stage": stage}
