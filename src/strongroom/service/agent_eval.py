"""Evaluating the research agent on a question set (``strongroom eval-agent QUESTIONS``).

Two measures, over the questions of :mod:`strongroom.data.questions` (the synthetic set's
``questions.jsonl``, loaded with :func:`~strongroom.service.synthetic_load.load_synthetic_set`):

- **Tool-level** (deterministic): each question's gold plan through the real toolbox of its
  principal at its ``as_of``/``known_at``: step by step, ``box.call(step.tool, bind(step.arguments,
  outputs))``, a refused step recorded as refused; then
  :func:`~strongroom.data.questions.check_plan`. The target is 1.0: the tools must return the
  gold numbers, or a plan's step be refused where the question says it must.
- **End-to-end** (with a model route): the agent answers each question as its principal
  (a durable run of :class:`~strongroom.service.agent_local.LocalAgentRuns`: the gateway for
  the route, the same toolbox), and the answer is scored by
  :func:`~strongroom.agent.scoring.score_answer` (the gold values in its text, no restricted
  text, a refusal where one is expected, every number supported by the evidence it cites),
  with its steps, tool calls, tokens and latency.

**Who may run it.** An evaluation acts as each question's principal (``eval:<name>`` with the
question's groups and the ``reader`` role), so its operator needs the ``admin`` role and every
group the questions use: an evaluation reads nothing its operator could not. Each tool call and
run is audited as usual under the question's principal, and the evaluation itself as one
``agent.eval`` record of the operator (counts and accuracy, never answers).

**Evidence for the model registry.** An end-to-end run's ``agent.eval`` record also keeps what
:mod:`strongroom.service.registry` attaches as a chat model's evidence: ``eval_sha256`` (the
SHA-256 of the questions, canonical JSON), ``metrics`` (numbers only: ``accuracy``,
``tool_level_accuracy``, passed, total, mean steps and tool calls, tokens, p95 latency) and its
``subject``: the route, the ``deployments`` that served the runs' model turns (read from the
runs' ``agent.run.model`` records, so after failover), the turns no deployment answered
(``unserved_turns``), the clocks (``as_of``/``known_at`` None: each question carries its own,
hashed with it) and the ``groups`` the questions ask as. A ``--tools-only`` run (or one without
a route) asks no model and names no subject: it is no chat model's evidence.

    report = evaluate(platform, admin, read_questions(Path("set/questions.jsonl")), route="research")
    report.summary()["tool_level"]["accuracy"], report.summary()["end_to_end"]["latency_s"]["p95"]
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from strongroom.agent.scoring import score_answer
from strongroom.audit import AuditLog
from strongroom.data.questions import Question, bind, check_plan
from strongroom.errors import NotFound, PermissionDenied, QueryError, StrongroomError, WriteDenied
from strongroom.llm.route_config import RouteStore
from strongroom.service.agent_execution import MODEL_ACTION
from strongroom.service.agent_local import LocalAgentRuns
from strongroom.service.agent_runs import AgentRunRequest
from strongroom.service.agent_tools import toolbox_for
from strongroom.service.operations import Outcome
from strongroom.service.platform import Platform, route_usable
from strongroom.service.registry import eval_set_sha256
from strongroom.types import Principal

__all__ = [
    "EVAL_ACTION",
    "AgentOutcome",
    "EvalReport",
    "PlanOutcome",
    "eval_principal",
    "evaluate",
    "evaluate_agent",
    "evaluate_plans",
    "run_plan",
]

#: the audit action of one evaluation
EVAL_ACTION = "agent.eval"
#: what a step may fail with and still count as refused (a dataset the principal may not read
#: is unknown to it: the SQL checker's QueryError)
_REFUSALS = (NotFound, PermissionDenied, WriteDenied, QueryError)


@dataclass(frozen=True)
class PlanOutcome:
    """One question's gold plan through the tools: ``problems`` empty when it returned the
    gold; ``refused``: the steps (1-based) that were refused; ``errors``: each failed step's
    message."""

    id: str
    kind: str
    needs: str
    problems: tuple[str, ...]
    refused: tuple[int, ...] = ()
    errors: tuple[str, ...] = ()
    elapsed_ms: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class AgentOutcome:
    """One question answered by the agent: how the run ended, its answer, what it cost, and
    ``problems`` (empty: it passed). ``elapsed_s``: the run's wall time as its caller saw it."""

    id: str
    kind: str
    needs: str
    problems: tuple[str, ...]
    status: str
    answer: str = ""
    run_id: str = ""
    steps: int = 0
    tool_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    elapsed_s: float = 0.0
    deployments: tuple[str, ...] = ()
    unserved_turns: int = 0

    @property
    def passed(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class EvalReport:
    """An evaluation: the tool-level outcomes, the end-to-end ones (None: not run, ``note``
    says why), the route that answered and the seq of its ``agent.eval`` audit record."""

    questions: int
    tool_level: tuple[PlanOutcome, ...]
    end_to_end: tuple[AgentOutcome, ...] | None = None
    route: str | None = None
    note: str = ""
    elapsed_s: dict[str, float] = field(default_factory=dict)
    audit_seq: int = 0

    def summary(self) -> dict[str, Any]:
        """Accuracy overall and per kind, every failure with its reason, and for end-to-end
        the steps, tool calls, tokens and latency (mean, p50, p95) and each question's figures."""
        out: dict[str, Any] = {"questions": self.questions, "route": self.route, "note": self.note}
        out["audit_seq"] = self.audit_seq
        out["tool_level"] = {**_accuracy(self.tool_level), "elapsed_s": self.elapsed_s.get("tool_level", 0.0)}
        if self.end_to_end is None:
            out["end_to_end"] = None
            return out
        runs = self.end_to_end
        out["end_to_end"] = {
            **_accuracy(runs),
            "elapsed_s": self.elapsed_s.get("end_to_end", 0.0),
            "steps": _spread([r.steps for r in runs]),
            "tool_calls": _spread([r.tool_calls for r in runs]),
            "prompt_tokens": _spread([r.prompt_tokens for r in runs]),
            "completion_tokens": _spread([r.completion_tokens for r in runs]),
            "latency_s": _spread([r.elapsed_s for r in runs]),
            "deployments": sorted({d for r in runs for d in r.deployments}),
            "unserved_turns": sum(r.unserved_turns for r in runs),
            "per_question": [_run_record(r) for r in runs],
        }
        return out


def _run_record(r: AgentOutcome) -> dict[str, Any]:
    return {
        "id": r.id,
        "kind": r.kind,
        "passed": r.passed,
        "status": r.status,
        "steps": r.steps,
        "tool_calls": r.tool_calls,
        "prompt_tokens": r.prompt_tokens,
        "completion_tokens": r.completion_tokens,
        "latency_s": round(r.elapsed_s, 3),
        "run_id": r.run_id,
        "deployments": list(r.deployments),
    }


def _accuracy(outcomes: Sequence[PlanOutcome | AgentOutcome]) -> dict[str, Any]:
    kinds: dict[str, list[bool]] = {}
    for o in outcomes:
        kinds.setdefault(o.kind, []).append(o.passed)
    passed = sum(o.passed for o in outcomes)
    by_kind = {k: {"passed": sum(v), "total": len(v), "accuracy": round(sum(v) / len(v), 4)} for k, v in kinds.items()}
    return {
        "passed": passed,
        "total": len(outcomes),
        "accuracy": round(passed / len(outcomes), 4) if outcomes else 0.0,
        "by_kind": by_kind,
        "failures": [{"id": o.id, "kind": o.kind, "problems": list(o.problems)} for o in outcomes if not o.passed],
    }


def _rank(ordered: Sequence[float], share: float) -> float:
    """The nearest-rank percentile of sorted ``ordered``."""
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _spread(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"total": 0, "mean": 0.0, "p50": 0.0, "p95": 0.0, "max": 0.0}
    ordered = sorted(values)
    return {
        "total": round(sum(values), 3),
        "mean": round(sum(values) / len(values), 3),
        "p50": round(_rank(ordered, 0.5), 3),
        "p95": round(_rank(ordered, 0.95), 3),
        "max": round(ordered[-1], 3),
    }


def eval_principal(question: Question) -> Principal:
    """Who asks ``question`` in an evaluation: ``eval:<principal>`` with its groups, a reader."""
    return Principal(f"eval:{question.principal}", frozenset(question.groups), frozenset({"reader"}), auth="eval")


def _admit(platform: Platform, operator: Principal, questions: Sequence[Question]) -> None:
    """Refuse (and audit the refusal of) an operator who may not run ``questions``."""
    try:
        _check_operator(operator, questions)
    except PermissionDenied as exc:
        platform._done(platform.ops.refused(operator, EVAL_ACTION, exc, filters={"questions": len(questions)}))


def _check_operator(operator: Principal, questions: Sequence[Question]) -> None:
    if "admin" not in operator.roles:
        raise PermissionDenied("an evaluation acts as each question's principal: it needs the admin role")
    wanted = frozenset(g for q in questions for g in q.groups)
    missing = sorted(wanted - operator.groups)
    if missing:
        raise PermissionDenied(
            f"the questions ask as members of {', '.join(sorted(wanted))}, and you are not in "
            f"{', '.join(missing)}: an evaluation reads nothing its operator may not "
            f"(--groups {','.join(sorted(wanted))})"
        )


# -- tool-level -----------------------------------------------------------------------------


def run_plan(platform: Platform, question: Question) -> PlanOutcome:
    """``question``'s gold plan through the toolbox of its principal at its clocks, checked."""
    started = time.perf_counter()
    box = toolbox_for(
        platform,
        eval_principal(question),
        as_of=question.as_of,
        known_at=question.known_at,
        run_id=f"eval-{question.id}",
    )
    outputs: list[object] = []
    refused: list[bool] = []
    errors: list[str] = []
    for k, step in enumerate(question.plan, start=1):
        try:
            arguments = bind(step.arguments, outputs)
        except QueryError as exc:  # it refers to a step that failed: this one cannot run
            outputs.append(None)
            refused.append(False)
            errors.append(f"step {k}: {exc}")
            continue
        try:
            outputs.append(dict(box.call(step.tool, arguments).content))
            refused.append(False)
        except _REFUSALS as exc:
            outputs.append(None)
            refused.append(True)
            if step.expect != "refused":
                errors.append(f"step {k} ({step.tool}) refused: {exc}")
        except StrongroomError as exc:
            outputs.append(None)
            refused.append(False)
            errors.append(f"step {k} ({step.tool}) failed: {type(exc).__name__}: {exc}")
    problems = check_plan(question, outputs, refused)
    if problems and errors:
        problems = [*errors, *problems]
    return PlanOutcome(
        question.id,
        question.kind,
        question.needs,
        tuple(p[:500] for p in problems),
        tuple(k for k, r in enumerate(refused, start=1) if r),
        tuple(e[:500] for e in errors),
        (time.perf_counter() - started) * 1000,
    )


def evaluate_plans(
    platform: Platform,
    operator: Principal,
    questions: Sequence[Question],
    *,
    on_result: Callable[[int, PlanOutcome], None] | None = None,
) -> list[PlanOutcome]:
    """Every question's gold plan through the real tools (see the module); ``on_result`` sees
    each outcome with its index as it is done."""
    _admit(platform, operator, questions)
    out = []
    for i, q in enumerate(questions):
        outcome = run_plan(platform, q)
        out.append(outcome)
        if on_result is not None:
            on_result(i, outcome)
    return out


# -- end-to-end -----------------------------------------------------------------------------


def _check_route(platform: Platform, route: str, questions: Sequence[Question]) -> None:
    routes = RouteStore(platform.settings.home)
    for who in {eval_principal(q) for q in questions}:
        if not route_usable(platform.settings, routes, who, route):
            raise NotFound(
                f"model route {route!r} is not configured, or not granted to {who.name} "
                f"({', '.join(sorted(who.groups))}): see `strongroom models` and STRONGROOM_ROUTE_GROUPS"
            )


def evaluate_agent(
    platform: Platform,
    operator: Principal,
    questions: Sequence[Question],
    route: str,
    *,
    max_steps: int = 12,
    max_tool_calls: int = 16,
    timeout_s: float = 300.0,
    on_result: Callable[[int, AgentOutcome], None] | None = None,
) -> list[AgentOutcome]:
    """The agent answers every question through ``route``, one run at a time, as the
    question's principal at its clocks; each answer scored (see the module)."""
    _admit(platform, operator, questions)
    _check_route(platform, route, questions)
    out = []
    after = platform.audit.head().seq
    with LocalAgentRuns(platform) as agent:
        for i, q in enumerate(questions):
            request = AgentRunRequest(
                q.question, route, as_of=q.as_of, known_at=q.known_at,
                max_steps=max_steps, max_tool_calls=max_tool_calls, timeout_s=timeout_s,
            )  # fmt: skip
            started = time.perf_counter()
            try:
                run = agent.ask(eval_principal(q), request)
            except StrongroomError as exc:
                why = f"the run could not start: {type(exc).__name__}: {exc}"
                outcome = AgentOutcome(q.id, q.kind, q.needs, (why[:500],), "error")
            else:
                outcome = _scored(q, run.id, run.status, dict(run.result or {}), time.perf_counter() - started)
                served, unserved, after = _served(platform.audit, run.id, after)
                outcome = replace(outcome, deployments=served, unserved_turns=unserved)
            out.append(outcome)
            if on_result is not None:
                on_result(i, outcome)
    return out


def _served(log: AuditLog, run_id: str, after: int) -> tuple[tuple[str, ...], int, int]:
    """The deployments that served run ``run_id``'s model turns (its ``agent.run.model``
    records after seq ``after``: the deployment that answered, after any failover), how many
    turns none answered, and the newest seq read."""
    served: set[str] = set()
    unserved = 0
    for record in log.read(after):
        after = record.seq
        fields = record.event()
        if fields.get("action") != MODEL_ACTION or fields.get("target") != run_id:
            continue
        filters = fields.get("filters")
        deployment = filters.get("deployment") if isinstance(filters, dict) else None
        if fields.get("outcome") == "ok" and isinstance(deployment, str) and deployment:
            served.add(deployment)
        else:
            unserved += 1
    return tuple(sorted(served)), unserved, after


def _evidence(questions: Sequence[Question], route: str, summary: dict[str, Any]) -> dict[str, object]:
    """What an end-to-end run's record keeps for the model registry (see the module)."""
    agent, tools = summary["end_to_end"], summary["tool_level"]
    metrics = {
        "accuracy": agent["accuracy"],
        "tool_level_accuracy": tools["accuracy"],
        "passed": agent["passed"],
        "total": agent["total"],
        "steps_mean": agent["steps"]["mean"],
        "tool_calls_mean": agent["tool_calls"]["mean"],
        "prompt_tokens": agent["prompt_tokens"]["total"],
        "completion_tokens": agent["completion_tokens"]["total"],
        "latency_p95_s": agent["latency_s"]["p95"],
    }
    subject = {
        "route": route,
        "deployments": agent["deployments"],
        "unserved_turns": agent["unserved_turns"],
        "as_of": None,
        "known_at": None,
        "groups": sorted({g for q in questions for g in q.groups}),
    }
    return {"eval_sha256": eval_set_sha256([q.record() for q in questions]), "metrics": metrics, "subject": subject}


def _scored(q: Question, run_id: str, status: str, result: dict[str, Any], wall_s: float) -> AgentOutcome:
    answer = str(result.get("answer", ""))
    unsupported = [str(n) for n in result.get("unsupported", [])]
    problems = score_answer(q, answer, status=status, unsupported=unsupported, reason=str(result.get("reason", "")))
    return AgentOutcome(
        q.id,
        q.kind,
        q.needs,
        tuple(p[:500] for p in problems),
        status,
        answer,
        run_id,
        int(result.get("steps", 0)),
        int(result.get("tool_calls", 0)),
        int(result.get("prompt_tokens", 0)),
        int(result.get("completion_tokens", 0)),
        wall_s,
    )


# -- both -----------------------------------------------------------------------------------


def evaluate(
    platform: Platform,
    operator: Principal,
    questions: Sequence[Question],
    *,
    route: str | None = None,
    tools_only: bool = False,
    on_plan: Callable[[int, PlanOutcome], None] | None = None,
    on_run: Callable[[int, AgentOutcome], None] | None = None,
) -> EvalReport:
    """Tool-level accuracy, then (with ``route`` and not ``tools_only``) end-to-end; one
    ``agent.eval`` audit record of ``operator`` with the figures."""
    if not questions:
        raise QueryError("the question file holds no questions")
    _admit(platform, operator, questions)
    started = time.perf_counter()
    plans = evaluate_plans(platform, operator, questions, on_result=on_plan)
    took = {"tool_level": round(time.perf_counter() - started, 3)}
    runs: list[AgentOutcome] | None = None
    if route and not tools_only:
        started = time.perf_counter()
        runs = evaluate_agent(platform, operator, questions, route, on_result=on_run)
        took["end_to_end"] = round(time.perf_counter() - started, 3)
        note = f"end-to-end through model route {route!r}"
    elif route:
        note = "--tools-only: tool-level accuracy only (the gold plans through the tools; no model asked)"
    else:
        note = "no model route given (--route): tool-level accuracy only (the gold plans through the tools)"
    report = EvalReport(len(questions), tuple(plans), None if runs is None else tuple(runs), route, note, took)
    summary = report.summary()
    filters: dict[str, object] = {
        "questions": len(questions),
        "tool_level": {k: summary["tool_level"][k] for k in ("passed", "total", "accuracy")},
        "route": route or "",
    }
    if summary["end_to_end"] is not None and route:
        filters["end_to_end"] = {k: summary["end_to_end"][k] for k in ("passed", "total", "accuracy")}
        filters.update(_evidence(questions, route, summary))
    else:
        filters["tools_only"] = True  # no model asked: no chat model's evidence
    record = platform.ops.record(operator, EVAL_ACTION, target=route or "", filters=filters, detail=note)
    _, seqs = platform._committed(Outcome(None, None, (record,)))
    return replace(report, audit_seq=seqs[0] if seqs else 0)
