"""Four-eyes against a second key under a made-up owner (issue 20's review): an admin who also
holds the approver group gives herself a key owned by "zed" carrying that group, then approves
her own change with it. A key is its owner *and* whoever created it (who saw its secret), so
``key:zed`` is ana too and is refused: with four-eyes off (a ``registry.promote``, which always
needs approval), with four-eyes on (the key made at once by break glass, then a ``holds.release``,
which break glass never makes), over Python and over real HTTP. A key made through an approved
proposal answers for its maker and its approver (who is shown the secret). A key someone else
made for ana still checks a third person's change."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from strongroom.auth.authenticator import Authenticator
from strongroom.auth.settings import ServiceSettings
from strongroom.config import Settings
from strongroom.errors import ApprovalPending, PermissionDenied
from strongroom.governance.registry import ModelEntry
from strongroom.ingest.pipeline import IngestOptions, ingest
from strongroom.runtime import open_runtime
from strongroom.service import IngestRequest, Platform
from strongroom.service.approvals import persons_of
from strongroom.service.registry import PROMOTE, promote_change
from strongroom.service.requests import KeyCreated
from strongroom.testing import HashEmbedder
from strongroom.types import Principal
from tests.api.served import Served, served
from tests.auth.oidc_provider import Provider

ADMINS, APPROVERS = "strongroom-admins", "strongroom-approvers"
ROLES = {"reader": ["research"], "admin": [ADMINS], "approver": [APPROVERS]}
ADMIN = frozenset({"reader", "ingester", "admin"})
RESEARCH_7Y = {"id": "research-7y", "keep": "7y", "doc_type": "research_report"}


def her() -> Principal:  # ana: an admin who also holds the approver group and role
    return Principal("ana", frozenset({"research", ADMINS, APPROVERS}), ADMIN | {"approver"}, "oidc")


def bo() -> Principal:  # another person: an approver
    return Principal("bo", frozenset({"research"}), frozenset({"approver"}), "oidc")


def admin(name: str) -> Principal:  # another admin who holds the approver group (to grant it)
    return Principal(name, frozenset({"research", ADMINS, APPROVERS}), ADMIN, "oidc")


def _open(tmp_path: Path, *, four_eyes: bool) -> Platform:
    (tmp_path / "note.txt").write_text("note.txt\n\nThe research note expects rates to fall.\n")
    p = Platform.open(Settings(home=tmp_path / "home", embedder="hash", four_eyes=four_eyes), embedder=HashEmbedder(64))
    request = IngestRequest(paths=(tmp_path / "note.txt",), acl=frozenset({"research"}), published="2001-03-01")
    assert p.ingest(her(), request).ingested == 1
    return p


@pytest.fixture
def plain(tmp_path: Path) -> Iterator[Platform]:  # four-eyes off (the default)
    with _open(tmp_path, four_eyes=False) as p:
        for version in ("1", "2"):
            entry = ModelEntry("emb", version, "embedder", "model-risk@bank", "high", "hash-64")
            p.registering(lambda r, e=entry: r.register(her(), e))  # type: ignore[misc]
        yield p


@pytest.fixture
def four_eyes(tmp_path: Path) -> Iterator[Platform]:
    with _open(tmp_path, four_eyes=True) as p:
        yield p


def as_key(p: Platform, secret: str) -> Principal:
    """The principal the service derives from an API key (what HTTP callers get)."""
    return Authenticator(ServiceSettings(role_groups=ROLES), p.keys, None).authenticate(f"Bearer {secret}").principal


def promote(p: Platform, who: Principal, ref: str = "emb@1") -> str:
    return p.approving(lambda a: a.propose(who, PROMOTE, promote_change(ref, "validated"), "release")).id


def stage(p: Platform, ref: str = "emb@1") -> str:
    return p.registering(lambda r: r.show(her(), ref)).stage


def proposed(call) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(ApprovalPending) as pending:
        call()
    return pending.value.proposal_id


def test_four_eyes_off_a_key_for_a_made_up_owner_does_not_approve_her_promotion(plain: Platform) -> None:
    p = plain
    created = p.create_key(her(), "zed", [APPROVERS, "research"])  # four-eyes off: made at once
    zed = as_key(p, created.secret)
    assert zed.name == "key:zed" and "approver" in zed.roles and zed.created_by == {"ana"}
    assert persons_of(zed) == {"zed", "ana"}
    pid = promote(p, her())
    with pytest.raises(PermissionDenied, match="another person"):
        p.approving(lambda a: a.approve(zed, pid))
    with pytest.raises(PermissionDenied, match="another person"):  # nor rejects it
        p.approving(lambda a: a.reject(zed, pid, "no"))
    assert stage(p) == "candidate"
    refused = [r for r in p.audit_records(her()) if r["action"] == "approvals.approve"]
    assert refused[-1]["outcome"] == "denied" and refused[-1]["principal"] == "key:zed"
    assert p.approving(lambda a: a.approve(bo(), pid)).proposal.status == "applied"  # another person may
    assert stage(p) == "validated"


def test_the_key_cannot_make_a_change_she_then_approves(plain: Platform) -> None:
    """The other way round: key:zed (an admin key of hers) proposes, ana approves."""
    p = plain
    zed = as_key(p, p.create_key(her(), "zed", [ADMINS, "research"]).secret)
    pid = promote(p, zed)
    assert p.approving(lambda a: a.show(bo(), pid)).maker_persons == {"zed", "ana"}
    with pytest.raises(PermissionDenied, match="another person"):
        p.approving(lambda a: a.approve(her(), pid))
    assert stage(p) == "candidate"


def test_a_key_someone_else_made_for_ana_checks_a_third_persons_change(plain: Platform) -> None:
    p = plain
    ana_key = as_key(p, p.create_key(admin("carl"), "ana", [APPROVERS, "research"]).secret)
    assert persons_of(ana_key) == {"ana", "carl"}
    pid = promote(p, admin("cy"))
    assert p.approving(lambda a: a.approve(ana_key, pid)).proposal.status == "applied"
    assert stage(p) == "validated"
    pid = promote(p, admin("carl"), "emb@2")  # but not a change of her key's creator
    with pytest.raises(PermissionDenied, match="another person"):
        p.approving(lambda a: a.approve(ana_key, pid))
    assert stage(p, "emb@2") == "candidate"


def test_four_eyes_on_a_break_glass_key_does_not_release_her_hold(four_eyes: Platform) -> None:
    p = four_eyes
    change = {"owner": "zed", "groups": [APPROVERS, "research"], "days": 1}
    glass = p.approving(lambda a: a.break_glass(her(), "keys.create", change, "night shift, no approver awake"))
    assert isinstance(glass.result, KeyCreated)
    zed = as_key(p, glass.result.secret)
    assert zed.created_by == {"ana"}
    (doc,) = {v.document_id for v in p.ops.store.versions()}
    held = p.retaining(lambda r: r.place(her(), "M-1", "litigation", document_id=doc))
    release = proposed(lambda: p.release_hold(her(), held.id, "matter closed"))
    with pytest.raises(PermissionDenied, match="another person"):
        p.approving(lambda a: a.approve(zed, release))
    with pytest.raises(PermissionDenied, match="broke the glass"):  # nor reviews her break glass
        p.approving(lambda a: a.review(zed, glass.proposal.id))
    assert [h.id for h in p.retaining(lambda r: r.holds(her(), active_only=True))] == [held.id]  # still held
    assert p.approving(lambda a: a.approve(bo(), release)).proposal.status == "applied"
    assert p.retaining(lambda r: r.holds(her(), active_only=True)) == []
    assert p.approving(lambda a: a.review(bo(), glass.proposal.id)).reviewed_by == "bo"


def test_a_key_made_by_proposal_answers_for_its_maker_and_its_approver(four_eyes: Platform) -> None:
    p = four_eyes
    change = {"owner": "yu", "groups": [APPROVERS], "days": 1}
    pid = p.approving(lambda a: a.propose(her(), "keys.create", change, "etl")).id
    applied = p.approving(lambda a: a.approve(bo(), pid))  # bo is shown the secret
    assert isinstance(applied.result, KeyCreated)
    yu = as_key(p, applied.result.secret)
    assert yu.created_by == {"ana", "bo"}
    assert {k.owner: k.created_by for k in p.keys.list()}["yu"] == {"ana", "bo"}
    for maker in (her(), Principal("bo", frozenset({"research"}), ADMIN | {"approver"}, "oidc")):
        pid = proposed(lambda m=maker: p.set_retention_policy(m, RESEARCH_7Y))
        with pytest.raises(PermissionDenied, match="another person"):
            p.approving(lambda a, pid=pid: a.approve(yu, pid))  # type: ignore[misc]
    assert p.retaining(lambda r: r.policies(her())) == []


# -- over real HTTP ---------------------------------------------------------------------------

HTTP_ROLES = {"reader": ["readers"], "admin": ["admins"], "approver": ["approvers"]}


@pytest.fixture
def http(tmp_path: Path, provider: Provider) -> Iterator[tuple[Served, str]]:
    settings = Settings(home=tmp_path / "home", embedder="hash", four_eyes=True)
    (tmp_path / "note.txt").write_text("note.txt\n\nThe research note expects rates to fall.\n")
    runtime = open_runtime(settings, HashEmbedder(64))
    try:
        options = IngestOptions(acl=frozenset({"research"}), published=datetime(2001, 3, 1, tzinfo=UTC))
        assert ingest([tmp_path / "note.txt"], runtime.store, runtime.embedder, options).ingested == 1
        (doc,) = {v.document_id for v in runtime.store.versions()}
    finally:
        runtime.close()
    with served(settings, provider, HTTP_ROLES) as url:
        yield Served(url, provider), doc


def test_over_http_a_break_glass_key_for_zed_does_not_release_her_hold(http: tuple[Served, str]) -> None:
    world, doc = http
    groups = ("admins", "approvers", "readers", "research")
    with world.client(sub="ana", groups=groups) as ana, world.client(sub="bo", groups=("approvers",)) as bo:
        change = {"owner": "zed", "groups": ["approvers", "research"], "days": 1}
        glass = ana.post("/v1/approvals/break-glass", json={"kind": "keys.create", "change": change, "reason": "now"})
        assert glass.status_code == 200, glass.text
        with world.client(token=glass.json()["key"]["key"]) as zed:
            hold = ana.post("/v1/holds", json={"matter_id": "M-1", "reason": "litigation", "document_id": doc})
            assert hold.status_code in (200, 201), hold.text
            release = ana.post(f"/v1/holds/{hold.json()['id']}/release", json={"reason": "closed"})
            assert release.status_code == 202, release.text
            pid = release.json()["proposal_id"]
            refused = zed.post(f"/v1/approvals/{pid}/approve")
            assert refused.status_code == 403 and "another person" in refused.text
            assert len(ana.get("/v1/holds", params={"active": True}).json()) == 1
            assert bo.post(f"/v1/approvals/{pid}/approve").status_code == 200
            assert ana.get("/v1/holds", params={"active": True}).json() == []
