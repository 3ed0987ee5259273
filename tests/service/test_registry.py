"""The model registry through the application layer over a real store and audit log.

The attacks: a promotion whose evaluation regressed (refused when proposed, and when approved
after production was evaluated meanwhile): a real regression, a worse embedder's run in the
home's own log (:func:`switched_home`: the store re-embedded from a 1-dimension hash embedder
to a 64-dimension one, with its audit chain); production's own run attached to a candidate;
a run of another embedder, or under other clocks or groups, standing in for the candidate's;
a retrieval run attached to a chat model; the maker approving their own promotion
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
from strongroom.service.deployment import reembed_deployment
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
WORDS = ("rates", "credit", "euro", "banks", "oil", "gold", "bonds", "yield")


@dataclass(frozen=True)
class Switched:
    """A home whose store was re-embedded (with its audit chain) from ``hash-1`` to ``hash-64``:
    ``old_run`` is the audit seq of the ``hash-1`` store's evaluation on ``qa`` (recall 0.25:
    one dimension cannot tell eight notes apart), now in this home's own log."""

    settings: Settings
    qa: Path
    old_run: int


def switched_home(tmp_path: Path) -> Switched:
    """Eight notes that share every word, each repeating its own; a question per note."""
    files = tmp_path / "notes"
    files.mkdir()
    lines = []
    for i, word in enumerate(WORDS):
        others = " ".join(w for w in WORDS if w != word)
        (files / f"d{i}.txt").write_text(f"Note {i}. {' '.join([word] * 6)} {others}.\n")
        lines.append(
            json.dumps({"id": f"q{i}", "question": f"{word} {word} {word}?", "evidence": [{"doc": f"d{i}.txt"}]})
        )
    qa = tmp_path / "notes.jsonl"
    qa.write_text("\n".join(lines) + "\n")
    old = Settings(home=tmp_path / "old", embedder="hash")
    with Platform.open(old, embedder=HashEmbedder(1)) as p:
        request = IngestRequest(
            paths=tuple(sorted(files.iterdir())), acl=frozenset({"research"}), published="2024-01-02"
        )
        assert p.ingest(ana(), request).ingested == len(WORDS)
        result, seq = p.evaluate_recorded(ana(), load_qa(qa), 1, name="notes.jsonl")
        assert result["doc_recall_at_1"] == 0.25
    done = reembed_deployment(old, tmp_path / "new", embedder="hash")  # HashEmbedder(64)
    assert done.ok and done.audit_chain_ok and done.model_id == "hash-64"
    return Switched(Settings(home=tmp_path / "new", embedder="hash"), qa, seq)


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


def entry(version: str, name: str = "emb", kind: str = "embedder", binding: str = "hash-64") -> ModelEntry:
    return ModelEntry(
        name, version, kind, "model-risk@bank", "high", binding,  # type: ignore[arg-type]
        Lineage("sec10q@v3", "git:abc123", "llama-3.1-8b"), "# Model card\nIntended use: research Q&A.",
    )  # fmt: skip


def good_eval(w: World, items: list[QAItem] | None = None) -> int:
    result, seq = w.platform.evaluate_recorded(ana(), items or w.items, 5, name="qa.jsonl")
    assert result["doc_recall_at_5"] == 1.0
    return seq


def register(w: World, version: str, *evals: int, name: str = "emb", binding: str = "hash-64") -> None:
    w.platform.registering(lambda r: r.register(ana(), entry(version, name, binding=binding)))
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


def in_production(w: World, version: str, *evals: int, binding: str = "hash-64") -> None:
    register(w, version, *evals, binding=binding)
    move(w, f"emb@{version}", "validated")
    move(w, f"emb@{version}", "production")


@pytest.fixture
def switched(tmp_path: Path) -> Iterator[tuple[World, int, int]]:
    """The switched home as a World; (world, production's hash-64 run, the hash-1 run)."""
    home = switched_home(tmp_path)
    with Platform.open(home.settings, embedder=HashEmbedder(64)) as p:
        w = World(p, Clock(), load_qa(home.qa), [])
        p.registry.clock = p.approvals.clock = w.clock
        result, seq = p.evaluate_recorded(ana(), w.items, 1, name="notes.jsonl")
        assert result["doc_recall_at_1"] == 1.0
        yield w, seq, home.old_run


