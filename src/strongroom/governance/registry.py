"""The model registry's rules, pure: what an entry is, which stage moves are allowed, and the
release gate a promotion to production must pass.

An entry (:class:`ModelEntry`) is one version of one model: an embedder, a reranker, a chat
deployment or a fine-tuned model, with its lineage (data, code, parent model), model card,
risk tier, owner, the stage it is in and the evaluations attached to it (:class:`Evidence`).

**Stages** (:data:`TRANSITIONS`)::

    candidate -> validated -> production -> retired
    candidate -> retired,  validated -> retired,  retired -> validated (re-validation)

A retired entry comes back only by a new proposal to re-validate it, and then one to promote
it, which the gate checks against the production of the day. At most one version of a name
is in production: promoting one **retires** the version in production before it (its stage
history keeps when it served, so "what was in production on 3 March" still answers).

**The gate** (:func:`gate`) refuses a promotion when, on an evaluation run of the production
version (same SHA-256 of the questions, same ``k``, same clocks ``as_of``/``known_at`` and
the same evaluator's groups: :attr:`Evidence.key`), the candidate has no such run, or any
tracked metric (:func:`tracked`: recall, hit, MRR, nDCG, accuracy,
precision, F1; higher is better) is lower than production's by more than ``tolerance``
(absolute). Each side's newest evaluation run on a set counts (by audit seq: re-attaching an
old, better run does not hide a newer, worse one). Without a production version
there is nothing to regress against, but the candidate still needs one evaluation. An evaluation
whose subject is unknown (recorded before runs named their embedder, clocks and groups:
``groups is None``) is compared with nothing; a production version evaluated only so is a bar
no candidate can be shown to meet, and the gate refuses until production is evaluated again.

    >>> prod = [Evidence("qa.jsonl", "ab" * 32, {"k": 5, "mrr": 0.8}, NOW, 7, "hash-64", groups=("r",))]
    >>> cand = [Evidence("qa.jsonl", "ab" * 32, {"k": 5, "mrr": 0.7}, NOW, 9, "st:ft", groups=("r",))]
    >>> gate(cand, prod, 0.01).accepted
    False
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, get_args

__all__ = [
    "KINDS",
    "RISK_TIERS",
    "STAGES",
    "TRANSITIONS",
    "EvalKey",
    "Evidence",
    "GateResult",
    "Kind",
    "Lineage",
    "MetricDelta",
    "ModelEntry",
    "RiskTier",
    "Stage",
    "StageChange",
    "allowed",
    "gate",
    "in_force",
    "parse_ref",
    "retired_bindings",
    "tracked",
]

Kind = Literal["embedder", "reranker", "chat", "fine-tuned"]
Stage = Literal["candidate", "validated", "production", "retired"]
RiskTier = Literal["low", "medium", "high"]
KINDS: tuple[str, ...] = get_args(Kind)
STAGES: tuple[str, ...] = get_args(Stage)
RISK_TIERS: tuple[str, ...] = get_args(RiskTier)

#: the stage moves an approved proposal may make (anything else is refused)
TRANSITIONS: Mapping[str, frozenset[str]] = {
    "candidate": frozenset({"validated", "retired"}),
    "validated": frozenset({"production", "retired"}),
    "production": frozenset({"retired"}),
    "retired": frozenset({"validated"}),
}

#: what makes two evaluation runs comparable (:attr:`Evidence.key`)
EvalKey = tuple[str, float | None, str | None, str | None, tuple[str, ...] | None]

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$"
_TRACKED = re.compile(r"(recall|hit|mrr|ndcg|accuracy|precision|f1)", re.IGNORECASE)


def parse_ref(ref: str) -> tuple[str, str]:
    """``NAME@VERSION`` as ``(name, version)``; ValueError naming the form otherwise."""
    name, at, version = ref.strip().partition("@")
    if not at or not re.match(NAME_PATTERN, name) or not re.match(NAME_PATTERN, version):
        raise ValueError(f"{ref!r} is not NAME@VERSION (letters, digits, '.', '_', '-'; at most 80 each)")
    return name, version


def tracked(metric: str) -> bool:
    """Whether the gate compares ``metric``: a quality measure where higher is better
    (``doc_recall_at_5``, ``mrr``, ``ndcg_at_10``, ``accuracy`` ...), never a count or a latency."""
    return bool(_TRACKED.search(metric)) and not metric.startswith(("n_", "search_ms"))


@dataclass(frozen=True)
class Lineage:
    """Where a model came from: the training ``data`` (a dataset, its version or hash), the
    ``code`` (a repository at a commit) and the ``parent`` model (``NAME@VERSION`` or an id)."""

    data: str = ""
    code: str = ""
    parent: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"data": self.data, "code": self.code, "parent": self.parent}


@dataclass(frozen=True)
class Evidence:
    """One evaluation attached to an entry: the evaluation set's name and the SHA-256 of its
    questions, the metrics it gave, when it was recorded and the audit seq of the run; and its
    subject as the run's audit record names it: the store's ``embedder`` (model id), the
    ``query_encoder`` ("" : the embedder itself), the clocks applied (ISO instants; None: now)
    and the evaluator's ``groups`` (sorted; None: not recorded, so comparable with nothing)."""

    eval_set: str
    eval_sha256: str
    metrics: Mapping[str, float | None]
    recorded_at: datetime
    audit_seq: int
    embedder: str = ""
    query_encoder: str = ""
    as_of: str | None = None
    known_at: str | None = None
    groups: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[0-9a-f]{64}", self.eval_sha256):
            raise ValueError("eval_sha256 is the hex SHA-256 of the evaluation set")
        for name, value in self.metrics.items():
            if value is not None and not math.isfinite(value):
                raise ValueError(f"metric {name} is not a finite number")

    @property
    def key(self) -> EvalKey:
        """What makes two evaluations comparable: the same questions at the same ``k``, under
        the same clocks, by an evaluator with the same groups (who sees the same documents)."""
        return self.eval_sha256, self.metrics.get("k"), self.as_of, self.known_at, self.groups

    def as_dict(self) -> dict[str, object]:
        return {
            "eval_set": self.eval_set,
            "eval_sha256": self.eval_sha256,
            "metrics": dict(self.metrics),
            "recorded_at": self.recorded_at.isoformat(),
            "audit_seq": self.audit_seq,
            "embedder": self.embedder,
            "query_encoder": self.query_encoder,
            "as_of": self.as_of,
            "known_at": self.known_at,
            "groups": None if self.groups is None else list(self.groups),
        }


