"""The research agent's graph (LangGraph): a model turn, then its tool calls one at a time,
until the model answers; then the citation check.

::

    START ─► model ──(tool calls)──► tools ─┐ (one call per step; more pending: tools again)
               ▲  └──(no calls)──► finish   │
               └──────────────────────┴─────┘ (a fix asked for, or all calls done)

- ``model`` sends the history and the tools' specs to the :class:`ChatModel` (the gateway in
  production) with ``tool_choice="auto"`` and counts the tokens it reports.
- ``tools`` runs the first pending call through :meth:`Toolbox.call` (or the built-in
  ``calculate``). Malformed JSON, an unknown tool, arguments that break the tool's schema
  and any :class:`~strongroom.errors.StrongroomError` the tool raises (a refusal) become a
  ``tool`` message with the error, for the model to act on; never a crash. One call per
  step means each completed call is checkpointed before the next starts, so a resumed run
  never repeats one.
- ``finish`` checks the answer's numbers against the evidence it cites
  (:mod:`strongroom.agent.citations`). When some are unsupported it asks the model once to
  fix them; if the next answer still has some, the answer ends with a line naming them.

Before each node a pure check (:func:`stop_reason`) ends the run on cancellation or on a
limit of :class:`AgentLimits`; a model turn and a tool call are also cut at the time left.
The state is plain data (:class:`RunState`) so any LangGraph checkpointer can keep it.
Events go to ``on_event`` as they happen, numbered by ``seq`` kept in the state: after a
resume, the events of a step that was not checkpointed are sent again under the same
numbers, so a consumer should store them by ``(run_id, seq)``, replacing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from strongroom.agent.base import AgentLimits, Evidence, RunEvent, Toolbox
from strongroom.agent.citations import CitationReport, check_answer, unsupported_note
from strongroom.agent.prompt import (
    PROMPT_VERSION,
    chat_messages,
    evidence_dict,
    evidence_of,
    fix_request,
    message_dict,
    opening,
    tool_error,
    tool_result,
)
from strongroom.agent.tools import CALCULATE, parse_arguments, run_calculate
from strongroom.errors import StrongroomError
from strongroom.llm.protocol import ChatModel, complete_with_tools
from strongroom.llm.types import ChatMessage, ChatRequest, ToolCall, ToolSpec, estimate_tokens, prompt_tokens_estimate

__all__ = [
    "RunContext",
    "RunState",
    "Stop",
    "build_graph",
    "initial_state",
    "report_dict",
    "route_after_finish",
    "route_after_model",
    "route_after_tools",
    "stop_reason",
]

log = logging.getLogger(__name__)


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


# -- the decisions (pure) ------------------------------------------------------------------


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


def _draft(messages: Sequence[Mapping[str, object]]) -> str:
    """The model's last answer text: its last turn, if that turn called no tools."""
    for m in reversed(messages):
        if m.get("role") == "assistant":
            return "" if m.get("tool_calls") else str(m.get("content", ""))
    return ""


def _tools_estimate(specs: Sequence[ToolSpec]) -> int:
    return sum(estimate_tokens(t.name + t.description + json.dumps(t.parameters, default=str)) for t in specs)


# -- the nodes (the I/O) -------------------------------------------------------------------


@dataclass
class _Events:
    run: RunContext
    seq: int

    def emit(self, kind: str, data: Mapping[str, object]) -> None:
        self.seq += 1
        self.run.on_event(RunEvent(self.run.run_id, self.seq, kind, data))


