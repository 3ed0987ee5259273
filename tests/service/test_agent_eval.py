"""The research agent's evaluation (issue 19, deliverable 5): the synthetic set loaded through
the application layer at its history's instants (``DatasetLoad.loaded_at``), tool-level
accuracy with the gold plans, and end-to-end runs against a scripted OpenAI-compatible
model over real HTTP (an "oracle" that replays each gold plan as tool calls), scored.

The oracle is a protocol test: it proves that the agent loop, tool calling over HTTP,
citations and the scoring work together; it says nothing of a real model's quality.
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
from strongroom.data.synthetic import MANIFEST, generate_market_data, generate_questions, read_synthetic_set
from strongroom.errors import NotFound, PermissionDenied, QueryError, StrongroomError
from strongroom.llm.deployments import DeploymentSpec, save_deployment
from strongroom.llm.route_config import RouteStore
from strongroom.llm.routing import Target
from strongroom.service import IngestRequest, Platform
from strongroom.service.agent_eval import EVAL_ACTION, evaluate, evaluate_agent, evaluate_plans
from strongroom.service.datasets import DatasetLoad, DatasetQuery
from strongroom.service.synthetic_load import SyntheticLoad, load_synthetic_set
from strongroom.testing import HashEmbedder
from strongroom.testing.agent_oracle import OracleModel
from strongroom.testing.openai_server import FakeOpenAIServer, Reply, Responder
from strongroom.types import Principal

ROUTE = "oracle"
ADMIN = Principal("evaluator", frozenset({"public", "desk", "compliance"}), frozenset({"reader", "ingester", "admin"}))
SEC10Q = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "sec10q" / "docs"


def settings(home: Path) -> Settings:
    return Settings(home=home, embedder="hash", route_groups={ROUTE: ["public"]})


def open_platform(home: Path) -> Platform:
    return Platform.open(settings(home), embedder=HashEmbedder(64))


def configure_route(home: Path, url: str) -> None:
    save_deployment(
        home,
        "scripted",
        DeploymentSpec(backend="openai-compatible", url=url, model="scripted", clearance="restricted", mnpi=True),
    )
    RouteStore(home).set_route(ROUTE, [Target("scripted", 100)])


class Switch:
    """The module's one scripted model: whichever responder a test puts in."""

    def __init__(self) -> None:
        self.model: Responder = lambda body: Reply.stream("No model chosen.")

    def __call__(self, body: dict[str, Any]) -> Reply:
        return self.model(body)


@dataclass
class World:
    set_dir: Path
    questions: list[Question]
    home: Path
    platform: Platform
    loaded: SyntheticLoad
    server: FakeOpenAIServer
    switch: Switch

    @property
    def data(self) -> list[Question]:
        return [q for q in self.questions if q.needs == "data"]

    def sample(self) -> list[Question]:
        """The first data question of each kind, and every refusal."""
        seen: set[str] = set()
        out = []
        for q in self.data:
            if q.kind not in seen or q.expect == "refusal":
                seen.add(q.kind)
                out.append(q)
        return out


@pytest.fixture(scope="module")
def eval_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("set")
    data = generate_market_data(out, seed=7)
    write_questions(out / "questions.jsonl", generate_questions(data, seed=7))
    return out


