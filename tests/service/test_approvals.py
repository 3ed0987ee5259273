"""Four-eyes approval through the application layer over a real store: a maker never checks
their own change (not with a second API key, not with another login), an expired proposal
does nothing, a change is applied once and exactly as proposed (its hash), break glass needs
a reason and stays flagged until reviewed, and every step is an audit record.

The attacks: approving your own change with a second key of the same owner; approving after
expiry; two approvers racing; a change altered in the table after it was proposed; a direct
change that bypasses the proposal; a change that became invalid before it was approved."""

from __future__ import annotations

import functools
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from strongroom.auth.authenticator import Authenticator
from strongroom.auth.settings import ServiceSettings
from strongroom.config import Settings
from strongroom.errors import ApprovalPending, NotFound, PermissionDenied, QueryError, StoreError, StrongroomError
from strongroom.service import IngestRequest, Platform, model_routes
from strongroom.service.approvals import Applied, Approvals, person_of
from strongroom.service.model_routes import models_config
from strongroom.service.proposal_store import change_hash
from strongroom.service.requests import KeyCreated
from strongroom.testing import HashEmbedder
from strongroom.types import Principal

ADMIN = frozenset({"reader", "ingester", "admin"})
GROUPS = frozenset({"public", "research"})
ROLES = {"reader": ["r"], "admin": ["strongroom-admins"], "approver": ["strongroom-approvers"]}


def ana() -> Principal:  # the maker: an admin
    return Principal("ana", GROUPS, ADMIN, "oidc")


def bo() -> Principal:  # the checker: an approver (and nothing else)
    return Principal("bo", frozenset({"public"}), frozenset({"approver"}), "oidc")


def settings(home: Path) -> Settings:
    return Settings(home=home, embedder="hash", four_eyes=True)


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    files = tmp_path / "files"
    files.mkdir()
    (files / "note.txt").write_text("Rates desk note\n\nThe desk expects two cuts this year.\n")
    with Platform.open(settings(tmp_path / "home"), embedder=HashEmbedder(64)) as p:
        request = IngestRequest(paths=(files / "note.txt",), acl=frozenset({"research"}), published="2024-01-02")
        assert p.ingest(ana(), request).ingested == 1
        yield p


def doc(p: Platform) -> str:
    return p.find_document(ana(), "note.txt").document_id


def acl_now(p: Platform) -> frozenset[str]:
    return p.find_document(ana(), "note.txt").current.acl


def records(p: Platform, action_prefix: str = "approvals.") -> list[dict[str, object]]:
    return [r for r in p.audit_records(ana()) if str(r["action"]).startswith(action_prefix)]


def propose_acl(p: Platform, who: Principal | None = None, acl: tuple[str, ...] = ("public",)) -> str:
    with pytest.raises(ApprovalPending) as pending:
        p.set_acl(who or ana(), doc(p), acl, reason="open the note to everyone")
    return pending.value.proposal_id


def test_a_direct_change_becomes_a_proposal_and_only_another_persons_approval_applies_it(platform: Platform) -> None:
    pid = propose_acl(platform)
    assert acl_now(platform) == {"research"}  # proposed, not made
    with pytest.raises(PermissionDenied, match="four-eyes"):  # and the operation itself refuses a bypass
        platform.ops.set_acl(ana(), doc(platform), frozenset({"public"})).result()
    applied = platform.approving(lambda a: a.approve(bo(), pid))
    assert isinstance(applied, Applied) and applied.proposal.status == "applied"
    assert applied.proposal.checker == "bo" and applied.proposal.maker == "ana"
    assert acl_now(platform) == {"public"}
    assert platform.approving(lambda a: a.show(bo(), pid)).status == "applied"