@dataclass
class RunContext:
    """One run in this process: what its nodes need besides the state (built by
    :class:`~strongroom.agent.runner.AgentRunner`)."""

    run_id: str
    model: ChatModel
    toolbox: Toolbox
    specs: tuple[ToolSpec, ...]
    limits: AgentLimits
    route: str
    on_event: Callable[[RunEvent], None]
    cancelled: Callable[[], bool]
    turn_max_tokens: int | None
    base_elapsed_s: float = 0.0
    resumed: bool = False
    started: float = field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        return self.base_elapsed_s + (time.monotonic() - self.started)

    def events(self, state: Mapping[str, Any]) -> _Events:
        events = _Events(self, state["seq"])
        if self.resumed:
            self.resumed = False
            events.emit("resumed", {"steps": state["steps"], "tool_calls": state["tool_calls"]})
        return events

    def stop(
        self, state: Mapping[str, Any], before: Literal["model", "tools", "finish"], estimate: int = 0
    ) -> Stop | None:
        return stop_reason(
            state,
            self.limits,
            before=before,
            elapsed_s=self.elapsed(),
            cancelled=self.cancelled(),
            prompt_estimate=estimate,
        )

    def end(
        self, state: Mapping[str, Any], events: _Events, status: str, *, limit: str = "", reason: str = "", **more: Any
    ) -> dict[str, Any]:
        """The update that ends the run: the answer (a draft when it stopped early) with its
        unsupported numbers named, and the event that says so."""
        messages = more.get("messages", state["messages"])
        text = _draft(messages)
        evidence = [evidence_of(e) for e in more.get("evidence", state["evidence"])]
        report = check_answer(text, evidence)
        note = unsupported_note(report)
        answer = f"{text.rstrip()}\n\n{note}" if note and text.strip() else text
        kind = "answer" if status == "answered" else status
        events.emit(
            kind,
            {
                "status": status,
                "limit": limit,
                "reason": reason,
                "answer": answer,
                "cited": list(report.cited),
                "unsupported": [n.text for n in report.unsupported],
            },
        )
        return {
            **more,
            "status": status,
            "limit": limit,
            "reason": reason,
            "answer": answer,
            "report": report_dict(report),
            "pending": [],
            "seq": events.seq,
            "elapsed_s": self.elapsed(),
        }

    # -- model --

    async def model_node(self, state: RunState) -> dict[str, Any]:
        events = self.events(state)
        messages = chat_messages(state["messages"])
        estimate = prompt_tokens_estimate(messages) + _tools_estimate(self.specs)
        stop = self.stop(state, "model", estimate)
        if stop:
            return self.end(state, events, stop.status, limit=stop.limit, reason=stop.reason)
        left = self.limits.max_tokens - state["prompt_tokens"] - state["completion_tokens"] - estimate
        cap = left if self.turn_max_tokens is None else min(left, self.turn_max_tokens)
        step = state["steps"] + 1
        request = ChatRequest(
            messages,
            model=self.route,
            max_tokens=max(1, cap),
            user=state.get("user"),
            request_id=f"{self.run_id}:{step}",
            tools=self.specs,
            tool_choice="auto",
        )
        try:
            text, calls, finish, usage = await asyncio.wait_for(
                complete_with_tools(self.model, request), timeout=max(0.001, self.limits.timeout_s - self.elapsed())
            )
        except TimeoutError:
            reason = f"the model did not answer within the run's {self.limits.timeout_s:g} s"
            return self.end(state, events, "limit", limit="timeout", reason=reason)
        except StrongroomError as exc:
            return self.end(state, events, "error", reason=f"the model could not answer: {exc}")
        except Exception as exc:
            log.exception("agent run %s: the model call failed", self.run_id)
            return self.end(state, events, "error", reason=f"the model call failed ({type(exc).__name__}); see the log")
        pending = unique_calls(calls, state["messages"], step)
        assistant = message_dict(ChatMessage("assistant", text, tuple(ToolCall(**c) for c in pending)))
        update: dict[str, Any] = {
            "messages": [*state["messages"], assistant],
            "pending": pending,
            "steps": step,
            "prompt_tokens": state["prompt_tokens"] + usage.prompt_tokens,
            "completion_tokens": state["completion_tokens"] + usage.completion_tokens,
        }
        events.emit(
            "model",
            {
                "step": step,
                "text": text,
                "tool_calls": pending,
                "finish_reason": finish,
                "usage": {
                    "prompt": usage.prompt_tokens,
                    "completion": usage.completion_tokens,
                    "estimated": usage.estimated,
                },
            },
        )
        if finish == "length" and not pending:
            reason = "the answer was cut at the token limit of its turn; raise max_tokens or ask a narrower question"
            return self.end(state, events, "limit", limit="max_tokens", reason=reason, **update)
        return {**update, "seq": events.seq, "elapsed_s": self.elapsed()}

    # -- tools --

    def spec(self, name: str) -> ToolSpec | None:
        return next((s for s in self.specs if s.name == name), None)

    async def tools_node(self, state: RunState) -> dict[str, Any]:
        events = self.events(state)
        stop = self.stop(state, "tools")
        if stop:
            return self.end(state, events, stop.status, limit=stop.limit, reason=stop.reason)
        call, rest = state["pending"][0], state["pending"][1:]
        name, call_id = call["name"], call["id"]
        evidence = state["evidence"]
        added: list[Evidence] = []
        error = ""
        began = time.monotonic()
        spec = self.spec(name)
        try:
            if spec is None:
                raise StrongroomError(
                    f"there is no tool named {name!r}; the tools are: {', '.join(s.name for s in self.specs)}"
                )
            arguments = parse_arguments(spec, call["arguments"])
            if name == CALCULATE.name:
                output = run_calculate(arguments, [evidence_of(e) for e in evidence])
            else:
                output = await asyncio.wait_for(
                    asyncio.to_thread(self.toolbox.call, name, arguments),
                    timeout=max(0.001, self.limits.timeout_s - self.elapsed()),
                )
            added = list(output.evidence)
            content = tool_result(name, call_id, output, len(evidence) + 1)
        except TimeoutError:
            reason = f"the tool {name} did not finish within the run's {self.limits.timeout_s:g} s"
            return self.end(state, events, "limit", limit="timeout", reason=reason)
        except StrongroomError as exc:
            error = str(exc)
            content = tool_error(name, call_id, error)
        except Exception as exc:
            log.exception("agent run %s: tool %s failed", self.run_id, name)
            error = f"the tool failed with an internal error ({type(exc).__name__}); try another way"
            content = tool_error(name, call_id, error)
        first = len(evidence) + 1
        events.emit(
            "tool",
            {
                "call_id": call_id,
                "name": name,
                "arguments": call["arguments"],
                "ok": not error,
                "error": error,
                "evidence": [{"n": first + i, **evidence_dict(e)} for i, e in enumerate(added)],
                "elapsed_ms": round((time.monotonic() - began) * 1000, 3),
            },
        )
        return {
            "messages": [*state["messages"], {"role": "tool", "content": content, "tool_call_id": call_id}],
            "evidence": [*evidence, *(evidence_dict(e) for e in added)],
            "pending": rest,
            "tool_calls": state["tool_calls"] + 1,
            "seq": events.seq,
            "elapsed_s": self.elapsed(),
        }

    # -- finish --

    async def finish_node(self, state: RunState) -> dict[str, Any]:
        events = self.events(state)
        stop = self.stop(state, "finish")
        if stop:
            return self.end(state, events, stop.status, limit=stop.limit, reason=stop.reason)
        text = _draft(state["messages"])
        if not text.strip():
            return self.end(state, events, "error", reason="the model returned neither an answer nor a tool call")
        report = check_answer(text, [evidence_of(e) for e in state["evidence"]])
        if (report.unsupported or report.unknown) and not state["fix_requested"] and not self.stop(state, "model"):
            ask = fix_request(report)
            events.emit("check", {"unsupported": [n.text for n in report.unsupported], "unknown": list(report.unknown)})
            return {
                "messages": [*state["messages"], message_dict(ChatMessage("user", ask))],
                "fix_requested": True,
                "seq": events.seq,
                "elapsed_s": self.elapsed(),
            }
        return self.end(state, events, "answered")


