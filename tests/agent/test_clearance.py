"""The agent's model turns carry the clearance of the evidence gathered so far: once a tool
returns restricted (or MNPI, or dataset) content, no later turn reaches a deployment not
cleared for it, even the route's champion, and a run with no cleared deployment ends saying so."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from strongroom.agent.base import Evidence, RunEvent, ToolOutput
from strongroom.agent.clearance import evidence_clearance
from strongroom.agent.runner import AgentRunner
from strongroom.llm.clearance import ContextClearance
from strongroom.llm.gateway import Deployment, Gateway
from strongroom.llm.routing import RetryPolicy, Route, StaticRoutes, Target
from strongroom.testing.chat import ScriptedChatModel
from tests.agent.fakes import PASSAGE, FakeToolbox, research_turn


class LabelledToolbox(FakeToolbox):
    """The fake toolbox whose search passage is labelled as a toolbox over the store labels it."""

    def __init__(self, sensitivity: str, mnpi: bool) -> None:
        super().__init__()
        self.label = {"sensitivity": sensitivity, "mnpi": mnpi}

    def call(self, name: str, arguments: Mapping[str, object]) -> ToolOutput:
        out = super().call(name, arguments)
        if name != "search":
            return out
        return ToolOutput(out.content, tuple(Evidence(e.kind, {**e.ref, **self.label}, e.text) for e in out.evidence))


def page(version: str, sensitivity: str | None = None, mnpi: object = None) -> dict[str, object]:
    ref: dict[str, object] = {"version_id": version, "page": 1}
    if sensitivity is not None:
        ref["sensitivity"] = sensitivity
    if mnpi is not None:
        ref["mnpi"] = mnpi
    return {"kind": "page", "ref": ref, "text": "..."}


def test_evidence_clearance() -> None:
    assert evidence_clearance([]) == ContextClearance()
    assert evidence_clearance([page("v1"), page("v2", "public")]) == ContextClearance()
    assert evidence_clearance([page("v1", "internal"), page("v2", "restricted"), page("v3", "restricted")]) == (
        ContextClearance("restricted", False, ("v2", "v3"))
    )
    assert evidence_clearance([page("v1", "internal", True)]) == ContextClearance("internal", True, ("v1",))
    assert evidence_clearance([page("v1", "eyes-only")]).sensitivity == "restricted"  # unknown: the highest
    assert evidence_clearance([page("v1", "public", "yes")]).mnpi is False  # only a real true counts
    rows = {"kind": "query", "ref": {"datasets": [["trades", 3, "ab"]]}, "text": "..."}
    assert evidence_clearance([rows]) == ContextClearance("confidential", False, ("dataset:trades@3",))
    sums = {"kind": "calculation", "ref": {"formula": "1+1"}, "text": "2"}
    assert evidence_clearance([sums, page("v1", "internal")]) == ContextClearance("internal", False, ("v1",))


def two_models() -> tuple[Gateway, ScriptedChatModel, ScriptedChatModel]:
    external, internal = ScriptedChatModel(default=research_turn), ScriptedChatModel(default=research_turn)
    route = Route("research", 1, (Target("external", 100), Target("internal")))
    gateway = Gateway(
        StaticRoutes([route]),
        [Deployment("external", external), Deployment("internal", internal, clearance="restricted", mnpi=True)],
        retry=RetryPolicy(attempts=1),
    )
    return gateway, external, internal


def run(gateway: Gateway, toolbox: FakeToolbox, events: list[RunEvent] | None = None) -> str:
    sink = events if events is not None else []
    runner = AgentRunner(gateway, toolbox, route="research", on_event=sink.append)
    result = asyncio.run(runner.arun("run-1", "How did Apple's net sales change in Q3 2023?"))
    return f"{result.status}: {result.reason}"


def test_after_restricted_evidence_no_turn_reaches_the_uncleared_champion() -> None:
    gateway, external, internal = two_models()
    events: list[RunEvent] = []
    assert run(gateway, LabelledToolbox("restricted", True), events).startswith("answered")
    turns = [e.data for e in events if e.kind == "model"]
    assert "context_clearance" not in turns[0]  # the run's event log says what each turn needed, and why
    assert {(t["context_clearance"], t["clearance_forced_by"]) for t in turns[1:]} == {("restricted (MNPI)", "v1")}
    # the first turn holds no evidence yet: the champion answers it; every later turn holds the passage
    assert len(external.requests) == 1 and len(internal.requests) == 3
    assert all(PASSAGE[:40] not in m.content for r in external.requests for m in r.messages)
    assert {(r.sensitivity, r.mnpi) for r in internal.requests} == {("restricted", True)}


def test_dataset_rows_count_as_confidential() -> None:
    gateway, external, internal = two_models()
    assert run(gateway, FakeToolbox()).startswith("answered")  # an unlabelled passage: public
    assert len(external.requests) == 2 and len(internal.requests) == 2  # after the sql rows: internal only
    assert [r.sensitivity for r in internal.requests] == ["confidential", "confidential"]


def test_a_run_with_no_cleared_deployment_ends_saying_so() -> None:
    external = ScriptedChatModel(default=research_turn)
    gateway = Gateway(
        StaticRoutes([Route("research", 1, (Target("external", 1),))]), [Deployment("external", external)]
    )
    outcome = run(gateway, LabelledToolbox("internal", False))
    assert outcome.startswith("error") and "no deployment of route 'research' v1 is cleared for it" in outcome
    assert len(external.requests) == 1  # only the first turn, before any evidence