def test_the_maker_cannot_approve_their_own_change(platform: Platform) -> None:
    both = Principal("ana", GROUPS, ADMIN | {"approver"}, "oidc")  # even holding both roles
    pid = propose_acl(platform, both)
    with pytest.raises(PermissionDenied, match="another person"):
        platform.approving(lambda a: a.approve(both, pid))
    with pytest.raises(PermissionDenied, match="another person"):  # nor via the CLI name or an API key of hers
        platform.approving(
            lambda a: a.approve(Principal("key:ana", GROUPS, frozenset({"approver"}), "api-key", "k2"), pid)
        )
    with pytest.raises(PermissionDenied):
        platform.approving(lambda a: a.reject(both, pid))
    assert acl_now(platform) == {"research"}
    assert platform.approving(lambda a: a.show(bo(), pid)).status == "proposed"


def test_two_keys_of_the_same_owner_are_one_person(platform: Platform) -> None:
    keys = platform.keys
    until = datetime.now(UTC) + timedelta(days=1)
    _, maker_secret = keys.create("ana", frozenset({"research", "strongroom-admins"}), until)
    _, checker_secret = keys.create("ana", frozenset({"research", "strongroom-approvers"}), until)
    auth = Authenticator(ServiceSettings(role_groups=ROLES), keys, None)
    maker = auth.authenticate(f"Bearer {maker_secret}").principal
    second = auth.authenticate(f"Bearer {checker_secret}").principal
    assert maker.key_id != second.key_id and person_of(maker) == person_of(second) == "ana"
    assert "approver" in second.roles and "admin" not in second.roles
    pid = propose_acl(platform, maker)
    with pytest.raises(PermissionDenied, match="a second key"):
        platform.approving(lambda a: a.approve(second, pid))
    assert acl_now(platform) == {"research"}
    refused = [r for r in records(platform) if r["action"] == "approvals.approve"]
    assert refused and refused[-1]["outcome"] == "denied" and refused[-1]["auth"] == f"api-key:{second.key_id}"


def test_only_the_approver_role_approves(platform: Platform) -> None:
    pid = propose_acl(platform)
    other_admin = Principal("cy", GROUPS, ADMIN, "oidc")  # admin does not imply approver
    for who in (other_admin, Principal("dee", GROUPS, frozenset({"reader"}), "oidc")):
        with pytest.raises(PermissionDenied, match="approver"):
            platform.approving(functools.partial(Approvals.approve, principal=who, proposal_id=pid))
    assert acl_now(platform) == {"research"}
    with pytest.raises(PermissionDenied):  # and proposing needs the change's own role (admin)
        platform.approving(lambda a: a.propose(bo(), "acl.set", {"document_id": doc(platform), "acl": ["public"]}))


def test_an_expired_proposal_does_nothing(platform: Platform) -> None:
    pid = propose_acl(platform)
    later = datetime.now(UTC) + timedelta(hours=24, seconds=1)
    platform.approvals.clock = lambda: later
    with pytest.raises(QueryError, match="expired"):
        platform.approving(lambda a: a.approve(bo(), pid))
    assert acl_now(platform) == {"research"}
    assert platform.approving(lambda a: a.show(bo(), pid)).status == "expired"
    with pytest.raises(QueryError, match="expired"):  # and stays dead
        platform.approving(lambda a: a.approve(bo(), pid))
    actions = [r["action"] for r in records(platform)]
    assert actions.count("approvals.expire") == 1 and "approvals.apply" not in actions


def test_a_proposal_just_before_its_expiry_still_applies(platform: Platform) -> None:
    pid = propose_acl(platform)
    created = platform.approving(lambda a: a.show(bo(), pid)).created_at
    platform.approvals.clock = lambda: created + timedelta(hours=24) - timedelta(seconds=1)
    platform.approving(lambda a: a.approve(bo(), pid))
    assert acl_now(platform) == {"public"}