@dataclass(frozen=True)
class StageChange:
    """An entry entering ``stage`` at ``at``, by proposal ``proposal_id`` (or registration)."""

    stage: Stage
    at: datetime
    by: str
    proposal_id: str = ""

    def as_dict(self) -> dict[str, object]:
        return {"stage": self.stage, "at": self.at.isoformat(), "by": self.by, "proposal_id": self.proposal_id}


@dataclass(frozen=True)
class ModelEntry:
    """One version of one model in the registry.

    ``binding``: what the running platform calls it, so audit records resolve to the entry:
    a deployment's name (chat, reranker, fine-tuned) or the store's embedder ``model_id``."""

    name: str
    version: str
    kind: Kind
    owner: str
    risk_tier: RiskTier
    binding: str = ""
    lineage: Lineage = field(default_factory=Lineage)
    card: str = ""
    stage: Stage = "candidate"
    created_at: datetime | None = None
    created_by: str = ""
    evidence: tuple[Evidence, ...] = ()
    history: tuple[StageChange, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def stage_at(self, when: datetime) -> Stage | None:
        """The stage this entry was in at ``when`` (None: not registered yet)."""
        current: Stage | None = None
        for change in sorted(self.history, key=lambda c: c.at):
            if change.at > when:
                break
            current = change.stage
        return current

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.version,
            "ref": self.ref,
            "kind": self.kind,
            "owner": self.owner,
            "risk_tier": self.risk_tier,
            "binding": self.binding,
            "lineage": self.lineage.as_dict(),
            "card": self.card,
            "stage": self.stage,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "created_by": self.created_by,
            "evidence": [e.as_dict() for e in self.evidence],
            "history": [h.as_dict() for h in self.history],
        }


def allowed(before: str, after: str) -> bool:
    """Whether an entry may move from stage ``before`` to ``after``."""
    return after in TRANSITIONS.get(before, frozenset())


