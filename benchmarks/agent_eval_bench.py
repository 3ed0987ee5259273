#!/usr/bin/env python3
"""``strongroom eval-agent`` with the scripted "oracle" model, over a home that holds the set.

The oracle (``strongroom.testing.agent_oracle``) replays each question's gold plan as OpenAI
tool calls over real HTTP (a FakeOpenAIServer in this process, on loopback) and answers with
the numbers the tools sent back, cited. Its accuracy is a protocol figure (the agent loop,
tool calling, citations and scoring work together), not a model's; its latency is the
agent's, the tools' and the gateway's with a model that takes no time (the fake server
shares this process's CPU and GIL). The home gets a deployment ``oracle-bench`` and a route
``oracle`` (left in place); everything else is read as it is.

    python -m strongroom.data.synthetic /tmp/agent-eval --seed 7
    strongroom data load-synthetic /tmp/agent-eval --home /tmp/evalhome --groups public,desk,compliance
    strongroom ingest ../shared/corpus/sec10q/docs --home /tmp/evalhome
    python benchmarks/agent_eval_bench.py --home /tmp/evalhome --questions /tmp/agent-eval/questions.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

from strongroom.config import load_settings
from strongroom.data.questions import read_questions
from strongroom.llm.deployments import DeploymentSpec, save_deployment
from strongroom.llm.route_config import RouteStore
from strongroom.llm.routing import Target
from strongroom.service import Platform
from strongroom.service.agent_eval import evaluate
from strongroom.testing.agent_oracle import OracleModel
from strongroom.testing.openai_server import FakeOpenAIServer
from strongroom.types import Principal

ROUTE = "oracle"


def _rank(values: list[float], share: float) -> float:
    """The nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path("/tmp/evalhome"))
    parser.add_argument("--questions", type=Path, default=Path("/tmp/agent-eval/questions.jsonl"))
    parser.add_argument("--json", type=Path, help="Write the whole report here too.")
    args = parser.parse_args()
    questions = read_questions(args.questions)
    operator = Principal("eval-bench", frozenset({"public", "desk", "compliance"}), frozenset({"reader", "admin"}))
    settings = load_settings(args.home).model_copy(update={"route_groups": {ROUTE: ["public"]}})
    with FakeOpenAIServer(OracleModel(questions)) as server:
        save_deployment(args.home, "oracle-bench", DeploymentSpec(backend="openai-compatible", url=server.url,
                                                                   model="oracle"))  # fmt: skip
        RouteStore(args.home).set_route(ROUTE, [Target("oracle-bench", 100)])
        with Platform.open(settings, create=False) as platform:
            report = evaluate(platform, operator, questions, route=ROUTE)
    summary = report.summary()
    tools, agent = summary["tool_level"], summary["end_to_end"]
    plans_ms = [p.elapsed_ms for p in report.tool_level]
    print(f"questions: {summary['questions']}")
    print(f"tool-level accuracy {tools['passed']}/{tools['total']} = {tools['accuracy']:.3f} "
          f"({tools['elapsed_s']:.1f} s; per plan p50 {statistics.median(plans_ms):.0f} ms, "
          f"p95 {_rank(plans_ms, 0.95):.0f} ms)")  # fmt: skip
    for f in tools["failures"]:
        print("  tool-level FAIL", f["id"], "; ".join(f["problems"]))
    lat, steps, calls = agent["latency_s"], agent["steps"], agent["tool_calls"]
    print(
        f"end-to-end accuracy {agent['passed']}/{agent['total']} = {agent['accuracy']:.3f} ({agent['elapsed_s']:.1f} s)"
    )
    print(f"  steps per question: mean {steps['mean']:.2f}, p50 {steps['p50']:g}, p95 {steps['p95']:g}, "
          f"max {steps['max']:g}")  # fmt: skip
    print(f"  tool calls per question: mean {calls['mean']:.2f}, max {calls['max']:g}")
    prompt, completion = agent["prompt_tokens"], agent["completion_tokens"]
    print(f"  tokens: prompt {prompt['total']:g} (mean {prompt['mean']:.0f}), "
          f"completion {completion['total']:g} (mean {completion['mean']:.0f})")  # fmt: skip
    print(f"  latency per question: p50 {lat['p50'] * 1000:.0f} ms, p95 {lat['p95'] * 1000:.0f} ms, "
          f"max {lat['max'] * 1000:.0f} ms")  # fmt: skip
    assert report.end_to_end is not None
    for needs in ("data", "documents", "both"):
        times = [r.elapsed_s * 1000 for r in report.end_to_end if r.needs == needs]
        if times:
            print(
                f"  {needs:<9} n={len(times):<3} p50 {statistics.median(times):.0f} ms, p95 {_rank(times, 0.95):.0f} ms"
            )
    for f in agent["failures"]:
        print("  end-to-end FAIL", f["id"], "; ".join(f["problems"]))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    return 0 if tools["accuracy"] == 1.0 and agent["accuracy"] == 1.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