def test_two_approvers_racing_apply_the_change_exactly_once(platform: Platform, tmp_path: Path) -> None:
    pid = propose_acl(platform)
    barrier = threading.Barrier(2)
    results: list[object] = []

    def approve(name: str) -> None:
        with Platform.open(settings(tmp_path / "home"), embedder=HashEmbedder(64)) as mine:
            checker = Principal(name, frozenset({"public"}), frozenset({"approver"}), "oidc")
            barrier.wait()
            try:
                results.append(mine.approving(lambda a: a.approve(checker, pid)))
            except StrongroomError as exc:
                results.append(exc)

    threads = [threading.Thread(target=approve, args=(n,)) for n in ("bo", "cy")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(isinstance(r, Applied) for r in results) == 1
    assert sum(isinstance(r, QueryError) for r in results) == 1
    applies = [r for r in platform.audit_records(ana()) if r["action"] == "acl.set"]
    assert len(applies) == 1 and applies[0]["auth"] == f"four-eyes:{pid}"
    with pytest.raises(QueryError, match="applied"):  # and later attempts find it decided
        platform.approving(lambda a: a.approve(bo(), pid))


def test_the_change_applied_is_the_change_proposed(platform: Platform) -> None:
    pid = propose_acl(platform, acl=("research", "public"))
    assert not pid.startswith("-")  # a CLI would read it as an option (token_urlsafe did that)
    p = platform.approving(lambda a: a.show(bo(), pid))
    assert p.change == {"document_id": doc(platform), "acl": ["public", "research"]}
    assert p.change_sha256 == change_hash(p.change)
    platform.approving(lambda a: a.approve(bo(), pid))
    applied = next(r for r in platform.audit_records(ana()) if r["action"] == "acl.set")
    assert applied["principal"] == "ana" and applied["target"] == doc(platform)
    assert applied["filters"]["after"] == p.change["acl"]  # type: ignore[index]
    hashes = {r["filters"]["change_sha256"] for r in records(platform)}  # type: ignore[index]
    assert hashes == {p.change_sha256}


def test_a_change_altered_in_the_table_is_never_applied(platform: Platform) -> None:
    pid = propose_acl(platform)
    db = sqlite3.connect(platform.settings.catalog_path)
    db.execute(
        "UPDATE proposals SET change = ? WHERE id = ?", (f'{{"acl":["everyone"],"document_id":"{doc(platform)}"}}', pid)
    )
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="does not match its hash"):
        platform.approving(lambda a: a.approve(bo(), pid))
    assert acl_now(platform) == {"research"}
    assert platform.approving(lambda a: a.show(bo(), pid)).status == "failed"


def test_a_change_no_longer_valid_when_approved_fails_and_does_nothing(platform: Platform) -> None:
    pid = propose_acl(platform)
    platform.delete(ana(), doc(platform))
    with pytest.raises(NotFound):
        platform.approving(lambda a: a.approve(bo(), pid))
    p = platform.approving(lambda a: a.show(bo(), pid))
    assert p.status == "failed"
    apply = [r for r in records(platform) if r["action"] == "approvals.apply"]
    assert len(apply) == 1 and apply[0]["outcome"] == "error"


def test_rejected_proposals_never_apply(platform: Platform) -> None:
    pid = propose_acl(platform)
    assert platform.approving(lambda a: a.reject(bo(), pid, "not while the desk is restricted")).status == "rejected"
    with pytest.raises(QueryError, match="rejected"):
        platform.approving(lambda a: a.approve(Principal("cy", GROUPS, frozenset({"approver"}), "oidc"), pid))
    assert acl_now(platform) == {"research"}


def test_makers_see_their_own_proposals_and_approvers_see_all(platform: Platform) -> None:
    pid = propose_acl(platform)
    other = Principal("cy", GROUPS, ADMIN, "oidc")
    assert [p.id for p in platform.approving(lambda a: a.proposals(ana()))] == [pid]
    assert platform.approving(lambda a: a.proposals(other)) == []
    assert [p.id for p in platform.approving(lambda a: a.proposals(bo(), status="proposed"))] == [pid]
    with pytest.raises(NotFound):
        platform.approving(lambda a: a.show(other, pid))
    with pytest.raises(PermissionDenied):
        platform.approving(lambda a: a.proposals(Principal("dee", GROUPS, frozenset({"reader"}))))


