"""The research agent's state and its next-step decisions: plain data and pure functions.

:class:`RunState` is what the checkpointer keeps (dicts, lists, str, numbers: no
dataclasses), so a run can resume in another process. :func:`stop_reason` says whether a run
must end before its next node (cancelled, or a limit of :class:`AgentLimits` reached), and the
``route_after_*`` functions pick the next node from the state alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

from langgraph.graph import END

from strongroom.agent.base import AgentLimits
from strongroom.agent.citations import CitationReport
from strongroom.agent.prompt import PROMPT_VERSION, opening
from strongroom.llm.types import ToolCall

__all__ = [
    "RunState",
    "Stop",
    "draft",
    "initial_state",
    "report_dict",
    "route_after_finish",
    "route_after_model",
    "route_after_tools",
    "stop_reason",
    "unique_calls",
]


class RunState(TypedDict, total=False):
    """A run as the checkpointer keeps it: plain data only.

    ``messages`` and ``evidence`` are dicts (:func:`~strongroom.agent.prompt.message_dict`,
    :func:`~strongroom.agent.prompt.evidence_dict`); ``pending``: the calls of the last model
    turn not yet run; ``status``: "" while running, then ``answered``, ``limit``,
    ``cancelled`` or ``error``; ``report``: the citation check of ``answer``.
    """

    run_id: str
    question: str
    user: str | None
    prompt_version: str
    messages: list[dict[str, object]]
    evidence: list[dict[str, object]]
    pending: list[dict[str, str]]
    steps: int
    tool_calls: int
    prompt_tokens: int
    completion_tokens: int
    elapsed_s: float
    seq: int
    fix_requested: bool
    status: str
    limit: str
    reason: str
    answer: str
    report: dict[str, object]


def initial_state(run_id: str, question: str, user: str | None = None) -> RunState:
    """A new run's state; ``seq`` 1 is its ``started`` event."""
    return RunState(
        run_id=run_id,
        question=question,
        user=user,
        prompt_version=PROMPT_VERSION,
        messages=opening(question),
        evidence=[],
        pending=[],
        steps=0,
        tool_calls=0,
        prompt_tokens=0,
        completion_tokens=0,
        elapsed_s=0.0,
        seq=1,
        fix_requested=False,
        status="",
        limit="",
        reason="",
        answer="",
        report={},
    )


@dataclass(frozen=True)
class Stop:
    """Why a run ends early: ``status`` ``limit`` (``limit`` names which) or ``cancelled``."""

    status: str
    limit: str
    reason: str


def stop_reason(
    state: Mapping[str, Any],
    limits: AgentLimits,
    *,
    before: Literal["model", "tools", "finish"],
    elapsed_s: float,
    cancelled: bool,
    prompt_estimate: int = 0,
) -> Stop | None:
    """Whether the run must stop before its next node, and why (None: go on)."""
    if cancelled:
        return Stop("cancelled", "", "the run was cancelled")
    if elapsed_s >= limits.timeout_s:
        return Stop(
            "limit", "timeout", f"the run took its {limits.timeout_s:g} s; raise the timeout or ask a narrower question"
        )
    if before == "model":
        if state["steps"] >= limits.max_steps:
            return Stop(
                "limit",
                "max_steps",
                f"the run used its {limits.max_steps} model steps; raise max_steps or ask a narrower question",
            )
        used = state["prompt_tokens"] + state["completion_tokens"]
        if used + prompt_estimate >= limits.max_tokens:
            return Stop(
                "limit",
                "max_tokens",
                f"the run used {used} of its {limits.max_tokens} tokens and the next turn needs about "
                f"{prompt_estimate} more; raise max_tokens or ask a narrower question",
            )
    if before == "tools" and state["tool_calls"] >= limits.max_tool_calls:
        return Stop(
            "limit", "max_tool_calls", f"the run made its {limits.max_tool_calls} tool calls; raise max_tool_calls"
        )
    return None


def route_after_model(state: Mapping[str, Any]) -> str:
    """After a model turn: its tool calls, or the citation check of its answer."""
    if state["status"]:
        return END
    return "tools" if state["pending"] else "finish"


def route_after_tools(state: Mapping[str, Any]) -> str:
    """After a tool call: the next pending call, or the model with the results."""
    if state["status"]:
        return END
    return "tools" if state["pending"] else "model"


def route_after_finish(state: Mapping[str, Any]) -> str:
    """After the citation check: done, or the model again to fix its numbers."""
    return END if state["status"] else "model"


def unique_calls(
    calls: Sequence[ToolCall], messages: Sequence[Mapping[str, object]], step: int
) -> list[dict[str, str]]:
    """The turn's calls as plain data, each with an id unique in the run (a model may send
    none, or repeat ids after a restart)."""
    seen: set[str] = set()
    for m in messages:
        made = m.get("tool_calls")
        if isinstance(made, list):
            seen.update(str(c["id"]) for c in made if isinstance(c, Mapping))
    out = []
    for i, call in enumerate(calls, start=1):
        call_id = call.id
        if not call_id or call_id in seen:
            call_id = f"call_s{step}_{i}"
        seen.add(call_id)
        out.append({"id": call_id, "name": call.name, "arguments": call.arguments})
    return out


def report_dict(report: CitationReport) -> dict[str, object]:
    """A citation report as plain data for the state."""
    return {
        "numbers": [
            {
                "text": n.text,
                "start": n.start,
                "end": n.end,
                "cited": list(n.cited),
                "supported_by": list(n.supported_by),
            }
            for n in report.numbers
        ],
        "cited": list(report.cited),
        "unknown": list(report.unknown),
    }


def draft(messages: Sequence[Mapping[str, object]]) -> str:
    """The model's last answer text: its last turn, if that turn called no tools."""
    for m in reversed(messages):
        if m.get("role") == "assistant":
            return "" if m.get("tool_calls") else str(m.get("content", ""))
    return ""
