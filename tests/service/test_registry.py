"""The model registry through the application layer over a real store and audit log.

The attacks: a promotion whose evaluation regressed (refused when proposed, and when approved
after a worse evaluation was attached meanwhile); the maker approving their own promotion
(also with a second API key of theirs); a non-admin registering; evidence typed in rather than
run (an audit record that is not an evaluation); an evaluation on another set standing in for
production's; a retired version promoted back by an old proposal; a stage move with four-eyes
off. And the questions an auditor asks: which model was in production at a past time, and
which model answered a recorded question."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from strongroom.auth.authenticator import Authenticator
from strongroom.auth.settings import ServiceSettings
from strongroom.config import Settings
from strongroom.errors import NotFound, PermissionDenied, QueryError, StrongroomError
from strongroom.evaluate import QAItem, load_qa
from strongroom.governance.registry import Lineage, ModelEntry
from strongroom.llm.deployments import DeploymentSpec, load_retired, save_deployment
from strongroom.llm.route_config import RouteStore, parse_target
from strongroom.service import AskRequest, IngestRequest, Platform, View
from strongroom.service.approvals import Applied
from strongroom.service.registry import PROMOTE, Promotion, eval_set_sha256, promote_change
from strongroom.testing import HashEmbedder
from strongroom.testing.openai_server import FakeOpenAIServer, Reply
from strongroom.types import Principal

ADMIN = frozenset({"reader", "ingester", "admin"})
GROUPS = frozenset({"public", "research"})
ROLES = {"reader": ["r"], "admin": ["strongroom-admins"], "approver": ["strongroom-approvers"]}
T0 = datetime(2026, 3, 1, 9, tzinfo=UTC)


def ana() -> Principal:  # the maker: an admin
    return Principal("ana", GROUPS, ADMIN, "oidc")


def bo() -> Principal:  # the checker: an approver
    return Principal("bo", frozenset({"public"}), frozenset({"approver"}), "oidc")


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    platform: Platform
    clock: Clock
    items: list[QAItem]
    other: list[QAItem]


NOTE = "Rates desk note\n\nThe desk expects two cuts this year. Net interest income rose to 4,210.\n"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    files = tmp_path / "files"
    files.mkdir()
    (files / "note.txt").write_text(NOTE)
    qa = tmp_path / "qa.jsonl"
    qa.write_text(
        json.dumps({"id": "q1", "question": "How many cuts does the desk expect?", "evidence": [{"doc": "note.txt"}],
                    "facts": ["two cuts"]}) + "\n"
        + json.dumps({"id": "q2", "question": "Net interest income?", "evidence": [{"doc": "note.txt"}],
                      "facts": ["4,210"]}) + "\n"
    )  # fmt: skip
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"id": "z", "question": "Rates?", "evidence": [{"doc": "note.txt"}]}) + "\n")
    clock = Clock()
    # four-eyes OFF: registry stages still move only by approved proposals
    with Platform.open(Settings(home=tmp_path / "home", embedder="hash"), embedder=HashEmbedder(64)) as p:
        request = IngestRequest(paths=(files / "note.txt",), acl=frozenset({"research"}), published="2024-01-02")
        assert p.ingest(ana(), request).ingested == 1
        p.registry.clock = clock
        p.approvals.clock = clock
        yield World(p, clock, load_qa(qa), load_qa(other))


def entry(version: str, name: str = "chat", kind: str = "chat", binding: str = "vllm-a") -> ModelEntry:
    return ModelEntry(
        name, version, kind, "model-risk@bank", "high", binding,  # type: ignore[arg-type]
        Lineage("sec10q@v3", "git:abc123", "llama-3.1-8b"), "# Model card\nIntended use: research Q&A.",
    )  # fmt: skip


def good_eval(w: World, items: list[QAItem] | None = None) -> int:
    result, seq = w.platform.evaluate_recorded(ana(), items or w.items, 5, name="qa.jsonl")
    assert result["doc_recall_at_5"] == 1.0
    return seq


def bad_eval(w: World) -> int:  # the same questions, nothing visible: every metric drops to 0
    result, seq = w.platform.evaluate_recorded(ana(), w.items, 5, View(as_of="2023-01-01"), name="qa.jsonl")
    assert result["doc_recall_at_5"] == 0.0
    return seq


def register(w: World, version: str, *evals: int, name: str = "chat") -> None:
    w.platform.registering(lambda r: r.register(ana(), entry(version, name)))
    for seq in evals:
        w.platform.registering(lambda r, s=seq: r.attach(ana(), f"{name}@{version}", s))  # type: ignore[misc]


def propose(w: World, ref: str, stage: str, who: Principal | None = None) -> str:
    p = w.platform.approving(lambda a: a.propose(who or ana(), PROMOTE, promote_change(ref, stage), "release"))
    return p.id


def approve(w: World, pid: str) -> Applied:
    w.clock.now += timedelta(minutes=1)
    return w.platform.approving(lambda a: a.approve(bo(), pid))


def move(w: World, ref: str, stage: str) -> Promotion:
    applied = approve(w, propose(w, ref, stage))
    assert isinstance(applied.result, Promotion)
    return applied.result


def stage(w: World, ref: str) -> str:
    return w.platform.registering(lambda r: r.show(ana(), ref)).stage


def in_production(w: World, version: str, *evals: int) -> None:
    register(w, version, *evals)
    move(w, f"chat@{version}", "validated")
    move(w, f"chat@{version}", "production")


def test_register_show_and_move_through_the_stages_only_by_approval(world: World) -> None:
    seq = good_eval(world)
    register(world, "1", seq)
    shown = world.platform.registering(lambda r: r.show(bo(), "chat@1"))  # approvers see the registry
    assert shown.stage == "candidate" and shown.lineage.parent == "llama-3.1-8b" and shown.owner == "model-risk@bank"
    assert [e.audit_seq for e in shown.evidence] == [seq] and shown.evidence[0].eval_sha256 == eval_set_sha256(
        world.items
    )
    pid = propose(world, "chat@1", "validated")
    assert stage(world, "chat@1") == "candidate"  # proposed, not made
    done = approve(world, pid)
    assert done.proposal.status == "applied" and stage(world, "chat@1") == "validated"
    promoted = move(world, "chat@1", "production")
    assert promoted.gate is not None and promoted.gate.accepted and stage(world, "chat@1") == "production"
    history = [(h.stage, h.by) for h in world.platform.registering(lambda r: r.show(ana(), "chat@1")).history]
    assert history == [("candidate", "ana"), ("validated", "ana"), ("production", "ana")]


def test_there_is_no_direct_stage_move(world: World) -> None:
    register(world, "1", good_eval(world))
    assert not hasattr(world.platform.registry, "promote") and not hasattr(world.platform.registry, "move")
    with pytest.raises(QueryError, match="candidate -> validated"):  # never straight to production
        propose(world, "chat@1", "production")
    with pytest.raises(QueryError, match="stage"):
        propose(world, "chat@1", "live")
    with pytest.raises(QueryError, match=r"name.*version.*stage"):  # nothing smuggled in the change
        world.platform.approving(
            lambda a: a.propose(ana(), PROMOTE, {"name": "chat", "version": "1", "stage": "validated", "x": 1})
        )


def test_a_regressed_promotion_is_refused_when_proposed(world: World) -> None:
    good, bad = good_eval(world), bad_eval(world)
    in_production(world, "1", good)
    register(world, "2", bad)
    move(world, "chat@2", "validated")
    with pytest.raises(
        PermissionDenied, match=r"release gate refuses chat@2: .*doc_recall_at_5 on qa\.jsonl regressed: 0\.0"
    ):
        propose(world, "chat@2", "production")
    assert stage(world, "chat@2") == "validated" and stage(world, "chat@1") == "production"
    refused = [r for r in world.platform.audit_records(ana()) if r["action"] == "approvals.propose"]
    assert refused[-1]["outcome"] == "denied" and "release gate" in str(refused[-1]["detail"])


def test_a_regression_attached_after_the_proposal_is_refused_when_approved(world: World) -> None:
    good = good_eval(world)
    in_production(world, "1", good)
    register(world, "2", good_eval(world))
    move(world, "chat@2", "validated")
    pid = propose(world, "chat@2", "production")  # passes the gate now
    world.clock.now += timedelta(minutes=5)
    world.platform.registering(lambda r: r.attach(ana(), "chat@2", bad_eval(world)))  # the newest evaluation
    with pytest.raises(PermissionDenied, match="release gate"):
        approve(world, pid)
    assert world.platform.approving(lambda a: a.show(bo(), pid)).status == "failed"
    assert stage(world, "chat@2") == "validated" and stage(world, "chat@1") == "production"


def test_evidence_on_another_evaluation_set_does_not_count(world: World) -> None:
    in_production(world, "1", good_eval(world))
    register(world, "2", good_eval(world, world.other))  # perfect, but on other questions
    move(world, "chat@2", "validated")
    with pytest.raises(PermissionDenied, match=r"no evaluation on production's set qa\.jsonl"):
        propose(world, "chat@2", "production")
    with pytest.raises(PermissionDenied, match="no evaluation attached"):  # none at all: refused, even first
        register(world, "x1", name="other")
        move(world, "other@x1", "validated")
        propose(world, "other@x1", "production")


def test_the_maker_cannot_approve_their_own_promotion_not_even_with_a_second_key(world: World) -> None:
    register(world, "1", good_eval(world))
    keys = world.platform.keys
    until = datetime.now(UTC) + timedelta(days=1)
    _, maker_secret = keys.create("ana", frozenset({"research", "strongroom-admins"}), until)
    _, checker_secret = keys.create("ana", frozenset({"research", "strongroom-approvers"}), until)
    auth = Authenticator(ServiceSettings(role_groups=ROLES), keys, None)
    maker = auth.authenticate(f"Bearer {maker_secret}").principal
    second = auth.authenticate(f"Bearer {checker_secret}").principal
    pid = propose(world, "chat@1", "validated", maker)
    for who in (second, Principal("ana", GROUPS, ADMIN | {"approver"}, "oidc")):
        with pytest.raises(PermissionDenied, match="another person"):
            world.platform.approving(lambda a, w=who: a.approve(w, pid))  # type: ignore[misc]
    assert stage(world, "chat@1") == "candidate"
    assert approve(world, pid).proposal.status == "applied" and stage(world, "chat@1") == "validated"


def test_only_admins_register_and_only_admins_and_approvers_read(world: World) -> None:
    reader = Principal("dee", GROUPS, frozenset({"reader", "ingester"}), "oidc")
    for who in (reader, bo()):
        with pytest.raises(PermissionDenied, match="admin"):
            world.platform.registering(lambda r, w=who: r.register(w, entry("1")))  # type: ignore[misc]
    with pytest.raises(NotFound):
        world.platform.registering(lambda r: r.show(ana(), "chat@1"))
    register(world, "1")
    with pytest.raises(PermissionDenied):
        world.platform.registering(lambda r: r.entries(reader))
    with pytest.raises(PermissionDenied):
        world.platform.registering(lambda r: r.attach(bo(), "chat@1", good_eval(world)))
    with pytest.raises(PermissionDenied):  # proposing a move needs admin
        propose(world, "chat@1", "validated", bo())
    assert [e.ref for e in world.platform.registering(lambda r: r.entries(bo()))] == ["chat@1"]
    with pytest.raises(StrongroomError, match="registered already"):
        register(world, "1")


def test_bad_registrations_are_refused(world: World) -> None:
    def refused(e: ModelEntry) -> None:
        with pytest.raises(QueryError):
            world.platform.registering(lambda r: r.register(ana(), e))

    base = entry("1")
    refused(replace(base, name="../etc"))
    refused(replace(base, version=""))
    refused(replace(base, kind="oracle"))  # type: ignore[arg-type]
    refused(replace(base, risk_tier="none"))  # type: ignore[arg-type]
    refused(replace(base, owner="  "))
    refused(replace(base, card="x" * 70_000))
    refused(replace(base, lineage=Lineage(data="a\x00b")))
    assert world.platform.registering(lambda r: r.entries(ana())) == []


def test_evidence_cannot_be_typed_in(world: World) -> None:
    register(world, "1")
    ask_seq = world.platform.ask_recorded(ana(), AskRequest(question="How many cuts?"))[1]
    for seq in (ask_seq, 0, -3, 10_000):  # an ask is not an evaluation; no record at all
        with pytest.raises(QueryError, match="not a successful evaluation"):
            world.platform.registering(lambda r, s=seq: r.attach(ana(), "chat@1", s))  # type: ignore[misc]
    seq = good_eval(world)
    world.platform.registering(lambda r: r.attach(ana(), "chat@1", seq))
    with pytest.raises(QueryError, match="already"):
        world.platform.registering(lambda r: r.attach(ana(), "chat@1", seq))


def test_a_retired_version_is_not_promoted_back_by_an_old_proposal(world: World) -> None:
    good = good_eval(world)
    register(world, "1", good)
    move(world, "chat@1", "validated")
    old = propose(world, "chat@1", "production")
    approve(world, old)
    in_production(world, "2", good)  # v2 replaces v1, which is retired in the same step
    assert stage(world, "chat@1") == "retired" and stage(world, "chat@2") == "production"
    with pytest.raises(QueryError, match="applied, not waiting"):
        approve(world, old)
    with pytest.raises(QueryError, match="retired"):
        propose(world, "chat@1", "production")
    move(world, "chat@1", "validated")  # back only by new proposals, re-validated first, then gated
    assert move(world, "chat@1", "production").moved == ("chat@1", "chat@2")
    assert stage(world, "chat@2") == "retired"


def test_which_gives_the_entries_in_force_at_a_past_time(world: World) -> None:
    good = good_eval(world)
    world.clock.now = datetime(2026, 3, 2, 9, tzinfo=UTC)
    in_production(world, "1", good)
    world.clock.now = datetime(2026, 3, 5, 9, tzinfo=UTC)
    in_production(world, "2", good)

    def which(at: str | None) -> list[str]:
        return [e.ref for e in world.platform.registering(lambda r: r.which(bo(), at))]

    assert which("2026-03-01") == []
    assert which("2026-03-03") == ["chat@1"]
    assert which("2026-03-05T09:00:30Z") == ["chat@1"]  # before v2's approval (09:01)
    assert which("2026-03-05") == ["chat@2"]
    assert which(None) == ["chat@2"]
    with pytest.raises(QueryError, match="--at"):
        which("yesterday")


def test_resolve_maps_an_answers_record_to_the_models_then(world: World) -> None:
    ask_seq = world.platform.ask_recorded(ana(), AskRequest(question="How many cuts does the desk expect?"))[1]
    generator = str(next(r for r in world.platform.audit_records(ana()) if r["seq"] == ask_seq)["generator"])
    good = good_eval(world)
    world.platform.registering(lambda r: r.register(ana(), entry("1", binding=generator)))
    world.platform.registering(lambda r: r.register(ana(), entry("e1", "minilm", "embedder", "hash-64")))
    world.clock.now = datetime.now(UTC) - timedelta(hours=1)  # in force before the answer was written
    for ref in ("chat@1", "minilm@e1"):
        world.platform.registering(lambda r, x=ref: r.attach(ana(), x, good))  # type: ignore[misc]
        move(world, ref, "validated")
        move(world, ref, "production")
    found = world.platform.registering(lambda r: r.resolve(ana(), ask_seq))
    assert found.generator == generator and [(e.ref, s) for e, s in found.models] == [("chat@1", "production")]
    assert [e.ref for e in found.embedders] == ["minilm@e1"] and found.store_embedder == "hash-64"
    assert [(e.ref, s) for e, s in found.store_embedder_entries] == [("minilm@e1", "production")]
    with pytest.raises(NotFound):
        world.platform.registering(lambda r: r.resolve(ana(), 99_999))
    with pytest.raises(PermissionDenied):  # reading audit records is for admins
        world.platform.registering(lambda r: r.resolve(bo(), ask_seq))


def test_every_step_is_audited(world: World) -> None:
    register(world, "1", good_eval(world))
    move(world, "chat@1", "validated")
    with pytest.raises(PermissionDenied):
        world.platform.registering(lambda r: r.register(bo(), entry("2")))
    actions = [(r["action"], r["outcome"]) for r in world.platform.audit_records(ana())]
    for expected in [("registry.register", "ok"), ("registry.evidence", "ok"), ("registry.promote", "ok"),
                     ("approvals.approve", "ok"), ("registry.register", "denied")]:  # fmt: skip
        assert expected in actions
    evals = [r for r in world.platform.audit_records(ana()) if r["action"] == "eval"]
    assert evals and evals[0]["filters"]["eval_sha256"] == eval_set_sha256(world.items)  # type: ignore[index]
    kept = json.dumps(evals[0])
    assert "cuts" not in kept and "4,210" not in kept  # the metrics and the hash, never a question or fact


def test_a_second_approved_move_of_the_same_entry_fails_and_changes_nothing(world: World) -> None:
    register(world, "1", good_eval(world))
    first, second = propose(world, "chat@1", "validated"), propose(world, "chat@1", "validated")
    assert approve(world, first).proposal.status == "applied"
    with pytest.raises(QueryError, match="is validated; it cannot move to validated"):
        approve(world, second)
    assert world.platform.approving(lambda a: a.show(bo(), second)).status == "failed"
    history = world.platform.registering(lambda r: r.show(ana(), "chat@1")).history
    assert [h.stage for h in history] == ["candidate", "validated"] and history[-1].proposal_id == first


def test_break_glass_still_passes_the_gate_and_is_flagged(world: World) -> None:
    good, bad = good_eval(world), bad_eval(world)
    in_production(world, "1", good)
    register(world, "2", bad)
    move(world, "chat@2", "validated")
    with pytest.raises(PermissionDenied, match="release gate"):
        world.platform.approving(
            lambda a: a.break_glass(ana(), PROMOTE, promote_change("chat@2", "production"), "incident 7")
        )
    assert stage(world, "chat@2") == "validated"
    glass = world.platform.approving(  # an emergency retirement: at once, flagged until an approver reviews it
        lambda a: a.break_glass(ana(), PROMOTE, promote_change("chat@1", "retired"), "incident 7: bad answers")
    )
    assert glass.proposal.break_glass and stage(world, "chat@1") == "retired"
    assert world.platform.registering(lambda r: r.show(ana(), "chat@1")).history[-1].proposal_id == "break-glass"
    assert [p.id for p in world.platform.approving(lambda a: a.unreviewed(bo()))] == [glass.proposal.id]


def test_a_deployment_whose_model_is_retired_gets_no_more_requests(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", embedder="hash", route_groups={"chat": ["research"]})
    (tmp_path / "note.txt").write_text(NOTE)
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"id": "q", "question": "How many cuts?", "evidence": [{"doc": "note.txt"}]}) + "\n")
    with (
        FakeOpenAIServer(Reply.stream("From the old model [1].")) as old,
        FakeOpenAIServer(Reply.stream("From the new model [1].")) as new,
        Platform.open(settings, embedder=HashEmbedder(64)) as p,
    ):
        request = IngestRequest(paths=(tmp_path / "note.txt",), acl=frozenset({"research"}), published="2024-01-02")
        assert p.ingest(ana(), request).ingested == 1
        for name, server in (("old", old), ("new", new)):
            save_deployment(
                settings.home,
                name,
                DeploymentSpec(backend="openai-compatible", url=server.url, model="m", clearance="restricted"),
            )
        RouteStore(settings.home).set_route("chat", [parse_target("old:100"), parse_target("new")])
        w = World(p, Clock(), load_qa(qa), [])
        p.registry.clock = p.approvals.clock = w.clock
        good = good_eval(w)
        for version, binding in (("1", "old"), ("2", "new")):
            p.registering(lambda r, v=version, b=binding: r.register(ana(), entry(v, binding=b)))  # type: ignore[misc]
            p.registering(lambda r, v=version: r.attach(ana(), f"chat@{v}", good))  # type: ignore[misc]
        move(w, "chat@1", "validated")
        move(w, "chat@1", "production")
        ask = AskRequest(question="How many cuts does the desk expect?", model="chat")
        first = p.ask(ana(), ask)
        assert first.metadata["deployment"] == "old" and len(old.requests) == 1, first.metadata
        move(w, "chat@2", "validated")
        move(w, "chat@2", "production")  # retires chat@1, and with it the deployment it is bound to
        assert load_retired(settings.home) == {"old"}
        answer = p.ask(ana(), ask)
        assert answer.metadata["deployment"] == "new" and len(old.requests) == 1  # old got nothing more
        move(w, "chat@1", "validated")  # brought back only by an approved proposal
        assert load_retired(settings.home) == frozenset()
