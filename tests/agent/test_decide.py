"""The agent's next-step decisions: pure functions of the state."""

from __future__ import annotations

from typing import Any

import pytest
from langgraph.graph import END

from strongroom.agent.base import AgentLimits
from strongroom.agent.decide import (
    draft,
    initial_state,
    route_after_finish,
    route_after_model,
    route_after_tools,
    stop_reason,
    unique_calls,
)
from strongroom.llm.types import ToolCall

LIMITS = AgentLimits(max_steps=3, max_tool_calls=5, timeout_s=10, max_tokens=1000)


def state(**kw: Any) -> dict[str, Any]:
    return {**initial_state("r", "q?"), **kw}


def test_a_new_run_goes_on() -> None:
    for before in ("model", "tools", "finish"):
        assert stop_reason(state(), LIMITS, before=before, elapsed_s=0, cancelled=False) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kw", "before", "elapsed", "cancelled", "expected"),
    [
        ({}, "model", 0, True, ("cancelled", "")),
        ({"steps": 3}, "model", 11, True, ("cancelled", "")),  # cancellation first
        ({}, "tools", 10, False, ("limit", "timeout")),
        ({"steps": 3}, "model", 0, False, ("limit", "max_steps")),
        ({"steps": 3}, "tools", 0, False, None),  # the calls of the last turn may still run
        ({"tool_calls": 5}, "tools", 0, False, ("limit", "max_tool_calls")),
        ({"tool_calls": 5}, "model", 0, False, None),
        ({"prompt_tokens": 600, "completion_tokens": 300}, "model", 0, False, ("limit", "max_tokens")),
        ({"prompt_tokens": 600, "completion_tokens": 300}, "finish", 0, False, None),
    ],
)
def test_what_stops_a_run(
    kw: dict[str, Any], before: Any, elapsed: float, cancelled: bool, expected: tuple[str, str] | None
) -> None:
    stop = stop_reason(state(**kw), LIMITS, before=before, elapsed_s=elapsed, cancelled=cancelled, prompt_estimate=100)
    assert (None if stop is None else (stop.status, stop.limit)) == expected
    if stop is not None:
        assert stop.reason


def test_routes() -> None:
    assert route_after_model(state(pending=[{"id": "a"}])) == "tools"
    assert route_after_model(state()) == "finish"
    assert route_after_model(state(status="limit", pending=[{"id": "a"}])) == END
    assert route_after_tools(state(pending=[{"id": "b"}])) == "tools"
    assert route_after_tools(state()) == "model"
    assert route_after_tools(state(status="cancelled")) == END
    assert route_after_finish(state()) == "model"  # a fix was asked for
    assert route_after_finish(state(status="answered")) == END


def test_call_ids_are_unique_in_the_run() -> None:
    history = [{"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "name": "s", "arguments": "{}"}]}]
    calls = [ToolCall("call_1", "s", "{}"), ToolCall("", "s", "{}"), ToolCall("x", "s", "{}"), ToolCall("x", "s", "{}")]
    assert [c["id"] for c in unique_calls(calls, history, step=4)] == ["call_s4_1", "call_s4_2", "x", "call_s4_4"]


def test_the_draft_is_the_last_turn_without_calls() -> None:
    answered = [{"role": "assistant", "content": "It is 4 [1]."}, {"role": "user", "content": "fix"}]
    assert draft(answered) == "It is 4 [1]."
    assert draft([*answered, {"role": "assistant", "content": "Let me look.", "tool_calls": [{"id": "a"}]}]) == ""
    assert draft([]) == ""