def retired_bindings(entries: Iterable[ModelEntry]) -> frozenset[str]:
    """The deployments the gateway must leave out: those bound to a retired model and to no
    model that is validated or in production (a new candidate bound to one does not bring it
    back; validating it, by an approved proposal, does). Embedders are not deployments."""
    retired: set[str] = set()
    live: set[str] = set()
    for e in entries:
        if e.kind == "embedder" or not e.binding:
            continue
        if e.stage == "retired":
            retired.add(e.binding)
        elif e.stage in ("validated", "production"):
            live.add(e.binding)
    return frozenset(retired - live)


def in_force(entries: Iterable[ModelEntry], when: datetime) -> list[ModelEntry]:
    """The entries that were in production at ``when``, by name."""
    return sorted((e for e in entries if e.stage_at(when) == "production"), key=lambda e: (e.name, e.version))


@dataclass(frozen=True)
class MetricDelta:
    """One tracked metric on one evaluation set: production's value, the candidate's, and whether
    the candidate regressed beyond the tolerance (or has no value where production has one)."""

    eval_set: str
    eval_sha256: str
    metric: str
    production: float
    candidate: float | None
    regressed: bool

    def as_dict(self) -> dict[str, object]:
        return {
            "eval_set": self.eval_set,
            "eval_sha256": self.eval_sha256,
            "metric": self.metric,
            "production": self.production,
            "candidate": self.candidate,
            "regressed": self.regressed,
        }


@dataclass(frozen=True)
class GateResult:
    """The release gate's decision, the reasons for a refusal and every comparison made."""

    accepted: bool
    reasons: tuple[str, ...] = ()
    compared: tuple[MetricDelta, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {
            "accepted": self.accepted,
            "reasons": list(self.reasons),
            "compared": [d.as_dict() for d in self.compared],
        }


def _newest(evidence: Iterable[Evidence]) -> dict[EvalKey, Evidence]:
    out: dict[EvalKey, Evidence] = {}
    for e in sorted(evidence, key=lambda e: (e.audit_seq, e.recorded_at)):  # the latest run, not attachment
        if e.groups is not None:  # a run without its subject is comparable with nothing
            out[e.key] = e
    return out


def _describe(key: EvalKey) -> str:
    _, k, as_of, known_at, groups = key
    return f"k={k}, as_of={as_of or 'now'}, known_at={known_at or 'now'}, groups={','.join(groups or ())}"


def gate(candidate: Sequence[Evidence], production: Sequence[Evidence], tolerance: float) -> GateResult:
    """Whether a candidate with evaluations ``candidate`` may replace a production version with
    ``production`` (none: no version in production): refused when it was not evaluated at all,
    not evaluated as one of production's runs was (:attr:`Evidence.key`: the same questions,
    ``k``, clocks and groups), or any tracked metric there is more than ``tolerance`` (absolute)
    below production's. Runs without a recorded subject count on neither side."""
    if not math.isfinite(tolerance) or tolerance < 0:
        raise ValueError("the release gate's tolerance is a number >= 0")
    if not candidate:
        return GateResult(
            False,
            (
                "the candidate has no evaluation attached: run `strongroom eval QA --record` (a chat model: "
                "`strongroom eval-agent QUESTIONS --route R --record`)",
            ),
        )
    mine, theirs = _newest(candidate), _newest(production)
    if production and not theirs:
        return GateResult(
            False,
            (
                "production's evaluations do not name their subject (embedder, clocks, groups): evaluate the "
                "production version again (`strongroom eval QA --record`) so the candidate has a bar to meet",
            ),
        )
    reasons: list[str] = []
    compared: list[MetricDelta] = []
    for key, base in sorted(theirs.items(), key=lambda kv: repr(kv[0])):
        ours = mine.get(key)
        if ours is None:
            reasons.append(
                f"no evaluation on production's set {base.eval_set} (sha256 {base.eval_sha256[:12]}, "
                f"{_describe(key)}); evaluate the candidate on it under the same clocks and groups"
            )
            continue
        for metric, value in sorted(base.metrics.items()):
            if value is None or not tracked(metric):
                continue
            got = ours.metrics.get(metric)
            worse = got is None or got < value - tolerance
            compared.append(MetricDelta(base.eval_set, base.eval_sha256, metric, value, got, worse))
            if worse:
                reasons.append(
                    f"{metric} on {base.eval_set} regressed: {got} against production's {value} (tolerance {tolerance})"
                )
    return GateResult(not reasons, tuple(reasons), tuple(compared))
