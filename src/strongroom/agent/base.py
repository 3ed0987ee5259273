"""The research agent's vocabulary: the tools it may call, what they return, its limits and
the events of a run.

A :class:`Toolbox` is bound to one principal and one pair of clocks by the application layer
(``strongroom.service.agent_tools``): every call is an entitled, audited operation, so what a
run may read is exactly what its principal may read, whatever a document or a query result
says. The agent (``strongroom.agent.graph``) only chooses which tool to call next.

Every number in an answer must cite :class:`Evidence`: a page span of a document version, or
a query (its SQL, the dataset versions, the rows), or a calculation over cited numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from strongroom.llm.types import ToolSpec

__all__ = ["AgentLimits", "Evidence", "RunEvent", "ToolOutput", "Toolbox"]


@dataclass(frozen=True)
class Evidence:
    """What a tool result rests on, for a citation.

    ``kind``: ``page`` (``ref``: document_id, version_id, page, start, end, source),
    ``query`` (``ref``: sql, executed_sql, datasets [name, version, sha256], as_of, known_at,
    row count), ``calculation`` (``ref``: expression, inputs), ``term_sheet`` (``ref``:
    document_id, version_id, field) or ``table`` (``ref``: document_id, version_id, page,
    table index). ``text``: what is cited (a passage, rows as text, a formula); ``numbers``:
    the numbers it states, as written, so an answer's numbers can be checked against it.
    """

    kind: str
    ref: Mapping[str, object]
    text: str
    numbers: tuple[str, ...] = ()


@dataclass(frozen=True)
class ToolOutput:
    """A tool's result: ``content`` (JSON-able) goes to the model as data, never as
    instructions; ``evidence`` is what the answer may cite."""

    content: Mapping[str, object]
    evidence: tuple[Evidence, ...] = ()


class Toolbox(Protocol):
    """The tools of one run, bound to its principal and clocks.

    ``call`` raises :class:`~strongroom.errors.StrongroomError` subclasses for a refusal or
    bad arguments (``QueryError``, ``NotFound``, ``PermissionDenied``); the agent passes the
    message back to the model as the tool's result and carries on.
    """

    def specs(self) -> Sequence[ToolSpec]: ...

    def call(self, name: str, arguments: Mapping[str, object]) -> ToolOutput: ...


@dataclass(frozen=True)
class AgentLimits:
    """What one run may spend: model turns (steps), tool calls, wall-clock seconds and tokens
    (prompt + completion, as the gateway reports them)."""

    max_steps: int = 8
    max_tool_calls: int = 16
    timeout_s: float = 120.0
    max_tokens: int = 32_000


@dataclass(frozen=True)
class RunEvent:
    """One step of a run, as streamed to the caller and kept with the run: ``kind`` is
    ``started``, ``model`` (a model turn: text, tool calls, usage), ``tool`` (a call, its
    arguments, its outcome, its evidence), ``check`` (the answer's unsupported numbers, sent
    back to the model once), ``answer``, ``error``, ``cancelled``, ``limit``, ``resumed``;
    ``seq`` orders the events of one run (after a resume, a step that was not checkpointed
    is sent again under the same numbers: keep events by ``(run_id, seq)``, replacing)."""

    run_id: str
    seq: int
    kind: str
    data: Mapping[str, object] = field(default_factory=dict)
