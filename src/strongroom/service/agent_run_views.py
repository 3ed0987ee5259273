"""How a research-agent run is shown: as JSON (:func:`run_view`), as kept when it ends
(:func:`result_record`, :func:`cited_refs`), and to an owner who no longer holds every group it
ran with (:func:`shown`: its answer and evidence withheld, since they quote what was read under
those groups). Pure functions over :class:`~strongroom.service.agent_run_store.AgentRun`; who
may read a run at all is decided by :mod:`strongroom.service.agent_runs`.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

from strongroom.agent.base import RunEvent
from strongroom.agent.runner import AgentResult
from strongroom.service.agent_run_store import AgentRun
from strongroom.types import Principal

__all__ = [
    "WITHHELD",
    "cited_refs",
    "readable",
    "result_record",
    "run_view",
    "shown",
    "withheld",
    "withheld_event",
]

#: what a run's answer says to an owner who no longer holds every group it ran with
WITHHELD = "This run read documents or data under groups you no longer hold; its answer and evidence are withheld."


def result_record(result: AgentResult) -> dict[str, Any]:
    """What a run came to, as kept with the run and returned to its owner: the answer, every
    evidence item numbered from 1 (what ``[n]`` in the answer refers to), the numbers cited,
    the unsupported numbers and the run's spend."""
    return {
        "status": result.status,
        "answer": result.answer,
        "reason": result.reason,
        "limit": result.limit,
        "evidence": [
            {"n": n, "kind": e.kind, "ref": dict(e.ref), "text": e.text, "numbers": list(e.numbers)}
            for n, e in enumerate(result.evidence, start=1)
        ],
        "cited": list(result.cited),
        "unsupported": [c.text for c in result.unsupported],
        "steps": result.steps,
        "tool_calls": result.tool_calls,
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "elapsed_s": round(result.elapsed_s, 3),
        "prompt_version": result.prompt_version,
    }


_REF_KEYS = ("document_id", "version_id", "page", "start", "end", "field", "table", "datasets", "as_of", "known_at")


def cited_refs(result: AgentResult) -> list[dict[str, object]]:
    """The evidence the answer cites, by id only (document and version, page span, dataset
    versions): what the end record keeps, never the text or the SQL."""
    return [{"n": n, "kind": e.kind, **{k: e.ref[k] for k in _REF_KEYS if k in e.ref}} for n, e in result.citations]


def readable(principal: Principal, run: AgentRun) -> bool:
    """Whether ``principal`` may still read what run ``run`` read: it holds every group the run
    was created with (what it read, it read under those; a resumed run reads under fewer)."""
    return set(run.groups) <= principal.groups


def withheld(run: AgentRun) -> AgentRun:
    """``run`` without what it read: its answer and evidence withheld (status and spend kept)."""
    if run.result is None:
        return run
    kept = {k: v for k, v in run.result.items() if k not in ("answer", "evidence", "cited", "unsupported")}
    return replace(run, result={**kept, "answer": WITHHELD, "evidence": [], "cited": [], "unsupported": []})


def withheld_event(event: RunEvent) -> RunEvent:
    """``event`` without what the run read or wrote (kept: ``started``, ``resumed``)."""
    if event.kind in ("started", "resumed"):
        return event
    return replace(event, data={"withheld": True})


def shown(principal: Principal, run: AgentRun) -> AgentRun:
    """``run`` as ``principal`` (its owner) may read it now."""
    return run if readable(principal, run) else withheld(run)


def run_view(run: AgentRun) -> dict[str, Any]:
    """A run as JSON for its owner: the record, its limits and its result."""
    return {
        "run_id": run.id,
        "status": run.status,
        "question": run.question,
        "route": run.route,
        "as_of": run.as_of,
        "known_at": run.known_at,
        "limits": asdict(run.limits),
        "created_at": run.created_at.isoformat(),
        "updated_at": run.updated_at.isoformat(),
        "reason": run.reason,
        "cancel_requested": run.cancel_requested,
        "result": dict(run.result) if run.result is not None else None,
    }
