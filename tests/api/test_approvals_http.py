"""Four-eyes approval over real HTTP (STRONGROOM_FOUR_EYES on): an ACL change and a new API
key answer 202 with a proposal; the maker cannot approve it with a second API key of theirs
nor with their own login; an admin who is not an approver cannot either; an approver can,
once; break glass needs a reason (422), applies at once and is listed for review."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from strongroom.config import Settings
from strongroom.ingest.pipeline import IngestOptions, ingest
from strongroom.runtime import open_runtime
from strongroom.testing import HashEmbedder
from tests.api.served import Served, maker_keys, served
from tests.auth.oidc_provider import Provider

ROLES = {"reader": ["readers"], "ingester": ["ingesters"], "admin": ["admins"], "approver": ["approvers"]}


@dataclass
class World(Served):
    doc_id: str
    maker_key: str  # ana's key with the admin role
    second_key: str  # ana's other key, with the approver role


@pytest.fixture
def world(tmp_path: Path, provider: Provider) -> Iterator[World]:
    settings = Settings(home=tmp_path / "home", embedder="hash", four_eyes=True)
    (tmp_path / "memo.txt").write_text("Credit memo\n\nThe credit desk expects spreads to widen.\n")
    runtime = open_runtime(settings, HashEmbedder(64))
    try:
        report = ingest(
            [tmp_path / "memo.txt"], runtime.store, runtime.embedder, IngestOptions(acl=frozenset({"research"}))
        )
        assert report.ingested == 1
        doc_id = runtime.store.versions()[-1].document_id
    finally:
        runtime.close()
    maker, second = maker_keys(settings)  # made before four-eyes governs the service's key route
    with served(settings, provider, ROLES) as url:
        yield World(url, provider, doc_id, maker, second)


def acl_of(w: World) -> list[str]:
    with w.client(sub="root", groups=("research", "public", "readers")) as c:
        r = c.get(f"/v1/documents/{w.doc_id}")
        assert r.status_code == 200, r.text
        return sorted(r.json()["current"]["acl"])


def test_the_maker_never_approves_their_own_change_over_http(world: World) -> None:
    with world.client(token=world.maker_key) as ana_key:
        r = ana_key.put(f"/v1/documents/{world.doc_id}/acl", json={"acl": ["research", "public"]})
    assert r.status_code == 202, r.text
    pid = r.json()["proposal_id"]
    assert acl_of(world) == ["research"]
    with world.client(token=world.second_key) as second:  # another key of the same owner
        refused = second.post(f"/v1/approvals/{pid}/approve")
        assert refused.status_code == 403 and "another person" in refused.json()["error"]["message"]
        assert [p["id"] for p in second.get("/v1/approvals").json()] == [pid]  # an approver sees it
    with world.client(sub="ana", groups=("approvers", "research")) as ana_login:  # her own login
        assert ana_login.post(f"/v1/approvals/{pid}/approve").status_code == 403
    with world.client(sub="cy", groups=("admins", "research")) as admin:  # admin is not approver
        assert admin.post(f"/v1/approvals/{pid}/approve").status_code == 403
        assert admin.get(f"/v1/approvals/{pid}").status_code == 404  # nor sees another's proposal
    assert acl_of(world) == ["research"]
    with world.client(sub="bo", groups=("approvers",)) as bo:
        done = bo.post(f"/v1/approvals/{pid}/approve")
        assert done.status_code == 200, done.text
        assert done.json()["proposal"]["status"] == "applied" and done.json()["change"]["after"] == [
            "public",
            "research",
        ]
        again = bo.post(f"/v1/approvals/{pid}/approve")
        assert again.status_code == 422 and "applied" in again.json()["error"]["message"]
    assert acl_of(world) == ["public", "research"]


def test_keys_with_groups_need_approval_and_break_glass_needs_a_reason_over_http(world: World) -> None:
    with world.client(sub="ana", groups=("admins", "research")) as ana:
        r = ana.post("/v1/keys", json={"owner": "svc", "groups": ["research"], "days": 7})
        assert r.status_code == 202, r.text
        assert "svc" not in {k["owner"] for k in ana.get("/v1/keys").json()}  # proposed, not made
        change = {"document_id": world.doc_id, "acl": ["public"]}
        bare = ana.post("/v1/approvals/break-glass", json={"kind": "acl.set", "change": change, "reason": " "})
        assert bare.status_code == 422 and "reason" in bare.json()["error"]["message"]
        glass = ana.post("/v1/approvals/break-glass", json={"kind": "acl.set", "change": change, "reason": "inc-42"})
        assert glass.status_code == 200, glass.text
        assert glass.json()["proposal"]["break_glass"] is True
    assert acl_of(world) == ["public"]
    with world.client(sub="bo", groups=("approvers",)) as bo:
        made = bo.post(f"/v1/approvals/{r.json()['proposal_id']}/approve")
        assert made.status_code == 200 and made.json()["key"]["owner"] == "svc"
        with world.client(token=made.json()["key"]["key"]) as svc:  # the approved key authenticates
            assert svc.get("/v1/approvals").status_code == 403  # (as key:svc, with no role)
        gid = glass.json()["proposal"]["id"]
        assert [p["id"] for p in bo.get("/v1/approvals/review").json()] == [gid]
        assert bo.post(f"/v1/approvals/{gid}/review").json()["reviewed_by"] == "bo"
        assert bo.get("/v1/approvals/review").json() == []
