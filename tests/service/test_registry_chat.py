"""A chat model's evidence for the release gate: ``strongroom eval-agent --route R --record``.

Two deployments, ``dep-a`` and ``dep-b``, each a scripted OpenAI-compatible server over real
HTTP (the "oracle" that replays each question's gold plan, or the same oracle answering every
number one unit off), behind routes ``via-a`` and ``via-b``. ``chat@1`` (bound to ``dep-a``) is
in production with its evidence; ``chat@2`` (bound to ``dep-b``) is the candidate.

The attacks: ``dep-b`` answering wrongly is refused by the gate; a run served by ``dep-a``
attached to ``chat@2`` (production's quality standing in for the candidate's); a run served
partly by each (a route that spreads or fails over); a ``--tools-only`` run (no model asked);
an agent run for an embedder; a retrieval run for the chat model; a run on other questions
standing in for production's. Then a better ``dep-b`` run promotes ``chat@2`` through an
approved proposal, and the CLI does the same in one step.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from strongroom.cli import app
from strongroom.config import Settings
from strongroom.data.questions import Question, read_questions, write_questions
from strongroom.data.synthetic import generate_market_data, generate_questions
from strongroom.errors import PermissionDenied, QueryError
from strongroom.governance.registry import Lineage, ModelEntry
from strongroom.llm.deployments import DeploymentSpec, load_retired, save_deployment
from strongroom.llm.route_config import RouteStore
from strongroom.llm.routing import Target
from strongroom.service import Platform
from strongroom.service.agent_eval import EVAL_ACTION, evaluate
from strongroom.service.approvals import Applied
from strongroom.service.registry import PROMOTE, Promotion, eval_set_sha256, promote_change
from strongroom.service.synthetic_load import load_synthetic_set
from strongroom.testing import HashEmbedder
from strongroom.testing.agent_oracle import OracleModel
from strongroom.testing.openai_server import FakeOpenAIServer, Reply, Responder
from strongroom.types import Principal

GROUPS = frozenset({"public", "desk", "compliance"})
ROUTES = {"via-a": ["public"], "via-b": ["public"], "via-ab": ["public"]}
T0 = datetime(2026, 3, 1, 9, tzinfo=UTC)


def ana() -> Principal:  # the maker: an admin in every group the questions ask as
    return Principal("ana", GROUPS, frozenset({"reader", "ingester", "admin"}), "oidc")


def bo() -> Principal:  # the checker: an approver
    return Principal("bo", frozenset({"public"}), frozenset({"approver"}), "oidc")


class Switch:
    """A deployment's scripted model: whichever responder a test puts in."""

    def __init__(self) -> None:
        self.model: Responder = lambda body: Reply.stream("No model chosen.")

    def __call__(self, body: dict[str, Any]) -> Reply:
        return self.model(body)


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    home: Path
    platform: Platform
    sample: list[Question]
    other: list[Question]
    a: Switch
    b: Switch
    clock: Clock


def settings(home: Path) -> Settings:
    return Settings(home=home, embedder="hash", route_groups=ROUTES)


def sample_of(questions: list[Question]) -> list[Question]:
    """The first data question of each of two kinds that need numbers, and two refusals."""
    data = [q for q in questions if q.needs == "data"]
    return [q for q in data if q.kind == "price_move"][:2] + [q for q in data if q.kind == "refusal"][:2]


@pytest.fixture(scope="module")
def eval_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("set")
    data = generate_market_data(out, seed=7)
    write_questions(out / "questions.jsonl", generate_questions(data, seed=7))
    return out


@pytest.fixture
def world(eval_set: Path, tmp_path: Path) -> Iterator[World]:
    home = tmp_path / "home"
    a, b = Switch(), Switch()
    with FakeOpenAIServer(a) as server_a, FakeOpenAIServer(b) as server_b:
        for name, server in (("dep-a", server_a), ("dep-b", server_b)):
            spec = DeploymentSpec(backend="openai-compatible", url=server.url, model=name, clearance="restricted",
                                  mnpi=True)  # fmt: skip
            save_deployment(home, name, spec)
        routes = RouteStore(home)
        routes.set_route("via-a", [Target("dep-a", 100)])
        routes.set_route("via-b", [Target("dep-b", 100)])
        routes.set_route("via-ab", [Target("dep-a", 50), Target("dep-b", 50)])
        with Platform.open(settings(home), embedder=HashEmbedder(64)) as p:
            load_synthetic_set(p, ana(), eval_set, documents=False)
            questions = read_questions(eval_set / "questions.jsonl")
            sample = sample_of(questions)
            other = [q for q in questions if q.needs == "data" and q.kind == "price_move"][2:4]
            clock = Clock()
            p.registry.clock = p.approvals.clock = clock
            yield World(home, p, sample, other, a, b, clock)


