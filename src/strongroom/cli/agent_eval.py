"""``strongroom eval-agent QUESTIONS`` (the research agent's evaluation) and ``strongroom data
load-synthetic SET`` (the synthetic evaluation set, loaded through the application layer):
:mod:`strongroom.service.agent_eval` and :mod:`strongroom.service.synthetic_load` decide and audit.

    python -m strongroom.data.synthetic /tmp/agent-eval --seed 7
    strongroom data load-synthetic /tmp/agent-eval --groups public,desk,compliance
    strongroom ingest ../shared/corpus/sec10q/docs
    strongroom eval-agent /tmp/agent-eval/questions.jsonl --groups public,desk,compliance --route research
    strongroom eval-agent questions.jsonl --groups public,desk,compliance --route via-b --record chat@2

``--record NAME@VERSION`` attaches the end-to-end run (its ``agent.eval`` audit record) to a chat
model's registry entry as evidence for its release gate: only when every model turn was served
by the entry's deployment (:mod:`strongroom.service.registry`); a ``--tools-only`` run asks no
model and is refused before it starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from strongroom.cli.common import HomeOpt, JsonOpt, UserOpt, emit, err, exits_on_error, platform_session, say
from strongroom.data.questions import read_questions
from strongroom.errors import QueryError
from strongroom.governance.registry import parse_ref
from strongroom.service.agent_eval import AgentOutcome, PlanOutcome, evaluate
from strongroom.service.synthetic_load import LoadedFile, load_synthetic_set

__all__ = ["eval_agent_command", "load_synthetic_command"]

_GROUPS_HELP = "Your groups: every group the questions ask as (the synthetic set's: public,desk,compliance)."


def load_synthetic_command(
    set_dir: Annotated[Path, typer.Argument(help="A set written by `python -m strongroom.data.synthetic OUT`.")],
    no_documents: Annotated[
        bool, typer.Option("--no-documents", help="Load the datasets only, not the set's research note.")
    ] = False,
    user: UserOpt = None,
    groups: Annotated[str | None, typer.Option("--groups", help=_GROUPS_HELP)] = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Load a synthetic evaluation set: each file of its manifest as a dataset version at its
    loaded_at, then its research note (needs the ingester and admin roles; audited). The sec10q
    filings are a separate `strongroom ingest ../shared/corpus/sec10q/docs`."""

    def progress(f: LoadedFile) -> None:
        where = f"version {f.version}, {f.rows} rows" if f.version else "document"
        say(f"{f.order:>2} {f.dataset:<15} {f.path:<45} {f.status:<9} {where} at {f.loaded_at.isoformat()}", err)

    with platform_session(home, user, groups, create=True) as (platform, principal):
        report = load_synthetic_set(platform, principal, set_dir, documents=not no_documents, on_file=progress)
    if as_json:
        return emit(report.record(), as_json)
    loaded = sum(f.status in ("loaded", "ingested") for f in report.files)
    say(f"set {report.root} (seed {report.seed}): {loaded} of {len(report.files)} files loaded, the rest already there")
    if any(f.status == "failed" for f in report.files):
        raise typer.Exit(1)


