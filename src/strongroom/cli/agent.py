"""The research agent's commands: ask (a run in this process), list your runs, show one,
resume an interrupted one, cancel one (:mod:`strongroom.service.agent_runs` decides and audits).

    strongroom agent ask "How did Acme's net sales compare with its share price?" --route research \
        --as-of 2023-08-31 --groups research
    strongroom agent runs
    strongroom agent show RUN_ID --json
    strongroom agent resume RUN_ID          # after the process running it died
    strongroom agent cancel RUN_ID

The steps go to stderr as they happen; the answer and its numbered citations (page spans,
queries with their dataset versions, calculations) to stdout. Exit 1 when the run did not
answer (a limit, an error, a cancel), 2 for a request that cannot be right.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from strongroom.agent.base import RunEvent
from strongroom.cli.common import (
    AsOfOpt,
    GroupsOpt,
    HomeOpt,
    JsonOpt,
    KnownAtOpt,
    UserOpt,
    emit,
    err,
    fail,
    platform_session,
    say,
)
from strongroom.service.agent_local import LocalAgentRuns
from strongroom.service.agent_run_store import AgentRun
from strongroom.service.agent_run_views import run_view
from strongroom.service.agent_runs import AgentRunRequest
from strongroom.types import Principal

__all__ = ["agent_app"]

agent_app = typer.Typer(
    help="The research agent: questions answered with entitled tools (documents, datasets, a calculator), "
    "every number cited.",
    no_args_is_help=True,
)
NO_ROUTE = (
    "configure a model route: strongroom models set-route NAME --deployment DEPLOYMENT (and grant it to your "
    "groups in STRONGROOM_ROUTE_GROUPS); the agent needs a model that calls tools"
)
RunId = Annotated[str, typer.Argument(help="The run's id (strongroom agent runs).")]


@contextmanager
def _agent(home: HomeOpt, user: UserOpt, groups: GroupsOpt) -> Iterator[tuple[LocalAgentRuns, Principal]]:
    with platform_session(home, user, groups) as (platform, principal), LocalAgentRuns(platform) as agent:
        yield agent, principal


def _step(event: RunEvent) -> None:
    """One line on stderr per step, as it happens."""
    d: Mapping[str, Any] = event.data
    if event.kind == "model":
        calls = [str(c.get("name")) for c in d.get("tool_calls", []) if isinstance(c, Mapping)]
        said = f"calls {', '.join(calls)}" if calls else f"answers ({d.get('finish_reason')})"
        line = f"step {d.get('step')}: the model {said}"
    elif event.kind == "tool":
        found = len(d.get("evidence", []))
        line = f"  {d.get('name')}: " + (f"{found} evidence item(s)" if d.get("ok") else f"refused: {d.get('error')}")
    elif event.kind in ("answer", "limit", "cancelled", "error"):
        line = f"run {event.run_id}: {d.get('status')}" + (f" ({d.get('reason')})" if d.get("reason") else "")
    elif event.kind == "check":
        line = f"  unsupported numbers, sent back to the model: {', '.join(map(str, d.get('unsupported', [])))}"
    else:
        line = f"run {event.run_id}: {event.kind}"
    say(line, err)


def _citation(item: Mapping[str, Any]) -> str:
    ref = item.get("ref", {})
    kind = item.get("kind")
    if kind in ("page", "table", "term_sheet"):
        where = f"{ref.get('source') or ref.get('document_id')} page {ref.get('page', '?')}"
        span = f", characters {ref['start']}-{ref['end']}" if "start" in ref else ""
        return f"{kind}: {where}{span} (version {str(ref.get('version_id', ''))[:12]})"
    if kind == "query":
        versions = ", ".join(f"{d[0]} v{d[1]}" for d in ref.get("datasets", []))
        return f"query: {ref.get('sql')} [{versions}; as of {ref.get('as_of')}, known at {ref.get('known_at')}]"
    return f"{kind}: {item.get('text', '')}"


def _show(run: AgentRun, as_json: bool) -> None:
    if as_json:
        emit(run_view(run), True)
        return
    result = run.result or {}
    if result.get("answer"):
        say(str(result["answer"]))
    evidence = {int(e["n"]): e for e in result.get("evidence", [])}
    if result.get("cited"):
        say("")
    for n in result.get("cited", []):
        if n in evidence:
            say(f"[{n}] {_citation(evidence[n])}")
    if run.status != "answered":
        say(f"run {run.id}: {run.status}" + (f": {run.reason}" if run.reason else ""), err)


def _ended(run: AgentRun, as_json: bool) -> None:
    _show(run, as_json)
    if run.status != "answered":
        raise typer.Exit(1)


@agent_app.command("ask")
def ask_cmd(
    question: Annotated[str, typer.Argument(help="The question.")],
    route: Annotated[
        str | None, typer.Option("--route", help="The model route to run with (default: your only one).")
    ] = None,
    as_of: AsOfOpt = None,
    known_at: KnownAtOpt = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1, help="Model turns (default 8).")] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", min=1, help="Seconds (default 120).")] = None,
    user: UserOpt = None,
    groups: GroupsOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the agent on QUESTION here (Ctrl-C cancels it): steps to stderr, the answer with its citations to stdout."""
    with _agent(home, user, groups) as (agent, principal):
        if route is None:
            mine = agent.routes(principal)
            if len(mine) != 1:
                raise fail(NO_ROUTE if not mine else f"pick a route with --route: {', '.join(mine)}", 2)
            route = mine[0]
        request = AgentRunRequest(question, route, as_of, known_at, max_steps=max_steps, timeout_s=timeout)
        run = agent.ask(principal, request, on_event=_step)
    _ended(run, as_json)