def test_break_glass_needs_a_reason_applies_at_once_and_is_flagged_until_reviewed(platform: Platform) -> None:
    change = {"document_id": doc(platform), "acl": ["public"]}
    for reason in ("", "   "):
        with pytest.raises(QueryError, match="reason"):
            glass = functools.partial(
                Approvals.break_glass, principal=ana(), kind="acl.set", change=change, reason=reason
            )
            platform.approving(glass)
    assert acl_now(platform) == {"research"}
    with pytest.raises(PermissionDenied):  # an approver is not an admin
        platform.approving(lambda a: a.break_glass(bo(), "acl.set", change, "incident 42"))
    done = platform.approving(lambda a: a.break_glass(ana(), "acl.set", change, "incident 42: regulator request"))
    assert done.proposal.status == "break-glass" and done.proposal.break_glass
    assert acl_now(platform) == {"public"}
    flagged = [r for r in records(platform) if r["action"] == "approvals.break-glass"]
    assert [r["outcome"] for r in flagged] == ["error", "error", "denied", "ok"]
    assert flagged[-1]["filters"]["break_glass"] is True  # type: ignore[index]
    assert [p.id for p in platform.approving(lambda a: a.unreviewed(bo()))] == [done.proposal.id]
    with pytest.raises(PermissionDenied):  # the one who broke the glass does not review it
        platform.approving(lambda a: a.review(Principal("ana", GROUPS, frozenset({"approver"})), done.proposal.id))
    reviewed = platform.approving(lambda a: a.review(bo(), done.proposal.id))
    assert reviewed.reviewed_by == "bo"
    assert platform.approving(lambda a: a.unreviewed(bo())) == []
    with pytest.raises(QueryError):
        platform.approving(lambda a: a.review(bo(), done.proposal.id))


def test_every_step_is_audited_with_the_changes_hash(platform: Platform) -> None:
    pid = propose_acl(platform)
    platform.approving(lambda a: a.approve(bo(), pid))
    second = propose_acl(platform, acl=("research",))
    platform.approving(lambda a: a.reject(bo(), second, "no"))
    third = propose_acl(platform, acl=("research", "public"))
    platform.approvals.clock = lambda: datetime.now(UTC) + timedelta(days=2)
    platform.approving(lambda a: a.proposals(bo()))  # marks the third expired
    done = platform.approving(
        lambda a: a.break_glass(ana(), "acl.set", {"document_id": doc(platform), "acl": ["research"]}, "incident")
    )
    platform.approving(lambda a: a.review(bo(), done.proposal.id))
    got = {(r["action"], r["target"]) for r in records(platform) if r["outcome"] == "ok"}
    for action, target in [
        ("approvals.propose", pid), ("approvals.approve", pid), ("approvals.apply", pid),
        ("approvals.propose", second), ("approvals.reject", second),
        ("approvals.propose", third), ("approvals.expire", third),
        ("approvals.break-glass", done.proposal.id), ("approvals.apply", done.proposal.id),
        ("approvals.review", done.proposal.id),
    ]:  # fmt: skip
        assert (action, target) in got, action
    for r in records(platform):
        if r["target"]:
            assert len(r["filters"]["change_sha256"]) == 64  # type: ignore[index]


def test_an_api_key_that_carries_groups_goes_through_four_eyes(platform: Platform) -> None:
    with pytest.raises(ApprovalPending) as pending:
        platform.create_key(ana(), "svc-research", ["research"], days=30)
    assert platform.keys.list() == []
    with pytest.raises(PermissionDenied, match="four-eyes"):
        platform.ops.create_key(ana(), platform.keys, "svc", ["research"]).result()
    pid = pending.value.proposal_id
    with pytest.raises(PermissionDenied):  # a group the maker does not hold is refused at proposal
        platform.approving(lambda a: a.propose(ana(), "keys.create", {"owner": "x", "groups": ["treasury"]}))
    applied = platform.approving(lambda a: a.approve(bo(), pid))
    assert isinstance(applied.result, KeyCreated) and applied.result.groups == {"research"}
    (key,) = platform.keys.list()
    assert key.owner == "svc-research" and key.expires_at is not None
    assert key.expires_at.isoformat() == applied.proposal.change["expires_at"]