def eval_agent_command(
    questions: Annotated[Path, typer.Argument(help="Questions (JSON lines; the synthetic set's questions.jsonl).")],
    route: Annotated[
        str | None,
        typer.Option("--route", help="Also ask the agent each question through this model route (end-to-end)."),
    ] = None,
    tools_only: Annotated[
        bool, typer.Option("--tools-only", help="Only the gold plans through the tools, even with --route.")
    ] = False,
    record: Annotated[
        str | None,
        typer.Option("--record", help="Attach the end-to-end run to this registered chat model (NAME@VERSION)."),
    ] = None,
    user: UserOpt = None,
    groups: Annotated[str | None, typer.Option("--groups", help=_GROUPS_HELP)] = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate the research agent: tool-level accuracy (each gold plan through the real tools)
    and, with --route, end-to-end accuracy, steps, tool calls, tokens and latency. Progress on
    stderr; exit 1 when tool-level accuracy is below 1.0 (needs the admin role; audited).
    --record attaches the run to a chat model's registry entry as evidence."""
    with exits_on_error():
        try:
            ref = None if record is None else "@".join(parse_ref(record))
        except ValueError as exc:
            raise QueryError(f"--record: {exc}") from exc
        if ref is not None and (tools_only or not route):
            raise QueryError(
                f"--record {ref}: a {'--tools-only' if tools_only else 'run without --route'} asks no model, so it "
                "is no evidence of a chat model; give --route (the route to its deployment) without --tools-only"
            )
        asked = read_questions(questions)
    total = len(asked)

    def on_plan(i: int, o: PlanOutcome) -> None:
        say(f"[{i + 1}/{total}] tools {o.id}: {'ok' if o.passed else 'FAIL'} ({o.elapsed_ms:.0f} ms)", err)

    def on_run(i: int, o: AgentOutcome) -> None:
        figures = f"{o.steps} steps, {o.tool_calls} calls, {o.prompt_tokens + o.completion_tokens} tokens"
        say(f"[{i + 1}/{total}] agent {o.id}: {'ok' if o.passed else 'FAIL'} ({o.status}; {figures}; "
            f"{o.elapsed_s:.2f} s)", err)  # fmt: skip

    with platform_session(home, user, groups) as (platform, principal):
        with exits_on_error():
            if ref is not None:  # before the runs: a model that is not there, or one they cannot measure, at once
                entry = platform.registering(lambda r: r.show(principal, ref))
                if entry.kind not in ("chat", "fine-tuned"):
                    raise QueryError(
                        f"--record {ref}: an agent evaluation measures a chat deployment, not the {entry.kind} "
                        f"model {ref}; record `strongroom eval QA` on it"
                    )
            report = evaluate(platform, principal, asked, route=route, tools_only=tools_only, on_plan=on_plan,
                              on_run=on_run)  # fmt: skip
            if ref is not None:
                platform.registering(lambda r: r.attach(principal, ref, report.audit_seq))
    summary = report.summary()
    if ref is not None:
        summary["recorded"] = {"model": ref, "audit_seq": report.audit_seq}
    if as_json:
        emit(summary, as_json)
    else:
        _print_summary(summary)
        if ref is not None:
            say(f"recorded as evidence of {ref} (audit record {report.audit_seq})")
    if summary["tool_level"]["accuracy"] < 1.0:
        raise typer.Exit(1)


def _share(part: dict[str, Any] | None) -> str:
    return f"{part['passed']}/{part['total']}" if part else "-"


def _print_summary(summary: dict[str, Any]) -> None:
    tools, agent = summary["tool_level"], summary["end_to_end"]
    kinds = list(tools["by_kind"])
    rows = [{"kind": k, "tool-level": _share(tools["by_kind"][k]),
             "end-to-end": _share(agent["by_kind"].get(k)) if agent else "-"} for k in kinds]  # fmt: skip
    rows.append({"kind": "all", "tool-level": _share(tools), "end-to-end": _share(agent)})
    emit(rows, False, title=f"eval-agent: {summary['questions']} questions")
    say(
        f"tool-level accuracy {tools['passed']}/{tools['total']} = {tools['accuracy']:.3f} ({tools['elapsed_s']:.1f} s)"
    )
    for f in tools["failures"]:
        say(f"  tool-level FAIL {f['id']} ({f['kind']}): {'; '.join(f['problems'])}")
    if agent is None:
        say(summary["note"])
        return
    lat, steps, calls = agent["latency_s"], agent["steps"], agent["tool_calls"]
    say(f"end-to-end accuracy {agent['passed']}/{agent['total']} = {agent['accuracy']:.3f} via {summary['route']}: "
        f"steps mean {steps['mean']:.1f} (p95 {steps['p95']:g}), tool calls mean {calls['mean']:.1f}, tokens "
        f"{agent['prompt_tokens']['total']:g} prompt + {agent['completion_tokens']['total']:g} completion, "
        f"latency p50 {lat['p50']:.2f} s p95 {lat['p95']:.2f} s")  # fmt: skip
    for f in agent["failures"]:
        say(f"  end-to-end FAIL {f['id']} ({f['kind']}): {'; '.join(f['problems'])}")
