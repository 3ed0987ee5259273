"""Retention policies and legal holds over real HTTP: only admins set, place, release and apply;
a held document survives ``POST /v1/retention/apply`` and ``DELETE /v1/documents/{id}`` (403
naming the matter) until released; with four-eyes on, a policy and a release answer 202 and the
maker cannot approve them with a second API key of theirs; the service's schedule applies
retention by itself, as the system principal."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from strongroom.audit import open_audit_log, records
from strongroom.config import Settings
from strongroom.governance.retention import RetentionPolicy
from strongroom.ingest.pipeline import IngestOptions, ingest
from strongroom.runtime import open_runtime
from strongroom.service.hold_store import open_hold_store
from strongroom.testing import HashEmbedder
from tests.api.served import Served, maker_keys, served
from tests.auth.oidc_provider import Provider

ROLES = {"reader": ["readers"], "ingester": ["ingesters"], "admin": ["admins"], "approver": ["approvers"]}
POLICY = {"keep": "7y", "doc_type": "research_report"}


@dataclass
class World(Served):
    docs: dict[str, str]  # file name -> document id
    maker_key: str = ""  # ana's key with the admin role
    second_key: str = ""  # ana's other key, with the approver role

    def admin(self) -> httpx.Client:
        return self.client(sub="root", groups=("admins", "readers", "research"))

    def reader(self) -> httpx.Client:
        return self.client(sub="dee", groups=("readers", "ingesters", "research"))


def _seed(settings: Settings, folder: Path) -> dict[str, str]:
    runtime = open_runtime(settings, HashEmbedder(64))
    try:
        for name in ("old.txt", "kept.txt"):
            (folder / name).write_text(f"{name}\n\nThe research note {name} expects rates to fall.\n")
            options = IngestOptions(
                acl=frozenset({"research"}), published=datetime(2001, 3, 1, tzinfo=UTC), doc_type="research_report"
            )
            assert ingest([folder / name], runtime.store, runtime.embedder, options).ingested == 1
        return {v.name: v.document_id for v in runtime.store.versions()}
    finally:
        runtime.close()


def _world(tmp_path: Path, provider: Provider, **settings_values: object) -> Iterator[World]:
    settings = Settings(home=tmp_path / "home", embedder="hash", **settings_values)  # type: ignore[arg-type]
    docs = _seed(settings, tmp_path)
    maker, second = maker_keys(settings)
    with served(settings, provider, ROLES) as url:
        yield World(url, provider, docs, maker, second)


@pytest.fixture
def world(tmp_path: Path, provider: Provider) -> Iterator[World]:
    yield from _world(tmp_path, provider)


@pytest.fixture
def four_eyes(tmp_path: Path, provider: Provider) -> Iterator[World]:
    yield from _world(tmp_path, provider, four_eyes=True)


def test_a_held_document_survives_apply_and_delete_until_released(world: World) -> None:
    old, kept = world.docs["old.txt"], world.docs["kept.txt"]
    with world.admin() as admin:
        assert admin.put("/v1/retention/policies/research-7y", json=POLICY).status_code == 200
        assert [p["id"] for p in admin.get("/v1/retention/policies").json()] == ["research-7y"]
        placed = admin.post("/v1/holds", json={"matter_id": "M-77", "reason": "litigation", "document_id": kept})
        assert placed.status_code == 201, placed.text
        hold_id = placed.json()["id"]

        refused = admin.delete(f"/v1/documents/{kept}")
        assert refused.status_code == 403 and "M-77" in refused.json()["error"]["message"]
        dry = admin.post("/v1/retention/apply", json={"dry_run": True}).json()
        assert (dry["deleted"], dry["held"]) == (1, 1) and admin.get(f"/v1/documents/{old}").status_code == 200
        done = admin.post("/v1/retention/apply", json={}).json()
        assert done["deleted_documents"] == [{"document_id": old, "policy": "research-7y"}]
        assert done["held_documents"][0]["matter_id"] == "M-77"
        assert admin.get(f"/v1/documents/{old}").status_code == 404
        assert admin.get(f"/v1/documents/{kept}").status_code == 200

        assert [h["id"] for h in admin.get("/v1/holds", params={"active": True}).json()] == [hold_id]
        released = admin.post(f"/v1/holds/{hold_id}/release", json={"reason": "matter closed"})
        assert released.status_code == 200 and released.json()["released_by"] == "root"
        assert admin.get("/v1/holds", params={"active": True}).json() == []
        assert admin.delete(f"/v1/documents/{kept}").status_code == 200
        assert admin.delete("/v1/retention/policies/research-7y").json()["removed"]["id"] == "research-7y"


def test_only_admins_and_bad_input_is_a_clear_4xx(world: World) -> None:
    kept = world.docs["kept.txt"]
    with world.reader() as reader:
        for response in (
            reader.put("/v1/retention/policies/p", json=POLICY),
            reader.get("/v1/retention/policies"),
            reader.post("/v1/retention/apply", json={"dry_run": True}),
            reader.post("/v1/holds", json={"matter_id": "M", "reason": "r", "document_id": kept}),
            reader.get("/v1/holds"),
            reader.post("/v1/holds/abc/release", json={}),
        ):
            assert response.status_code == 403, response.text
    with world.admin() as admin:
        for response, says in (
            (admin.put("/v1/retention/policies/p", json={"keep": "forever", "doc_type": "x"}), "7y, 90d"),
            (admin.put("/v1/retention/policies/p", json={"keep": "7y"}), "at least one of"),
            (admin.put("/v1/retention/policies/p", json={**POLICY, "evil": 1}), "evil"),
            (admin.post("/v1/holds", json={"matter_id": "M", "reason": "r"}), "exactly one target"),
            (admin.post("/v1/holds", json={"matter_id": "M", "reason": "r", "query": {"x": "1"}}), "unknown query"),
        ):
            assert response.status_code == 422 and says in response.text, response.text
        assert admin.post("/v1/holds/nope/release", json={}).status_code == 404
        assert admin.delete("/v1/retention/policies/nope").status_code == 404
        assert admin.get("/v1/retention/policies").json() == [] and admin.get("/v1/holds").json() == []


def test_four_eyes_the_maker_never_approves_a_policy_or_release(four_eyes: World) -> None:
    w = four_eyes
    with w.client(token=w.maker_key) as ana_key, w.client(token=w.second_key) as second:
        with w.client(sub="bo", groups=("approvers", "research")) as bo:
            proposed = ana_key.put("/v1/retention/policies/research-7y", json=POLICY)
            assert proposed.status_code == 202, proposed.text
            pid = proposed.json()["proposal_id"]
            assert ana_key.get("/v1/retention/policies").json() == []
            refused = second.post(f"/v1/approvals/{pid}/approve")
            assert refused.status_code == 403 and "another person" in refused.json()["error"]["message"]
            approved = bo.post(f"/v1/approvals/{pid}/approve")
            assert approved.status_code == 200 and approved.json()["result"]["id"] == "research-7y"
            assert [p["id"] for p in ana_key.get("/v1/retention/policies").json()] == ["research-7y"]

            kept = w.docs["kept.txt"]
            hold = ana_key.post("/v1/holds", json={"matter_id": "M-1", "reason": "r", "document_id": kept})
            assert hold.status_code == 201  # a hold never waits
            release = ana_key.post(f"/v1/holds/{hold.json()['id']}/release", json={})
            assert release.status_code == 202
            assert second.post(f"/v1/approvals/{release.json()['proposal_id']}/approve").status_code == 403
            assert len(ana_key.get("/v1/holds", params={"active": True}).json()) == 1
            assert bo.post(f"/v1/approvals/{release.json()['proposal_id']}/approve").status_code == 200
            assert ana_key.get("/v1/holds", params={"active": True}).json() == []


def test_the_service_applies_retention_on_its_schedule(tmp_path: Path, provider: Provider) -> None:
    settings = Settings(home=tmp_path / "home", embedder="hash", retention_interval_hours=0.0003)  # about 1 s
    docs = _seed(settings, tmp_path)
    holds = open_hold_store(settings)
    holds.set_policy(RetentionPolicy("research-7y", years=7, doc_type="research_report"))
    holds.close()
    with served(settings, provider, ROLES) as url, World(url, provider, docs).admin() as admin:
        deadline = time.monotonic() + 120  # a bound on waiting, not an assertion on speed
        while admin.get(f"/v1/documents/{docs['old.txt']}").status_code != 404:
            assert time.monotonic() < deadline, "the schedule never applied retention"
            time.sleep(0.2)
    log = open_audit_log(settings)
    try:
        runs = [r for r in records(log) if r["action"] == "retention.apply"]
    finally:
        log.close()
    assert runs and runs[0]["principal"] == "system:retention" and runs[0]["outcome"] == "ok"