@pytest.fixture(scope="module")
def world(eval_set: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home = tmp_path_factory.mktemp("home")
    switch = Switch()
    with FakeOpenAIServer(switch) as server:
        configure_route(home, server.url)
        with open_platform(home) as platform:
            loaded = load_synthetic_set(platform, ADMIN, eval_set)
            questions = read_questions(eval_set / "questions.jsonl")
            yield World(eval_set, questions, home, platform, loaded, server, switch)


def audit(platform: Platform, prefix: str) -> list[dict[str, Any]]:
    return [r for r in platform.audit_records(ADMIN) if str(r["action"]).startswith(prefix)]


# -- DatasetLoad.loaded_at --------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_loaded_at_is_an_admins_back_fill_never_in_the_future_and_in_order(tmp_path: Path) -> None:
    first = write(tmp_path / "prices.csv", "ticker,day,close\nZQXW,2023-06-29,101.25\n")
    fix = write(tmp_path / "fix.csv", "ticker,day,close\nZQXW,2023-06-29,103.75\n")
    ingester = Principal("ingo", frozenset({"research"}), frozenset({"reader", "ingester"}))
    admin = Principal("root", frozenset({"research"}), frozenset({"reader", "ingester", "admin"}))
    jan, feb = datetime(2024, 1, 6, 6, tzinfo=UTC), datetime(2024, 2, 6, 6)  # feb: no zone, so UTC

    def load(who: Principal, path: Path, when: datetime | None) -> Any:
        return p.load_dataset(
            who, DatasetLoad(path, "prices", frozenset({"research"}), "day", ("ticker",), loaded_at=when)
        )

    with open_platform(tmp_path / "home") as p:
        with pytest.raises(PermissionDenied, match="admin role"):
            load(ingester, first, jan)
        with pytest.raises(QueryError, match="in the future"):
            load(admin, first, datetime.now(UTC) + timedelta(minutes=5))
        assert p.datasets(admin) == []  # nothing was loaded by the refusals
        assert load(admin, first, jan).loaded_at == jan
        with pytest.raises(StrongroomError, match="not after"):
            load(admin, fix, jan - timedelta(days=1))  # before the load it would correct
        assert load(admin, fix, feb).loaded_at == feb.replace(tzinfo=UTC)
        sql = "SELECT close FROM prices"
        before = p.query_datasets(admin, DatasetQuery(sql=sql, known_at="2024-01-31"))
        after = p.query_datasets(admin, DatasetQuery(sql=sql, known_at="2024-02-07"))
        assert [float(str(r[0])) for r in before.rows + after.rows] == [101.25, 103.75]
        loads = audit(p, "datasets.load")
        assert [r["outcome"] for r in loads] == ["denied", "error", "ok", "error", "ok"]
        assert loads[2]["filters"]["loaded_at"] == jan.isoformat()


def test_cli_data_load_takes_loaded_at(tmp_path: Path) -> None:
    csv = write(tmp_path / "rates.csv", "curve,day,rate\nSOFR,2023-06-29,5.06\n")
    env = {"STRONGROOM_HOME": str(tmp_path / "home"), "STRONGROOM_EMBEDDER": "hash"}
    args = ["data", "load", str(csv), "--dataset", "rates", "--acl", "public", "--valid-time-column", "day", "--json"]
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert CliRunner().invoke(app, [*args, "--loaded-at", future], env=env).exit_code == 2
    assert CliRunner().invoke(app, [*args, "--loaded-at", "last tuesday"], env=env).exit_code == 2
    no_admin = {**env, "STRONGROOM_CLI_ROLES": '["reader", "ingester"]'}
    refused = CliRunner().invoke(app, [*args, "--loaded-at", "2024-01-06T06:00:00Z"], env=no_admin)
    assert refused.exit_code == 1 and "admin" in refused.output
    done = CliRunner().invoke(app, [*args, "--loaded-at", "2024-01-06T06:00:00Z"], env=env)
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["loaded_at"] == "2024-01-06T06:00:00+00:00"


# -- loading the set ---------------------------------------------------------------------------


def test_the_set_is_loaded_at_its_history_and_loading_it_again_changes_nothing(world: World) -> None:
    data = read_synthetic_set(world.set_dir)
    assert [(f.dataset, f.path, f.loaded_at, f.status) for f in world.loaded.files[: len(data.loads)]] == [
        (load.dataset, load.path, load.loaded_at, "loaded") for load in data.loads
    ]
    assert [(f.dataset, f.status) for f in world.loaded.files[len(data.loads) :]] == [("document", "ingested")]
    views = {v.name: v for v in world.platform.datasets(ADMIN)}
    for name, view in views.items():
        wanted = [(load.sha256, load.loaded_at, tuple(load.acl)) for load in data.loads_of(name)]
        assert [(v.sha256, v.loaded_at, tuple(sorted(v.acl))) for v in reversed(view.versions)] == wanted
    again = load_synthetic_set(world.platform, ADMIN, world.set_dir)
    assert {f.status for f in again.files} == {"present", "duplicate"}
    assert {v.name: len(v.versions) for v in world.platform.datasets(ADMIN)} == {
        n: len(v.versions) for n, v in views.items()
    }


def test_loading_the_set_needs_an_admin(eval_set: Path, tmp_path: Path) -> None:
    ingester = Principal("ingo", ADMIN.groups, frozenset({"reader", "ingester"}))
    with open_platform(tmp_path / "home") as p:
        with pytest.raises(PermissionDenied, match="admin"):
            load_synthetic_set(p, ingester, eval_set)
        assert p.datasets(ADMIN) == []


# -- tool-level ----------------------------------------------------------------------------------


def test_tool_level_accuracy_is_one_on_the_data_questions(world: World) -> None:
    outcomes = evaluate_plans(world.platform, ADMIN, world.data)
    assert [(o.id, o.problems) for o in outcomes if not o.passed] == []
    assert len(outcomes) == len(world.data) >= 50
    refusals = [o for o in outcomes if o.kind == "refusal"]
    assert refusals and all(o.refused == (1,) for o in refusals)  # refused, and that was right
    tools = audit(world.platform, "agent.tool.")
    assert {r["principal"] for r in tools} >= {"eval:analyst", "eval:trader", "eval:compliance"}


def test_a_loader_that_drops_the_corrections_loaded_at_fails_the_eval(eval_set: Path, tmp_path: Path) -> None:
    """Loading the corrections, late rows and revisions now (without their loaded_at) hides them
    from every question's known_at: the questions that need them fail, the others still pass."""
    data = read_synthetic_set(eval_set)
    first = min(load.loaded_at for load in data.loads)
    with open_platform(tmp_path / "home") as p:
        for load in data.loads:
            dated = load.loaded_at if load.loaded_at < first + timedelta(days=1) else None
            p.load_dataset(ADMIN, DatasetLoad(data.path(load.path), load.dataset, frozenset(load.acl),
                                              load.valid_time_column, load.key_columns, load.mode, dated))  # fmt: skip
        questions = [q for q in read_questions(eval_set / "questions.jsonl") if q.needs == "data"]
        outcomes = evaluate_plans(p, ADMIN, questions)
    failed = [o for o in outcomes if not o.passed]
    assert 0 < len(failed) < len(outcomes)
    assert {"correction", "late_row"} <= {o.kind for o in failed}
    assert all("wanted" in "; ".join(o.problems) or "failed" in "; ".join(o.problems) for o in failed)


def test_an_evaluation_reads_nothing_its_operator_may_not(world: World) -> None:
    not_admin = Principal("ana", ADMIN.groups, frozenset({"reader"}))
    public_only = Principal("pub", frozenset({"public"}), ADMIN.roles)
    with pytest.raises(PermissionDenied, match="admin"):
        evaluate_plans(world.platform, not_admin, world.data)
    with pytest.raises(PermissionDenied, match="compliance, desk"):
        evaluate_plans(world.platform, public_only, world.data)
    with pytest.raises(PermissionDenied):
        evaluate_agent(world.platform, public_only, world.data, ROUTE)
    refusals = [r for r in audit(world.platform, EVAL_ACTION) if r["outcome"] == "denied"]
    assert [r["principal"] for r in refusals] == ["ana", "pub", "pub"]


# -- end-to-end ----------------------------------------------------------------------------------


def tool_messages(server: FakeOpenAIServer) -> list[dict[str, Any]]:
    return [m for body in server.requests for m in body["messages"] if m["role"] == "tool"]


def test_the_oracle_over_http_passes_end_to_end(world: World) -> None:
    sample = world.sample()
    world.switch.model = OracleModel(sample)
    sent = len(world.server.requests)
    report = evaluate(world.platform, ADMIN, sample, route=ROUTE)
    summary = report.summary()
    agent = summary["end_to_end"]
    assert agent["failures"] == [] and agent["accuracy"] == 1.0 and summary["tool_level"]["accuracy"] == 1.0
    assert report.end_to_end is not None
    for q, run in zip(sample, report.end_to_end, strict=True):
        assert run.status == "answered" and run.tool_calls == len(q.plan) and run.steps == len(q.plan) + 1
        assert run.prompt_tokens > 0 and run.completion_tokens > 0 and run.elapsed_s > 0
    assert len(world.server.requests) - sent == sum(len(q.plan) + 1 for q in sample)  # every turn over HTTP
    assert any('"status":"error"' in m["content"] for m in tool_messages(world.server))  # refusals reached it
    assert agent["latency_s"]["p50"] <= agent["latency_s"]["p95"] <= agent["latency_s"]["max"]
    assert agent["steps"]["total"] == sum(r.steps for r in report.end_to_end)
    ends = audit(world.platform, "agent.run.end")
    assert len(ends) >= len(sample) and {r["principal"] for r in ends} >= {"eval:analyst", "eval:trader"}
    record = audit(world.platform, EVAL_ACTION)[-1]
    assert record["principal"] == ADMIN.name and record["filters"]["end_to_end"]["accuracy"] == 1.0


def test_scoring_fails_a_model_that_answers_wrongly(world: World) -> None:
    sample = world.sample()
    world.switch.model = OracleModel(sample, wrong=True)  # the same calls, every number one unit off
    runs = evaluate_agent(world.platform, ADMIN, sample, ROUTE)
    by_id = {r.id: r for r in runs}
    numeric = [q for q in sample if any(g.match == "decimal" and g.value not in ("0",) for g in q.gold)]
    assert numeric and all(not by_id[q.id].passed for q in numeric)
    assert all("is not in the answer" in " ".join(by_id[q.id].problems) for q in numeric)
    refusals = [q for q in sample if q.expect == "refusal"]
    assert refusals and all("a refusal was expected" in " ".join(by_id[q.id].problems) for q in refusals)

    gold_text = {q.question: q.answer for q in sample}

    def parrot(body: dict[str, Any]) -> Reply:  # the gold answer's numbers, read from nowhere: unsupported
        return Reply.stream(gold_text.get(body["messages"][1]["content"], ""))

    world.switch.model = parrot
    runs = evaluate_agent(world.platform, ADMIN, [q for q in numeric if q.expect == "answer"], ROUTE)
    assert runs and all(not r.passed and "not supported by the evidence" in " ".join(r.problems) for r in runs)


def test_a_route_the_questions_principals_may_not_use_is_refused_before_any_run(world: World) -> None:
    with pytest.raises(NotFound, match="not configured, or not granted"):
        evaluate_agent(world.platform, ADMIN, world.sample(), "no-such-route")


# -- the commands --------------------------------------------------------------------------------


def test_the_commands_load_the_set_and_evaluate_it(eval_set: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {
        "STRONGROOM_HOME": str(home),
        "STRONGROOM_EMBEDDER": "hash",
        "STRONGROOM_ROUTE_GROUPS": '{"oracle": ["public"]}',
    }
    everyone = ["--groups", "public,desk,compliance"]
    loaded = CliRunner().invoke(app, ["data", "load-synthetic", str(eval_set), *everyone, "--json"], env=env)
    assert loaded.exit_code == 0, loaded.output
    assert [f["status"] for f in json.loads(loaded.stdout)["files"]] == ["loaded"] * 11 + ["ingested"]
    questions = [q for q in read_questions(eval_set / "questions.jsonl") if q.needs == "data"]
    sample = [q for q in questions if q.kind == "price_move"][:2] + [q for q in questions if q.kind == "refusal"][-2:]
    assert {q.principal for q in sample} == {"analyst", "trader", "compliance"}
    write_questions(tmp_path / "q.jsonl", sample)

    tools = CliRunner().invoke(app, ["eval-agent", str(tmp_path / "q.jsonl"), *everyone], env=env)
    assert tools.exit_code == 0, tools.output
    assert "tool-level accuracy 4/4 = 1.000" in tools.stdout and "no model route given" in tools.stdout
    assert "[4/4] tools" in tools.stderr
    refused = CliRunner().invoke(app, ["eval-agent", str(tmp_path / "q.jsonl"), "--groups", "public"], env=env)
    assert refused.exit_code == 1 and "desk" in refused.output

    with FakeOpenAIServer(OracleModel(sample)) as server:
        configure_route(home, server.url)
        both = CliRunner().invoke(app, ["eval-agent", str(tmp_path / "q.jsonl"), *everyone, "--route", ROUTE, "--json"],
                                  env=env)  # fmt: skip
        only = CliRunner().invoke(app, ["eval-agent", str(tmp_path / "q.jsonl"), *everyone, "--route", ROUTE,
                                        "--tools-only", "--json"], env=env)  # fmt: skip
    assert both.exit_code == 0, both.output
    report = json.loads(both.stdout)
    assert report["end_to_end"]["accuracy"] == 1.0 and len(report["end_to_end"]["per_question"]) == 4
    assert set(report["end_to_end"]["latency_s"]) >= {"p50", "p95"} and "[4/4] agent" in both.stderr
    assert json.loads(only.stdout)["end_to_end"] is None

    broken = sample[0].record()
    broken["gold"][0]["value"] = "1.00"  # a gold the tools do not return
    (tmp_path / "broken.jsonl").write_text(json.dumps(broken) + "\n")
    failed = CliRunner().invoke(app, ["eval-agent", str(tmp_path / "broken.jsonl"), *everyone], env=env)
    assert (
        failed.exit_code == 1
        and f"tool-level FAIL {sample[0].id}" in failed.stdout
        and "wanted '1.00'" in failed.stdout
    )


# -- the whole set, with the filings -------------------------------------------------------------


@pytest.mark.slow
def test_the_whole_set_with_the_filings_scores_one_at_both_levels(eval_set: Path, tmp_path: Path) -> None:
    assert (eval_set / MANIFEST).is_file()
    questions = read_questions(eval_set / "questions.jsonl")
    filings = tuple(sorted(SEC10Q.glob("*.pdf")))
    assert len(filings) == 20
    with FakeOpenAIServer(OracleModel(questions)) as server:
        configure_route(tmp_path / "home", server.url)
        with open_platform(tmp_path / "home") as p:
            load_synthetic_set(p, ADMIN, eval_set)
            assert p.ingest(ADMIN, IngestRequest(paths=filings, acl=frozenset({"public"}))).ingested == 20
            report = evaluate(p, ADMIN, questions, route=ROUTE)
    summary = report.summary()
    assert summary["tool_level"]["failures"] == [] and summary["tool_level"]["total"] == len(questions)
    assert summary["end_to_end"]["failures"] == [] and summary["end_to_end"]["accuracy"] == 1.0
    assert {"document", "both", "injection"} <= set(summary["end_to_end"]["by_kind"])