def test_register_show_and_move_through_the_stages_only_by_approval(world: World) -> None:
    seq = good_eval(world)
    register(world, "1", seq)
    shown = world.platform.registering(lambda r: r.show(bo(), "emb@1"))  # approvers see the registry
    assert shown.stage == "candidate" and shown.lineage.parent == "llama-3.1-8b" and shown.owner == "model-risk@bank"
    assert [e.audit_seq for e in shown.evidence] == [seq] and shown.evidence[0].eval_sha256 == eval_set_sha256(
        world.items
    )
    pid = propose(world, "emb@1", "validated")
    assert stage(world, "emb@1") == "candidate"  # proposed, not made
    done = approve(world, pid)
    assert done.proposal.status == "applied" and stage(world, "emb@1") == "validated"
    promoted = move(world, "emb@1", "production")
    assert promoted.gate is not None and promoted.gate.accepted and stage(world, "emb@1") == "production"
    history = [(h.stage, h.by) for h in world.platform.registering(lambda r: r.show(ana(), "emb@1")).history]
    assert history == [("candidate", "ana"), ("validated", "ana"), ("production", "ana")]


def test_the_evaluation_record_names_its_subject(world: World) -> None:
    seq = world.platform.evaluate_recorded(ana(), world.items, 5, View(as_of="2024-06-30"), name="qa.jsonl")[1]
    record = next(r for r in world.platform.audit_records(ana()) if r["seq"] == seq)
    assert record["filters"]["subject"] == {  # type: ignore[index]
        "embedder": "hash-64", "query_encoder": "", "as_of": "2024-06-30T23:59:59.999999+00:00", "known_at": None,
        "groups": ["public", "research"],
    }  # fmt: skip
    future = world.platform.evaluate_recorded(ana(), world.items, 5, View(known_at="2999-01-01"), name="qa.jsonl")[1]
    record = next(r for r in world.platform.audit_records(ana()) if r["seq"] == future)
    assert record["filters"]["subject"]["known_at"] is None  # type: ignore[index]  # the future is now


def test_there_is_no_direct_stage_move(world: World) -> None:
    register(world, "1", good_eval(world))
    assert not hasattr(world.platform.registry, "promote") and not hasattr(world.platform.registry, "move")
    with pytest.raises(QueryError, match="candidate -> validated"):  # never straight to production
        propose(world, "emb@1", "production")
    with pytest.raises(QueryError, match="stage"):
        propose(world, "emb@1", "live")
    with pytest.raises(QueryError, match=r"name.*version.*stage"):  # nothing smuggled in the change
        world.platform.approving(
            lambda a: a.propose(ana(), PROMOTE, {"name": "emb", "version": "1", "stage": "validated", "x": 1})
        )


def test_a_regressed_promotion_is_refused_when_proposed(switched: tuple[World, int, int]) -> None:
    """A real regression: the old 1-dimension embedder's run, against production's 64."""
    world, good, old = switched
    in_production(world, "1", good)
    register(world, "0", old, binding="hash-1")
    move(world, "emb@0", "validated")
    with pytest.raises(
        PermissionDenied, match=r"release gate refuses emb@0: .*doc_recall_at_1 on notes\.jsonl regressed: 0\.25"
    ):
        propose(world, "emb@0", "production")
    assert stage(world, "emb@0") == "validated" and stage(world, "emb@1") == "production"
    refused = [r for r in world.platform.audit_records(ana()) if r["action"] == "approvals.propose"]
    assert refused[-1]["outcome"] == "denied" and "release gate" in str(refused[-1]["detail"])