async def _model(state: RunState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    return await runtime.context.model_node(state)


async def _tools(state: RunState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    return await runtime.context.tools_node(state)


async def _finish(state: RunState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    return await runtime.context.finish_node(state)


# LangGraph runs a sync routing function in a worker thread under ainvoke: these are async
# so that routing stays on the event loop (a thread hop per step cost more than the step).
async def _after_model(state: RunState) -> str:
    return route_after_model(state)


async def _after_tools(state: RunState) -> str:
    return route_after_tools(state)


async def _after_finish(state: RunState) -> str:
    return route_after_finish(state)


_COMPILED: weakref.WeakKeyDictionary[BaseCheckpointSaver[Any], CompiledStateGraph[Any, Any, Any, Any]] = (
    weakref.WeakKeyDictionary()
)
_LOCK = threading.Lock()


def build_graph(checkpointer: BaseCheckpointSaver[Any]) -> CompiledStateGraph[Any, Any, Any, Any]:
    """The agent's graph with ``checkpointer``, compiled once per checkpointer. A run's
    :class:`RunContext` is passed as LangGraph's runtime context (``ainvoke(...,
    context=ctx)``): it is never checkpointed."""
    with _LOCK:
        compiled = _COMPILED.get(checkpointer)
        if compiled is None:
            graph: StateGraph[Any, Any, Any, Any] = StateGraph(RunState, context_schema=RunContext)
            graph.add_node("model", _model)
            graph.add_node("tools", _tools)
            graph.add_node("finish", _finish)
            graph.add_edge(START, "model")
            graph.add_conditional_edges("model", _after_model, ["tools", "finish", END])
            graph.add_conditional_edges("tools", _after_tools, ["tools", "model", END])
            graph.add_conditional_edges("finish", _after_finish, ["model", END])
            compiled = _COMPILED[checkpointer] = graph.compile(checkpointer=checkpointer)
        return compiled