def entry(version: str, binding: str, kind: str = "chat", name: str = "chat") -> ModelEntry:
    return ModelEntry(
        name, version, kind, "model-risk@bank", "high", binding,  # type: ignore[arg-type]
        Lineage("", "", "llama-3.1-8b"), "# Model card\nIntended use: research Q&A.",
    )  # fmt: skip


def run(w: World, route: str, *, wrong: bool = False, questions: list[Question] | None = None, **kw: Any) -> int:
    """An end-to-end evaluation through ``route``; the seq of its ``agent.eval`` record."""
    asked = questions or w.sample
    w.a.model = OracleModel(asked, wrong=wrong)
    w.b.model = OracleModel(asked, wrong=wrong)
    report = evaluate(w.platform, ana(), asked, route=route, **kw)
    assert report.audit_seq > 0
    return report.audit_seq


def record(w: World, seq: int) -> dict[str, Any]:
    return next(r for r in w.platform.audit_records(ana()) if r["seq"] == seq)


def attach(w: World, ref: str, seq: int) -> None:
    w.platform.registering(lambda r: r.attach(ana(), ref, seq))


def propose(w: World, ref: str, stage: str) -> str:
    return w.platform.approving(lambda a: a.propose(ana(), PROMOTE, promote_change(ref, stage), "release")).id


def move(w: World, ref: str, stage: str) -> Promotion:
    pid = propose(w, ref, stage)
    w.clock.now += timedelta(minutes=1)
    applied: Applied = w.platform.approving(lambda a: a.approve(bo(), pid))
    assert isinstance(applied.result, Promotion)
    return applied.result


def stage(w: World, ref: str) -> str:
    return w.platform.registering(lambda r: r.show(ana(), ref)).stage


def chat1_in_production(w: World) -> int:
    w.platform.registering(lambda r: r.register(ana(), entry("1", "dep-a")))
    good = run(w, "via-a")
    attach(w, "chat@1", good)
    move(w, "chat@1", "validated")
    assert move(w, "chat@1", "production").gate is not None
    w.platform.registering(lambda r: r.register(ana(), entry("2", "dep-b")))
    move(w, "chat@2", "validated")
    return good


def test_the_agent_eval_record_names_what_served_it(world: World) -> None:
    seq = run(world, "via-a")
    filters = record(world, seq)["filters"]
    assert filters["eval_sha256"] == eval_set_sha256([q.record() for q in world.sample])
    assert filters["metrics"]["accuracy"] == 1.0 and filters["metrics"]["total"] == len(world.sample)
    assert all(isinstance(v, int | float) and not isinstance(v, bool) for v in filters["metrics"].values())
    assert filters["subject"] == {
        "route": "via-a", "deployments": ["dep-a"], "unserved_turns": 0, "as_of": None, "known_at": None,
        "groups": sorted({g for q in world.sample for g in q.groups}),
    }  # fmt: skip
    records: list[dict[str, Any]] = list(world.platform.audit_records(ana()))
    turns = [r for r in records if r["action"] == "agent.run.model" and r["seq"] < seq]
    assert turns and {r["filters"]["deployment"] for r in turns} == {"dep-a"}  # read from the turns themselves
    assert "answer" not in json.dumps(filters)  # counts, never answers
    only = evaluate(world.platform, ana(), world.sample, route="via-a", tools_only=True).audit_seq
    assert record(world, only)["filters"].get("subject") is None and record(world, only)["filters"]["tools_only"]


def test_a_worse_candidate_deployment_is_refused_by_the_gate(world: World) -> None:
    chat1_in_production(world)
    worse = run(world, "via-b", wrong=True)
    assert record(world, worse)["filters"]["metrics"]["accuracy"] < 1.0
    attach(world, "chat@2", worse)  # its own run: attached, and shown for what it is
    with pytest.raises(PermissionDenied, match=r"accuracy on .*regressed"):
        propose(world, "chat@2", "production")
    assert (stage(world, "chat@1"), stage(world, "chat@2")) == ("production", "validated")