def test_a_regression_found_after_the_proposal_is_refused_when_approved(switched: tuple[World, int, int]) -> None:
    world, good, old = switched
    register(world, "0", old, binding="hash-1")
    move(world, "emb@0", "validated")
    pid = propose(world, "emb@0", "production")  # nothing in production: nothing to regress against yet
    world.clock.now += timedelta(minutes=5)
    in_production(world, "1", good)  # meanwhile the better embedder went into production
    with pytest.raises(PermissionDenied, match="release gate"):
        approve(world, pid)
    assert world.platform.approving(lambda a: a.show(bo(), pid)).status == "failed"
    assert stage(world, "emb@0") == "validated" and stage(world, "emb@1") == "production"


def test_a_run_of_another_embedder_is_not_the_candidates(switched: tuple[World, int, int]) -> None:
    world, good, old = switched
    register(world, "1")  # bound to hash-64
    with pytest.raises(QueryError, match=r"evaluated the embedder hash-1, not emb@1 \(bound to hash-64\)"):
        world.platform.registering(lambda r: r.attach(ana(), "emb@1", old))
    register(world, "0", binding="hash-1")
    with pytest.raises(QueryError, match="evaluated the embedder hash-64, not emb@0"):  # the better one's run
        world.platform.registering(lambda r: r.attach(ana(), "emb@0", good))
    register(world, "x", binding="")
    with pytest.raises(QueryError, match="bound to nothing"):
        world.platform.registering(lambda r: r.attach(ana(), "emb@x", good))
    assert [e.evidence for e in world.platform.registering(lambda r: r.entries(ana()))] == [(), (), ()]


def test_productions_own_run_attached_to_a_candidate_is_refused(world: World) -> None:
    good = good_eval(world)
    in_production(world, "1", good)
    register(world, "2")  # the same binding: still its own run, not production's
    with pytest.raises(QueryError, match=r"evaluation \d+ is evidence of emb@1 already"):
        world.platform.registering(lambda r: r.attach(ana(), "emb@2", good))
    move(world, "emb@2", "validated")
    with pytest.raises(PermissionDenied, match="no evaluation attached"):
        propose(world, "emb@2", "production")


def test_a_run_under_other_clocks_or_groups_does_not_count(world: World) -> None:
    in_production(world, "1", good_eval(world))
    narrow = Principal("ana", frozenset({"research"}), ADMIN, "oidc")  # fewer groups, the same person
    learned = datetime.now(UTC).isoformat()  # after the note was ingested: the same documents, another clock
    for who, view in ((ana(), View(as_of="2024-06-30")), (ana(), View(known_at=learned)), (narrow, View())):
        result, seq = world.platform.evaluate_recorded(who, world.items, 5, view, name="qa.jsonl")
        assert result["doc_recall_at_5"] == 1.0  # as good as production's, but not the same measurement
        register(world, f"c{seq}", seq)
        move(world, f"emb@c{seq}", "validated")
        with pytest.raises(PermissionDenied, match=r"no evaluation on production's set qa\.jsonl .*same clocks"):
            propose(world, f"emb@c{seq}", "production")


def test_a_retrieval_run_is_not_evidence_for_a_chat_model(world: World) -> None:
    world.platform.registering(lambda r: r.register(ana(), entry("1", "chat", "chat", "vllm-a")))
    world.platform.registering(lambda r: r.register(ana(), entry("1", "rerank", "reranker", "hash-64")))
    for ref, kind in (("chat@1", "chat"), ("rerank@1", "reranker")):
        with pytest.raises(QueryError, match=f"measures the embedder hash-64, not the {kind} model {ref}"):
            world.platform.registering(lambda r, x=ref: r.attach(ana(), x, good_eval(world)))  # type: ignore[misc]


def test_an_evaluation_recorded_before_runs_named_their_subject_is_refused(world: World) -> None:
    """A record as the platform wrote it before (no ``subject``): written through the same
    audit log, as an ``eval`` that went well."""
    register(world, "1")
    metrics = {"k": 5, "doc_recall_at_5": 1.0}
    fields: dict[str, object] = {
        "target": "qa.jsonl",
        "filters": {"eval_sha256": eval_set_sha256(world.items), "metrics": metrics},
    }
    old = world.platform.ops.run_audited(ana(), "eval", fields, lambda: (None, {}))
    (seq,) = world.platform.audit.append_many(list(old.events))
    with pytest.raises(QueryError, match="does not name its subject"):
        world.platform.registering(lambda r: r.attach(ana(), "emb@1", seq))