@pytest.mark.parametrize(
    ("kind", "change"),
    [
        ("acl.grant", {"document_id": "x", "acl": ["public"]}),
        ("acl.set", {"document_id": "x", "acl": "public"}),  # a string is not a list of groups
        ("acl.set", {"document_id": "x", "acl": [" "]}),
        ("acl.set", {"acl": ["public"]}),
        ("keys.create", {"owner": "svc", "groups": ["public"], "days": 10**12}),
        ("keys.create", {"owner": "svc", "groups": ["public"], "days": "soon"}),
        ("keys.create", {"owner": " ", "groups": ["public"]}),
        ("keys.create", {"owner": "svc", "groups": ["public"], "expires_at": "tomorrow"}),
    ],
)
def test_malformed_changes_are_refused_before_anything_is_kept(
    platform: Platform, kind: str, change: dict[str, object]
) -> None:
    with pytest.raises(QueryError):
        platform.approving(functools.partial(Approvals.propose, principal=ana(), kind=kind, change=change))
    with pytest.raises(QueryError):
        glass = functools.partial(Approvals.break_glass, principal=ana(), kind=kind, change=change, reason="incident")
        platform.approving(glass)
    assert platform.approving(lambda a: a.proposals(bo())) == []
    assert acl_now(platform) == {"research"} and platform.keys.list() == []


def test_model_route_and_deployment_changes_go_through_four_eyes(platform: Platform) -> None:
    spec = model_routes.deployment(
        "vllm-a", {"backend": "openai-compatible", "url": "http://127.0.0.1:9/v1", "model": "m"}
    )
    with pytest.raises(ApprovalPending) as made:
        model_routes.set_deployment(platform, ana(), "vllm-a", spec)
    with pytest.raises(ApprovalPending) as routed:
        model_routes.set_route(platform, ana(), "chat", ["vllm-a:90", "extractive"], "first")
    with pytest.raises(PermissionDenied, match="four-eyes"):  # nothing changes what answers directly
        platform.change_models(ana(), "models.set-route", "chat", lambda: None)
    assert models_config(platform.settings).routes == [] and models_config(platform.settings).deployments == {}
    with pytest.raises(PermissionDenied):
        platform.approving(lambda a: a.approve(ana(), routed.value.proposal_id))
    platform.approving(lambda a: a.approve(bo(), made.value.proposal_id))
    done = platform.approving(lambda a: a.approve(bo(), routed.value.proposal_id))
    (route,) = models_config(platform.settings).routes
    assert done.result == route and route.name == "chat" and route.note == "first"
    assert [(t.deployment, t.weight) for t in route.targets] == [("vllm-a", 90.0), ("extractive", 0.0)]
    assert models_config(platform.settings).deployments["vllm-a"].url == "http://127.0.0.1:9/v1"
    with pytest.raises(ApprovalPending) as second:
        model_routes.set_route(platform, ana(), "chat", ["extractive"], "fallback only")
    platform.approving(lambda a: a.approve(bo(), second.value.proposal_id))
    with pytest.raises(ApprovalPending) as back:
        model_routes.rollback_route(platform, ana(), "chat")
    platform.approving(lambda a: a.approve(bo(), back.value.proposal_id))
    assert model_routes.route_history(platform.settings, "chat").active.version == 1
    applied = [r for r in platform.audit_records(ana()) if str(r["action"]).startswith("models.")]
    assert [r["action"] for r in applied if r["outcome"] == "ok"] == [
        "models.set-deployment", "models.set-route", "models.set-route", "models.rollback",
    ]  # fmt: skip
    assert all(str(r["auth"]).startswith("four-eyes:") for r in applied if r["outcome"] == "ok")