def test_productions_deployment_cannot_stand_in_for_the_candidates(world: World) -> None:
    good = chat1_in_production(world)
    with pytest.raises(QueryError, match=r"served by dep-a, not only by chat@2's deployment"):
        attach(world, "chat@2", good)  # production's own run
    served_by_a = run(world, "via-a")  # a new, perfect run: but dep-a answered it
    with pytest.raises(QueryError, match=r"served by dep-a, not only by chat@2's deployment \(dep-b\)"):
        attach(world, "chat@2", served_by_a)
    both = run(world, "via-ab")  # a route that spreads its turns over both
    assert record(world, both)["filters"]["subject"]["deployments"] == ["dep-a", "dep-b"]
    with pytest.raises(QueryError, match=r"served by dep-a, dep-b, not only"):
        attach(world, "chat@2", both)
    with pytest.raises(PermissionDenied, match=r"no evaluation attached.*eval-agent QUESTIONS --route R --record"):
        propose(world, "chat@2", "production")  # nothing of its own attached
    assert [e.audit_seq for e in world.platform.registering(lambda r: r.show(ana(), "chat@2")).evidence] == []


def test_a_run_that_asked_no_model_or_the_wrong_kind_is_refused(world: World) -> None:
    chat1_in_production(world)
    tools_only = evaluate(world.platform, ana(), world.sample, route="via-b", tools_only=True).audit_seq
    no_route = evaluate(world.platform, ana(), world.sample).audit_seq
    for seq in (tools_only, no_route):
        with pytest.raises(QueryError, match="asked no model, so it is no evidence of chat@2"):
            attach(world, "chat@2", seq)
    world.platform.registering(lambda r: r.register(ana(), entry("1", "hash-64", "embedder", "emb")))
    with pytest.raises(QueryError, match="measures a chat deployment, not the embedder model emb@1"):
        attach(world, "emb@1", run(world, "via-b"))
    other = run(world, "via-b", questions=world.other)  # perfect, on other questions
    attach(world, "chat@2", other)
    with pytest.raises(PermissionDenied, match="no evaluation on production's set"):
        propose(world, "chat@2", "production")


def test_a_better_candidate_is_promoted_through_an_approved_proposal(world: World) -> None:
    chat1_in_production(world)
    attach(world, "chat@2", run(world, "via-b", wrong=True))
    attach(world, "chat@2", run(world, "via-b"))  # newer, and as good as production
    promoted = move(world, "chat@2", "production")
    assert promoted.gate is not None and promoted.gate.accepted
    assert {d.metric for d in promoted.gate.compared} >= {"accuracy", "tool_level_accuracy"}
    assert (stage(world, "chat@1"), stage(world, "chat@2")) == ("retired", "production")
    assert load_retired(world.home) == frozenset({"dep-a"})  # the gateway leaves the retired deployment out
    shown = world.platform.registering(lambda r: r.show(bo(), "chat@2"))
    assert shown.evidence[-1].groups == tuple(sorted({g for q in world.sample for g in q.groups}))


def test_the_cli_records_an_agent_run_and_refuses_a_tools_only_one(world: World, tmp_path: Path) -> None:
    chat1_in_production(world)
    write_questions(tmp_path / "q.jsonl", world.sample)
    world.b.model = OracleModel(world.sample)
    env = {"STRONGROOM_HOME": str(world.home), "STRONGROOM_EMBEDDER": "hash",
           "STRONGROOM_ROUTE_GROUPS": json.dumps(ROUTES)}  # fmt: skip
    base = ["eval-agent", str(tmp_path / "q.jsonl"), "--groups", ",".join(sorted(GROUPS))]
    before = len(list(world.platform.audit_records(ana())))
    refused = CliRunner().invoke(app, [*base, "--route", "via-b", "--tools-only", "--record", "chat@2"], env=env)
    assert refused.exit_code != 0 and "--tools-only asks no model" in refused.output
    assert all(r["action"] != EVAL_ACTION for r in list(world.platform.audit_records(ana()))[before:])  # none ran
    bad = CliRunner().invoke(app, [*base, "--route", "via-a", "--record", "chat@2", "--json"], env=env)
    assert bad.exit_code != 0 and "served by dep-a" in bad.output
    done = CliRunner().invoke(app, [*base, "--route", "via-b", "--record", "chat@2", "--json"], env=env)
    assert done.exit_code == 0, done.output
    out = json.loads(done.stdout)
    assert out["recorded"]["model"] == "chat@2" and out["end_to_end"]["deployments"] == ["dep-b"]
    shown = world.platform.registering(lambda r: r.show(ana(), "chat@2"))
    assert [e.audit_seq for e in shown.evidence] == [out["recorded"]["audit_seq"]]
    assert move(world, "chat@2", "production").gate is not None
