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

Before each node a pure check (:func:`~strongroom.agent.decide.stop_reason`) ends the run on
cancellation or on a limit of :class:`AgentLimits`; a model turn and a tool call are also cut
at the time left. The state is plain data (:class:`~strongroom.agent.decide.RunState`) so any
LangGraph checkpointer can keep it; the decisions are pure (:mod:`strongroom.agent.decide`),
the nodes do the I/O (:mod:`strongroom.agent.nodes`).
Events go to ``on_event`` as they happen, numbered by ``seq`` kept in the state: after a
resume, the events of a step that was not checkpointed are sent again under the same
numbers, so a consumer should store them by ``(run_id, seq)``, replacing.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from strongroom.agent.decide import RunState, route_after_finish, route_after_model, route_after_tools
from strongroom.agent.nodes import RunContext

__all__ = ["build_graph"]


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