def test_evidence_on_another_evaluation_set_does_not_count(world: World) -> None:
    in_production(world, "1", good_eval(world))
    register(world, "2", good_eval(world, world.other))  # perfect, but on other questions
    move(world, "emb@2", "validated")
    with pytest.raises(PermissionDenied, match=r"no evaluation on production's set qa\.jsonl"):
        propose(world, "emb@2", "production")
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
    pid = propose(world, "emb@1", "validated", maker)
    for who in (second, Principal("ana", GROUPS, ADMIN | {"approver"}, "oidc")):
        with pytest.raises(PermissionDenied, match="another person"):
            world.platform.approving(lambda a, w=who: a.approve(w, pid))  # type: ignore[misc]
    assert stage(world, "emb@1") == "candidate"
    assert approve(world, pid).proposal.status == "applied" and stage(world, "emb@1") == "validated"


def test_only_admins_register_and_only_admins_and_approvers_read(world: World) -> None:
    reader = Principal("dee", GROUPS, frozenset({"reader", "ingester"}), "oidc")
    for who in (reader, bo()):
        with pytest.raises(PermissionDenied, match="admin"):
            world.platform.registering(lambda r, w=who: r.register(w, entry("1")))  # type: ignore[misc]
    with pytest.raises(NotFound):
        world.platform.registering(lambda r: r.show(ana(), "emb@1"))
    register(world, "1")
    with pytest.raises(PermissionDenied):
        world.platform.registering(lambda r: r.entries(reader))
    with pytest.raises(PermissionDenied):
        world.platform.registering(lambda r: r.attach(bo(), "emb@1", good_eval(world)))
    with pytest.raises(PermissionDenied):  # proposing a move needs admin
        propose(world, "emb@1", "validated", bo())
    assert [e.ref for e in world.platform.registering(lambda r: r.entries(bo()))] == ["emb@1"]
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
            world.platform.registering(lambda r, s=seq: r.attach(ana(), "emb@1", s))  # type: ignore[misc]
    seq = good_eval(world)
    world.platform.registering(lambda r: r.attach(ana(), "emb@1", seq))
    with pytest.raises(QueryError, match="already"):
        world.platform.registering(lambda r: r.attach(ana(), "emb@1", seq))


def test_a_retired_version_is_not_promoted_back_by_an_old_proposal(world: World) -> None:
    good = good_eval(world)
    register(world, "1", good)
    move(world, "emb@1", "validated")
    old = propose(world, "emb@1", "production")
    approve(world, old)
    in_production(world, "2", good_eval(world))  # v2 replaces v1, which is retired in the same step
    assert stage(world, "emb@1") == "retired" and stage(world, "emb@2") == "production"
    with pytest.raises(QueryError, match="applied, not waiting"):
        approve(world, old)
    with pytest.raises(QueryError, match="retired"):
        propose(world, "emb@1", "production")
    move(world, "emb@1", "validated")  # back only by new proposals, re-validated first, then gated
    assert move(world, "emb@1", "production").moved == ("emb@1", "emb@2")
    assert stage(world, "emb@2") == "retired"


def test_which_gives_the_entries_in_force_at_a_past_time(world: World) -> None:
    good = good_eval(world)
    world.clock.now = datetime(2026, 3, 2, 9, tzinfo=UTC)
    in_production(world, "1", good)
    world.clock.now = datetime(2026, 3, 5, 9, tzinfo=UTC)
    in_production(world, "2", good_eval(world))

    def which(at: str | None) -> list[str]:
        return [e.ref for e in world.platform.registering(lambda r: r.which(bo(), at))]

    assert which("2026-03-01") == []
    assert which("2026-03-03") == ["emb@1"]
    assert which("2026-03-05T09:00:30Z") == ["emb@1"]  # before v2's approval (09:01)
    assert which("2026-03-05") == ["emb@2"]
    assert which(None) == ["emb@2"]
    with pytest.raises(QueryError, match="--at"):
        which("yesterday")


