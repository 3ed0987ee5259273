#!/usr/bin/env python3
"""The research agent's own cost per step: the graph, the checkpointer and the framing.

A model that answers at once (one tool call per turn, then an answer) and a tool that does
nothing but return one evidence passage of ``--passage-chars`` characters drive runs of
``--tools`` tool calls (so 2 x tools + 1 model and tool steps, plus the citation check).
Each step ends with exactly one event; the time between consecutive events, less the time
spent inside the model's stream and the tool (measured around them), is the agent's own
overhead for that step (wall clock, and CPU time of the process, which a busy shared machine
inflates less): running the node, framing the result as JSON, the pure checks, and
the checkpointer's write (LangGraph ``durability="sync"``: written before the next step
starts). Printed for the in-memory checkpointer and for SQLite in a temporary folder (WAL,
synchronous=NORMAL, through a worker thread), with p50/p95/max per step, the per-run fixed
cost (compile, reading the run's state, the first checkpoint) and the growth of a step's
cost with the history (steps late in a run carry the whole run's messages).

    python benchmarks/agent_bench.py [--runs 30] [--tools 10] [--passage-chars 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

from strongroom.agent.base import AgentLimits, Evidence, RunEvent, ToolOutput
from strongroom.agent.checkpoint import open_checkpointer
from strongroom.agent.runner import AgentRunner
from strongroom.llm.types import ChatRequest, Delta, ToolCall, ToolSpec, Usage

SPEC = ToolSpec("noop", "Does nothing.", {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]})


class InstantModel:
    """Calls ``noop`` until it has ``tools`` results, then answers; records its own time."""

    def __init__(self, tools: int) -> None:
        self.tools = tools
        self.spent = 0.0

    async def stream(self, request: ChatRequest) -> AsyncIterator[Delta]:
        began = time.perf_counter()
        done = sum(1 for m in request.messages if m.role == "tool")
        usage = Usage(100, 10)
        if done < self.tools:
            delta = Delta("", "tool_calls", usage, (ToolCall(f"c{done}", "noop", '{"q": "x"}'),))
        else:
            delta = Delta("The figure is 81,797 [1].", "stop", usage)
        self.spent += time.perf_counter() - began
        yield delta


class NoopToolbox:
    def __init__(self, passage: str) -> None:
        self.passage = passage
        self.spent = 0.0

    def specs(self) -> Sequence[ToolSpec]:
        return (SPEC,)

    def call(self, name: str, arguments: Mapping[str, object]) -> ToolOutput:
        began = time.perf_counter()
        out = ToolOutput({"hits": 1}, (Evidence("page", {"page": 1}, self.passage, ("81,797",)),))
        self.spent += time.perf_counter() - began
        return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


Step = tuple[str, float, float]  # the kind of the event that ends it, wall ms, CPU ms


async def one_run(target: str, run_id: str, tools: int, passage: str) -> tuple[list[Step], float]:
    """Each step's overhead (wall and CPU, less the model's and the tool's own time) and the
    run's fixed cost before its first step (ms)."""
    model, toolbox = InstantModel(tools), NoopToolbox(passage)
    marks: list[tuple[str, float, float, float]] = []  # kind, wall, CPU, model+tool time so far

    def on_event(event: RunEvent) -> None:
        marks.append((event.kind, time.perf_counter(), time.process_time(), model.spent + toolbox.spent))

    checkpointer = open_checkpointer(target)
    try:
        limits = AgentLimits(max_steps=tools + 5, max_tool_calls=tools + 5, max_tokens=10**9)
        runner = AgentRunner(model, toolbox, checkpointer=checkpointer, limits=limits, on_event=on_event)
        began = time.perf_counter()
        result = await runner.arun(run_id, "What is the figure?")
        assert result.status == "answered", result.reason
    finally:
        checkpointer.close()
    steps = [
        (kind, ((t1 - t0) - (s1 - s0)) * 1000, ((c1 - c0) - (s1 - s0)) * 1000)
        for (_, t0, c0, s0), (kind, t1, c1, s1) in itertools.pairwise(marks)
    ]
    return steps, (marks[0][1] - began) * 1000  # fixed: up to the "started" event


def _line(label: str, steps: list[Step]) -> str:
    wall = [w for _, w, _ in steps]
    cpu = [c for _, _, c in steps]
    return (
        f"  {label:<12} n={len(steps):4d}  wall p50 {pct(wall, 0.5):5.2f}  p95 {pct(wall, 0.95):5.2f}  "
        f"max {max(wall):6.2f} ms | CPU p50 {pct(cpu, 0.5):5.2f}  p95 {pct(cpu, 0.95):5.2f}  "
        f"mean {statistics.fmean(cpu):5.2f} ms"
    )


async def bench(name: str, target: str, runs: int, tools: int, passage: str) -> None:
    await one_run(target, "warm-up", tools, passage)  # imports, the first connection, compiling the graph
    steps: list[Step] = []
    fixed: list[float] = []
    late: list[Step] = []
    began = time.perf_counter()
    for i in range(runs):
        one, f = await one_run(target, f"run-{i}", tools, passage)
        steps += one
        fixed.append(f)
        late += one[-5:-1]
    wall = time.perf_counter() - began
    print(f"{name}: per run {wall / runs * 1000:.1f} ms wall, {statistics.median(fixed):.2f} ms before its first step")
    print(_line("every step", steps))
    for kind, label in (("model", "model turns"), ("tool", "tool calls"), ("answer", "check+answer")):
        print(_line(label, [s for s in steps if s[0] == kind]))
    print(_line("late in run", late))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--tools", type=int, default=10, help="tool calls per run")
    parser.add_argument("--passage-chars", type=int, default=1000)
    args = parser.parse_args()
    passage = ("Total net sales 81,797 million in the quarter. " * 200)[: args.passage_chars]
    print(
        f"{args.runs} runs of {args.tools} tool calls ({2 * args.tools + 2} steps each: model, tool, ..., "
        f"model, check), evidence passages of {args.passage_chars} characters; time outside the model and tool"
    )
    asyncio.run(bench("memory", "memory", args.runs, args.tools, passage))
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(bench("sqlite", str(Path(folder) / "agent_checkpoints.sqlite3"), args.runs, args.tools, passage))


if __name__ == "__main__":
    main()
