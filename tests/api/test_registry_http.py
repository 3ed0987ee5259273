"""The model registry over real HTTP, four-eyes OFF (a registry stage moves only by approval
anyway): only admins register; evidence is an evaluation run's audit record, never typed-in
metrics, and a run of the entry's own embedder (not another's, not one already another entry's
evidence); a promotion answers 202 with a proposal that the maker cannot approve with a second
API key or their own login; a real regression (the home re-embedded from a worse embedder, whose
run is in its log) is refused when proposed and, production evaluated after the proposal, when
approved; ``which`` answers for a past time; bad input is a 4xx."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from strongroom.config import Settings
from strongroom.evaluate import load_qa
from strongroom.service import AskRequest, Platform
from strongroom.testing import HashEmbedder
from strongroom.types import Principal
from tests.api.served import Served, maker_keys, served
from tests.auth.oidc_provider import Provider
from tests.service.test_registry import switched_home

ROLES = {"reader": ["readers"], "ingester": ["ingesters"], "admin": ["admins"], "approver": ["approvers"]}
ENTRY = {"kind": "embedder", "owner": "model-risk", "risk_tier": "high", "binding": "hash-64",
         "lineage": {"parent": "llama-3.1-8b", "data": "sec10q@v3", "code": "git:abc"}, "card": "# card"}  # fmt: skip


@dataclass
class World(Served):
    maker_key: str  # ana's key with the admin role
    second_key: str  # ana's other key, with the approver role
    good: int  # audit seqs of evaluation runs on the same questions, clocks and groups:
    good2: int  # two of the store's embedder hash-64 (recall 1.0)
    bad: int  # the one before the switch, of hash-1 (recall 0.25)
    ask: int


@pytest.fixture
def world(tmp_path: Path, provider: Provider) -> Iterator[World]:
    home = switched_home(tmp_path)
    settings: Settings = home.settings
    admin = Principal("ops", frozenset({"public", "research"}), frozenset({"reader", "ingester", "admin"}), "python")
    with Platform.open(settings, embedder=HashEmbedder(64)) as p:
        items = load_qa(home.qa)
        good = p.evaluate_recorded(admin, items, 1, name="notes.jsonl")[1]
        good2 = p.evaluate_recorded(admin, items, 1, name="notes.jsonl")[1]
        ask = p.ask_recorded(admin, AskRequest(question="What about rates?"))[1]
    maker, second = maker_keys(settings)
    with served(settings, provider, ROLES) as url:
        yield World(url, provider, maker, second, good, good2, home.old_run, ask)


def ok(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()


def register(w: World, version: str, *evals: int, binding: str = "hash-64") -> None:
    with w.client(token=w.maker_key) as ana:
        body = {"name": "emb", "version": version, **ENTRY, "binding": binding}
        ok(ana.post("/v1/registry/models", json=body), 201)
        for seq in evals:
            ok(ana.post(f"/v1/registry/models/emb@{version}/evidence", json={"audit_seq": seq}))


def promote(w: World, ref: str, stage: str) -> httpx.Response:
    with w.client(token=w.maker_key) as ana:
        return ana.post(f"/v1/registry/models/{ref}/promote", json={"stage": stage, "reason": "MRM review"})


def approve(w: World, pid: str) -> httpx.Response:
    with w.client(sub="bo", groups=("approvers",)) as bo:
        return bo.post(f"/v1/approvals/{pid}/approve")


def move(w: World, ref: str, stage: str) -> dict[str, Any]:
    pid = ok(promote(w, ref, stage), 202)["proposal"]["id"]
    return ok(approve(w, pid))  # type: ignore[no-any-return]


def test_only_admins_register_and_bad_bodies_are_refused(world: World) -> None:
    with world.client(sub="dee", groups=("readers", "ingesters", "research")) as dee:
        r = dee.post("/v1/registry/models", json={"name": "emb", "version": "1", **ENTRY})
        assert r.status_code == 403 and "admin" in r.json()["error"]["message"]
        assert dee.get("/v1/registry/models").status_code == 403
    with world.client(token=world.maker_key) as ana:
        for bad in ({"name": "../x", "version": "1"}, {"name": "emb", "version": "1", "kind": "oracle"},
                    {"name": "emb", "version": "1", "extra": True}, {"name": "emb", "version": "1", "owner": ""}):  # fmt: skip
            assert ana.post("/v1/registry/models", json={**ENTRY, **bad}).status_code == 422, bad
        assert ana.get("/v1/registry/models").json() == []
        assert ana.get("/v1/registry/models/not-a-ref").status_code == 422
        assert ana.get("/v1/registry/models/ghost@1").status_code == 404
    assert httpx.get(f"{world.url}/v1/registry/models").status_code == 401


def test_evidence_is_an_evaluation_run_never_typed_in(world: World) -> None:
    register(world, "1")
    with world.client(token=world.maker_key) as ana:
        for seq in (world.ask, 10_000):
            r = ana.post("/v1/registry/models/emb@1/evidence", json={"audit_seq": seq})
            assert r.status_code == 422 and "not a successful evaluation" in r.json()["error"]["message"]
        typed = ana.post("/v1/registry/models/emb@1/evidence", json={"audit_seq": world.good, "metrics": {"mrr": 1}})
        assert typed.status_code == 422
        shown = ok(ana.post("/v1/registry/models/emb@1/evidence", json={"audit_seq": world.good}))
    assert shown["evidence"][0]["metrics"]["doc_recall_at_1"] == 1.0
    assert shown["evidence"][0]["embedder"] == "hash-64" and shown["evidence"][0]["groups"] == ["public", "research"]


def test_evidence_is_a_run_of_the_entrys_own_model(world: World) -> None:
    register(world, "1", world.good)
    register(world, "2")
    with world.client(token=world.maker_key) as ana:
        other = ana.post("/v1/registry/models/emb@2/evidence", json={"audit_seq": world.bad})
        assert other.status_code == 422 and "evaluated the embedder hash-1" in other.json()["error"]["message"]
        theirs = ana.post("/v1/registry/models/emb@2/evidence", json={"audit_seq": world.good})
        assert theirs.status_code == 422 and "evidence of emb@1 already" in theirs.json()["error"]["message"]
        chat = {"name": "chat", "version": "1", **ENTRY, "kind": "chat", "binding": "vllm-a"}
        ok(ana.post("/v1/registry/models", json=chat), 201)
        retrieval = ana.post("/v1/registry/models/chat@1/evidence", json={"audit_seq": world.good2})
        assert retrieval.status_code == 422 and "not the chat model chat@1" in retrieval.json()["error"]["message"]
        assert ok(ana.get("/v1/registry/models/emb@2"))["evidence"] == []


def test_the_maker_never_approves_their_own_promotion(world: World) -> None:
    register(world, "1", world.good)
    pid = ok(promote(world, "emb@1", "validated"), 202)["proposal"]["id"]
    with world.client(token=world.second_key) as second:  # another key of the same owner
        r = second.post(f"/v1/approvals/{pid}/approve")
        assert r.status_code == 403 and "another person" in r.json()["error"]["message"]
    with world.client(sub="ana", groups=("approvers", "research")) as login:  # her own login
        assert login.post(f"/v1/approvals/{pid}/approve").status_code == 403
    with world.client(sub="bo", groups=("approvers",)) as bo:
        assert bo.get("/v1/registry/models/emb@1").json()["stage"] == "candidate"
        assert bo.post("/v1/registry/models/emb@1/promote", json={"stage": "validated"}).status_code == 403
    done = ok(approve(world, pid))
    assert done["proposal"]["status"] == "applied" and done["result"]["entry"]["stage"] == "validated"


def test_a_regressed_promotion_is_refused_when_proposed_and_when_approved(world: World) -> None:
    register(world, "0", world.bad, binding="hash-1")  # the worse embedder, its own run
    move(world, "emb@0", "validated")
    pid = ok(promote(world, "emb@0", "production"), 202)["proposal"]["id"]  # nothing in production yet
    register(world, "1", world.good)
    move(world, "emb@1", "validated")
    move(world, "emb@1", "production")  # meanwhile: the better embedder
    refused = approve(world, pid)
    assert refused.status_code == 403 and "release gate" in refused.json()["error"]["message"]
    r = promote(world, "emb@0", "production")
    assert r.status_code == 403 and "release gate refuses emb@0" in r.json()["error"]["message"]
    assert "doc_recall_at_1 on notes.jsonl regressed: 0.25" in r.json()["error"]["message"]
    with world.client(sub="bo", groups=("approvers",)) as bo:
        assert bo.get(f"/v1/approvals/{pid}").json()["status"] == "failed"
        stages = {e["ref"]: e["stage"] for e in bo.get("/v1/registry/models").json()}
    assert stages == {"emb@0": "validated", "emb@1": "production"}


def test_which_and_records_name_the_models(world: World) -> None:
    register(world, "1", world.good)
    move(world, "emb@1", "validated")
    move(world, "emb@1", "production")
    with world.client(sub="bo", groups=("approvers",)) as bo:
        assert [e["ref"] for e in ok(bo.get("/v1/registry/which"))] == ["emb@1"]
        assert ok(bo.get("/v1/registry/which", params={"at": "2020-01-01"})) == []
        assert bo.get("/v1/registry/which", params={"at": "someday"}).status_code == 422
        assert bo.get(f"/v1/registry/records/{world.ask}").status_code == 403  # audit records: admins
    with world.client(token=world.maker_key) as ana:
        found = ok(ana.get(f"/v1/registry/records/{world.ask}"))
        assert found["seq"] == world.ask and found["action"] == "ask"
        assert ana.get("/v1/registry/records/999999").status_code == 404