@agent_app.command("runs")
def runs_cmd(user: UserOpt = None, groups: GroupsOpt = None, home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """Your runs, newest first."""
    with _agent(home, user, groups) as (agent, principal):
        found = agent.mine(principal)
    rows = [{"run_id": r.id, "status": r.status, "created_at": f"{r.created_at:%Y-%m-%d %H:%M:%S}Z",
             "route": r.route, "question": r.question[:80]} for r in found]  # fmt: skip
    emit([run_view(r) for r in found] if as_json else rows, as_json, title="agent runs", empty="(no agent runs)")


@agent_app.command("show")
def show_cmd(
    run_id: RunId, user: UserOpt = None, groups: GroupsOpt = None, home: HomeOpt = None, as_json: JsonOpt = False
) -> None:
    """One of your runs: its answer with citations (or where it stopped), or all of it as JSON."""
    with _agent(home, user, groups) as (agent, principal):
        run = agent.get(principal, run_id)
    if not as_json:
        say(f"run {run.id}: {run.status}; route {run.route}; as of {run.as_of}; {run.question}", err)
    _show(run, as_json)


@agent_app.command("resume")
def resume_cmd(
    run_id: RunId, user: UserOpt = None, groups: GroupsOpt = None, home: HomeOpt = None, as_json: JsonOpt = False
) -> None:
    """Continue an interrupted run of yours from its last step, here, with your entitlements now."""
    with _agent(home, user, groups) as (agent, principal):
        run = agent.resume(principal, run_id, on_event=_step)
    _ended(run, as_json)


@agent_app.command("cancel")
def cancel_cmd(
    run_id: RunId, user: UserOpt = None, groups: GroupsOpt = None, home: HomeOpt = None, as_json: JsonOpt = False
) -> None:
    """Cancel a run (yours; an admin: anyone's): a running one stops at its next step."""
    with _agent(home, user, groups) as (agent, principal):
        run = agent.cancel(principal, run_id)
    if as_json:
        emit({"run_id": run.id, "status": run.status, "cancel_requested": run.cancel_requested}, True)
    else:
        say(f"run {run.id}: {'cancelled' if run.status == 'cancelled' else 'stops at its next step'}")
