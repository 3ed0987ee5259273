"""The research agent's nodes: the I/O between the pure decisions of
:mod:`strongroom.agent.decide`. A :class:`RunContext` holds what one run needs besides its
state (the model, the toolbox, the limits, the clock, the event sink) and is passed to the
graph as LangGraph's runtime context, so it is never checkpointed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from strongroom.agent.base import AgentLimits, Evidence, RunEvent, Toolbox
from strongroom.agent.citations import check_answer, unsupported_note
from strongroom.agent.clearance import evidence_clearance
from strongroom.agent.decide import RunState, Stop, draft, report_dict, stop_reason, unique_calls
from strongroom.agent.prompt import (
    chat_messages,
    evidence_dict,
    evidence_of,
    fix_request,
    message_dict,
    tool_error,
    tool_result,
)
from strongroom.agent.tools import CALCULATE, parse_arguments, run_calculate
from strongroom.errors import NotFound, StrongroomError
from strongroom.llm.protocol import ChatModel, complete_with_tools
from strongroom.llm.types import ChatMessage, ChatRequest, ToolCall, ToolSpec, estimate_tokens, prompt_tokens_estimate

__all__ = ["CHARS_PER_TOKEN", "RunContext"]

#: the most characters a model's turn may hold per token it was allowed (a token is ~4): more
#: and the deployment ignored ``max_tokens``, so the turn is dropped and the run ends at its limit
CHARS_PER_TOKEN = 16

log = logging.getLogger(__name__)


def _tools_estimate(specs: Sequence[ToolSpec]) -> int:
    return sum(estimate_tokens(t.name + t.description + json.dumps(t.parameters, default=str)) for t in specs)


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
        text = draft(messages)
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
        # the turn carries every tool result so far: only deployments cleared for them may answer
        need = evidence_clearance(state["evidence"])
        request = need.apply(request)
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
        sent = len(text) + sum(len(c.name) + len(c.arguments) for c in calls)
        if sent > max(1, cap) * CHARS_PER_TOKEN:  # a backend that ignores max_tokens (or under-reports)
            reason = (
                f"the model sent {sent} characters in a turn allowed {max(1, cap)} tokens; "
                "nothing of that turn is kept: check the deployment (it ignores max_tokens)"
            )
            spent = state["completion_tokens"] + max(usage.completion_tokens, sent // CHARS_PER_TOKEN)
            spend = {"steps": step, "prompt_tokens": state["prompt_tokens"] + usage.prompt_tokens}
            return self.end(state, events, "limit", limit="max_tokens", reason=reason, completion_tokens=spent, **spend)
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
                **need.metadata(),  # above public: the clearance the turn needed and the ids that forced it
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
                listed = ", ".join(s.name for s in self.specs)
                raise NotFound(f"there is no tool named {name!r}; the tools are: {listed}")
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
        text = draft(state["messages"])
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