def test_resolve_maps_an_answers_record_to_the_models_then(world: World) -> None:
    ask_seq = world.platform.ask_recorded(ana(), AskRequest(question="How many cuts does the desk expect?"))[1]
    generator = str(next(r for r in world.platform.audit_records(ana()) if r["seq"] == ask_seq)["generator"])
    good = good_eval(world)
    world.platform.registering(lambda r: r.register(ana(), entry("1", "chat", "chat", generator)))
    world.platform.registering(lambda r: r.register(ana(), entry("e1", "minilm", "embedder", "hash-64")))
    world.clock.now = datetime.now(UTC) - timedelta(hours=1)  # in force before the answer was written
    world.platform.registering(lambda r: r.attach(ana(), "minilm@e1", good))
    for ref in ("chat@1", "minilm@e1"):
        move(world, ref, "validated")
    move(world, "minilm@e1", "production")  # a chat model has no evidence for the gate (yet): validated only
    found = world.platform.registering(lambda r: r.resolve(ana(), ask_seq))
    assert found.generator == generator and [(e.ref, s) for e, s in found.models] == [("chat@1", "validated")]
    assert [e.ref for e in found.embedders] == ["minilm@e1"] and found.store_embedder == "hash-64"
    assert [(e.ref, s) for e, s in found.store_embedder_entries] == [("minilm@e1", "production")]
    with pytest.raises(NotFound):
        world.platform.registering(lambda r: r.resolve(ana(), 99_999))
    with pytest.raises(PermissionDenied):  # reading audit records is for admins
        world.platform.registering(lambda r: r.resolve(bo(), ask_seq))


def test_every_step_is_audited(world: World) -> None:
    register(world, "1", good_eval(world))
    move(world, "emb@1", "validated")
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
    first, second = propose(world, "emb@1", "validated"), propose(world, "emb@1", "validated")
    assert approve(world, first).proposal.status == "applied"
    with pytest.raises(QueryError, match="is validated; it cannot move to validated"):
        approve(world, second)
    assert world.platform.approving(lambda a: a.show(bo(), second)).status == "failed"
    history = world.platform.registering(lambda r: r.show(ana(), "emb@1")).history
    assert [h.stage for h in history] == ["candidate", "validated"] and history[-1].proposal_id == first


def test_break_glass_still_passes_the_gate_and_is_flagged(switched: tuple[World, int, int]) -> None:
    world, good, old = switched
    in_production(world, "1", good)
    register(world, "0", old, binding="hash-1")
    move(world, "emb@0", "validated")
    with pytest.raises(PermissionDenied, match="release gate"):
        world.platform.approving(
            lambda a: a.break_glass(ana(), PROMOTE, promote_change("emb@0", "production"), "incident 7")
        )
    assert stage(world, "emb@0") == "validated"
    glass = world.platform.approving(  # an emergency retirement: at once, flagged until an approver reviews it
        lambda a: a.break_glass(ana(), PROMOTE, promote_change("emb@1", "retired"), "incident 7: bad answers")
    )
    assert glass.proposal.break_glass and stage(world, "emb@1") == "retired"
    assert world.platform.registering(lambda r: r.show(ana(), "emb@1")).history[-1].proposal_id == "break-glass"
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
        for version, binding in (("1", "old"), ("2", "new")):
            p.registering(lambda r, v=version, b=binding: r.register(ana(), entry(v, "chat", "chat", b)))  # type: ignore[misc]
            move(w, f"chat@{version}", "validated")  # a chat model has no gate evidence (yet): validated
        ask = AskRequest(question="How many cuts does the desk expect?", model="chat")
        first = p.ask(ana(), ask)
        assert first.metadata["deployment"] == "old" and len(old.requests) == 1, first.metadata
        move(w, "chat@1", "retired")  # and with it the deployment it is bound to
        assert load_retired(settings.home) == {"old"}
        answer = p.ask(ana(), ask)
        assert answer.metadata["deployment"] == "new" and len(old.requests) == 1  # old got nothing more
        move(w, "chat@1", "validated")  # brought back only by an approved proposal
        assert load_retired(settings.home) == frozenset()
