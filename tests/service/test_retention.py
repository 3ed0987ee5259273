"""Retention and legal holds through the application layer over a real store.

The attacks: deleting a held document by hand or by retention (by document, source and query
holds); a non-admin setting policies, placing, releasing or applying; a document published in
the future; applying retention "as of" a time still to come; with four-eyes on, a maker
approving their own policy or hold release (also with a second API key of the same owner), and
a direct change that bypasses the proposal."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from strongroom.auth.authenticator import Authenticator
from strongroom.auth.settings import ServiceSettings
from strongroom.config import Settings
from strongroom.errors import ApprovalPending, DocumentHeld, NotFound, PermissionDenied, QueryError
from strongroom.governance.holds import Hold
from strongroom.governance.retention import RetentionPolicy
from strongroom.service import IngestRequest, Platform
from strongroom.service import retention as retention_module
from strongroom.service.approvals import person_of
from strongroom.service.hold_store import SqliteHoldStore
from strongroom.service.retention import SYSTEM, Retention
from strongroom.testing import HashEmbedder
from strongroom.types import Principal

ADMIN = frozenset({"reader", "ingester", "admin"})
GROUPS = frozenset({"public", "research"})
RESEARCH_7Y = {"id": "research-7y", "keep": "7y", "doc_type": "research_report"}
FILES = {  # name: (published, doc_type)
    "old.txt": ("2001-03-01", "research_report"),
    "old-held.txt": ("2002-03-01", "research_report"),
    "recent.txt": ("2025-01-02", "research_report"),
    "future.txt": ("2099-01-01", "research_report"),
    "filing.txt": ("2001-03-01", "regulatory_filing"),
}


def ana() -> Principal:
    return Principal("ana", GROUPS, ADMIN, "oidc")


def bo() -> Principal:  # a checker: an approver and admin, another person
    return Principal("bo", GROUPS, ADMIN | {"approver"}, "oidc")


def reader() -> Principal:
    return Principal("dee", GROUPS, frozenset({"reader", "ingester"}), "oidc")


def _platform(home: Path, files: Path, *, four_eyes: bool) -> Platform:
    p = Platform.open(Settings(home=home, embedder="hash", four_eyes=four_eyes), embedder=HashEmbedder(64))
    for name, (published, doc_type) in FILES.items():
        (files / name).write_text(f"{name}\n\nThe desk note {name} says rates fall.\n")
        request = IngestRequest(
            paths=(files / name,), acl=frozenset({"research"}), published=published, doc_type=doc_type
        )
        assert p.ingest(ana(), request).ingested == 1
    return p


def _opened(tmp_path: Path, *, four_eyes: bool) -> Iterator[Platform]:
    (tmp_path / "files").mkdir()
    p = _platform(tmp_path / "home", tmp_path / "files", four_eyes=four_eyes)
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    yield from _opened(tmp_path, four_eyes=False)


@pytest.fixture
def four_eyes(tmp_path: Path) -> Iterator[Platform]:
    yield from _opened(tmp_path, four_eyes=True)


def live(p: Platform) -> dict[str, str]:
    """File name -> document id of every live version in the store (future ones included)."""
    return {v.name: v.document_id for v in p.ops.store.versions()}


def doc(p: Platform, name: str) -> str:
    return live(p)[name]


def names(p: Platform) -> set[str]:
    return set(live(p))


def records(p: Platform, prefix: str) -> list[dict[str, object]]:
    return [r for r in p.audit_records(ana()) if str(r["action"]).startswith(prefix)]


def hold_doc(p: Platform, name: str, matter: str = "M-1") -> Hold:
    return p.retaining(lambda r: r.place(ana(), matter, "litigation", document_id=doc(p, name)))


# -- applying ---------------------------------------------------------------------------------


def test_apply_deletes_what_expired_and_no_hold_covers(platform: Platform) -> None:
    platform.set_retention_policy(ana(), RESEARCH_7Y)
    held = hold_doc(platform, "old-held.txt", "M-2026-001")
    before = names(platform)
    dry = platform.retaining(lambda r: r.apply(ana(), dry_run=True))
    assert [d for d, _ in dry.deleted] == [doc(platform, "old.txt")]
    assert dry.held == ((doc(platform, "old-held.txt"), "M-2026-001", held.id),)
    assert names(platform) == before  # a dry run deletes nothing

    report = platform.retaining(lambda r: r.apply(ana()))
    assert len(report.deleted) == 1 and report.versions == 1 and report.kept == 3
    assert names(platform) == before - {"old.txt"}  # held, recent, future and the filing (no policy) stay
    with pytest.raises(NotFound):  # gone for readers too
        platform.find_document(ana(), "old.txt")
    deletions = records(platform, "retention.delete")
    assert len(deletions) == 1 and deletions[0]["filters"]["policy"]["id"] == "research-7y"  # type: ignore[index]
    summary = records(platform, "retention.apply")[-1]
    assert summary["detail"] == "1 deleted, 1 held, 3 kept"

    held_id = doc(platform, "old-held.txt")
    platform.release_hold(ana(), held.id)  # released: the next run deletes it
    again = platform.retaining(lambda r: r.apply(ana()))
    assert again.deleted == ((held_id, "research-7y"),)
    assert "old-held.txt" not in names(platform)


def test_a_document_published_in_the_future_never_expires(platform: Platform) -> None:
    platform.set_retention_policy(ana(), {"id": "short", "keep": "1d", "doc_type": "research_report"})
    report = platform.retaining(lambda r: r.apply(ana()))
    assert "future.txt" in names(platform) and "recent.txt" not in names(platform)
    assert doc(platform, "future.txt") not in {d for d, _ in report.deleted}
    with pytest.raises(QueryError, match="still to come"):  # nor can a caller move the clock forward
        platform.retaining(lambda r: r.apply(ana(), datetime(2200, 1, 1, tzinfo=UTC)))
    assert "future.txt" in names(platform)


def test_the_longest_policy_keeps_a_document(platform: Platform) -> None:
    platform.set_retention_policy(ana(), {"id": "short", "keep": "1y", "sensitivity": "internal"})
    platform.set_retention_policy(ana(), {"id": "long", "keep": "100y", "doc_type": "research_report"})
    report = platform.retaining(lambda r: r.apply(ana(), dry_run=True))
    sensitivity = {v.name: v.metadata.get("sensitivity") for v in platform.ops.store.versions()}
    assert sensitivity["old.txt"] == sensitivity["filing.txt"] == "internal"  # both policies match the notes
    assert report.deleted == ((doc(platform, "filing.txt"), "short"),)  # the old notes: "long" keeps them


@pytest.mark.parametrize(
    "target",
    [
        {"source": "old"},  # a prefix of the source key is matched below: filled in from the store
        {"query": ["doc_type=research_report", "title=old"]},
    ],
)
def test_source_and_query_holds_keep_documents_from_retention_and_delete(
    platform: Platform, target: dict[str, object]
) -> None:
    sources = {v.name: v.source for v in platform.ops.store.versions()}
    if "source" in target:
        target = {"source": sources["old.txt"].rsplit("/", 1)[0] + "/old"}  # old.txt and old-held.txt
    hold = platform.retaining(lambda r: r.place(ana(), "M-9", "inquiry", **target))  # type: ignore[arg-type]
    platform.set_retention_policy(ana(), RESEARCH_7Y)
    report = platform.retaining(lambda r: r.apply(ana()))
    assert report.deleted == () and {m for _, m, _ in report.held} == {"M-9"} and len(report.held) == 2
    assert {"old.txt", "old-held.txt"} <= names(platform)
    with pytest.raises(DocumentHeld, match="matter M-9") as refused:
        platform.delete(ana(), doc(platform, "old.txt"))
    assert refused.value.matter_id == "M-9" and refused.value.hold_id == hold.id


def test_a_held_document_cannot_be_deleted_by_hand_until_released(platform: Platform) -> None:
    held = hold_doc(platform, "recent.txt", "M-2026-007")
    target = doc(platform, "recent.txt")
    with pytest.raises(DocumentHeld, match="M-2026-007"):
        platform.delete(ana(), target)
    with pytest.raises(PermissionDenied):  # the operation itself, not only the driver
        platform.ops.delete(ana(), target).result()
    assert "recent.txt" in names(platform)
    refused = [r for r in records(platform, "documents.delete") if r["target"] == target]
    assert refused and all(r["outcome"] == "denied" for r in refused)
    platform.release_hold(ana(), held.id)
    assert platform.delete(ana(), target)
    assert "recent.txt" not in names(platform)
    with pytest.raises(QueryError, match="released already"):
        platform.release_hold(ana(), held.id)


def test_the_schedule_principal_applies_as_an_audited_admin(platform: Platform) -> None:
    platform.set_retention_policy(ana(), RESEARCH_7Y)
    report = platform.retaining(lambda r: r.apply(SYSTEM))
    assert len(report.deleted) == 2  # nothing held: both old research notes
    last = records(platform, "retention.apply")[-1]
    assert last["principal"] == "system:retention" and last["outcome"] == "ok"


# -- who may ----------------------------------------------------------------------------------


def test_only_admins_set_place_release_and_apply(platform: Platform) -> None:
    held = hold_doc(platform, "recent.txt")
    refused = [
        lambda: platform.set_retention_policy(reader(), RESEARCH_7Y),
        lambda: platform.remove_retention_policy(reader(), "research-7y"),
        lambda: platform.retaining(lambda r: r.policies(reader())),
        lambda: platform.retaining(lambda r: r.place(reader(), "M", "why", document_id="x")),
        lambda: platform.retaining(lambda r: r.holds(reader())),
        lambda: platform.release_hold(reader(), held.id),
        lambda: platform.retaining(lambda r: r.apply(reader())),
    ]
    for attempt in refused:
        with pytest.raises(PermissionDenied, match="admin"):
            attempt()
    assert platform.retaining(lambda r: r.policies(ana())) == []
    assert [h.id for h in platform.retaining(lambda r: r.holds(ana(), active_only=True))] == [held.id]
    denied = [r for r in records(platform, "retention.") + records(platform, "holds.") if r["outcome"] == "denied"]
    assert len(denied) == len(refused)


def test_bad_policies_and_holds_are_refused_and_change_nothing(platform: Platform) -> None:
    for bad in (
        {"id": "p", "keep": "forever", "doc_type": "x"},
        {"id": "p", "keep": "7y"},
        {"id": "--all", "keep": "7y", "doc_type": "x"},
    ):
        with pytest.raises(QueryError):
            platform.set_retention_policy(ana(), bad)
    for target in ({}, {"document_id": "d", "source": "s"}, {"query": ["nonsense"]}, {"query": []}):
        with pytest.raises(QueryError):
            platform.retaining(lambda r, t=target: r.place(ana(), "M", "why", **t))  # type: ignore[misc]
    with pytest.raises(QueryError):
        platform.retaining(lambda r: r.place(ana(), "M", " ", document_id="d"))
    with pytest.raises(NotFound):
        platform.release_hold(ana(), "nope")
    with pytest.raises(NotFound):
        platform.remove_retention_policy(ana(), "nope")
    assert platform.retaining(lambda r: r.policies(ana())) == []
    assert platform.retaining(lambda r: r.holds(ana())) == []


# -- four-eyes --------------------------------------------------------------------------------


def _proposed(call) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(ApprovalPending) as pending:
        call()
    return pending.value.proposal_id


def test_four_eyes_policies_and_releases_need_another_persons_approval(four_eyes: Platform) -> None:
    p = four_eyes
    pid = _proposed(lambda: p.set_retention_policy(ana(), RESEARCH_7Y, "records schedule 2026"))
    assert p.retaining(lambda r: r.policies(ana())) == []  # proposed, not made
    with pytest.raises(PermissionDenied, match="four-eyes"):  # the operation refuses a bypass
        p.retention.set_policy(ana(), RESEARCH_7Y).result()
    both = Principal("ana", GROUPS, ADMIN | {"approver"}, "oidc")
    for mine in (both, Principal("key:ana", GROUPS, frozenset({"approver"}), "api-key", "k2")):
        with pytest.raises(PermissionDenied, match="another person"):
            p.approving(lambda a, who=mine: a.approve(who, pid))  # type: ignore[misc]
    assert p.retaining(lambda r: r.policies(ana())) == []
    applied = p.approving(lambda a: a.approve(bo(), pid))
    assert applied.proposal.status == "applied" and applied.describe()["result"]["id"] == "research-7y"
    assert p.retaining(lambda r: r.policies(ana())) == [
        RetentionPolicy("research-7y", years=7, doc_type="research_report")
    ]

    held = hold_doc(p, "old-held.txt")  # placing a hold never waits
    release = _proposed(lambda: p.release_hold(ana(), held.id, "matter closed"))
    with pytest.raises(PermissionDenied, match="four-eyes"):
        p.retention.release(ana(), held.id).result()
    with pytest.raises(PermissionDenied, match="another person"):
        p.approving(lambda a: a.approve(both, release))
    report = p.retaining(lambda r: r.apply(ana()))
    assert "old-held.txt" in names(p) and len(report.held) == 1  # still held
    assert p.approving(lambda a: a.approve(bo(), release)).proposal.status == "applied"
    assert p.retaining(lambda r: r.holds(ana(), active_only=True)) == []
    assert len(p.retaining(lambda r: r.apply(ana())).deleted) == 1
    assert "old-held.txt" not in names(p)

    removal = _proposed(lambda: p.remove_retention_policy(ana(), "research-7y"))
    p.approving(lambda a: a.approve(bo(), removal))
    assert p.retaining(lambda r: r.policies(ana())) == []


def test_four_eyes_two_keys_of_one_owner_are_one_person(four_eyes: Platform) -> None:
    p = four_eyes
    until = datetime.now(UTC) + timedelta(days=1)
    _, maker_secret = p.keys.create("ana", frozenset({"research", "strongroom-admins"}), until)
    _, checker_secret = p.keys.create("ana", frozenset({"research", "strongroom-approvers"}), until)
    roles = {"reader": ["research"], "admin": ["strongroom-admins"], "approver": ["strongroom-approvers"]}
    auth = Authenticator(ServiceSettings(role_groups=roles), p.keys, None)
    maker = auth.authenticate(f"Bearer {maker_secret}").principal
    second = auth.authenticate(f"Bearer {checker_secret}").principal
    assert person_of(maker) == person_of(second) == "ana"
    held = hold_doc(p, "old-held.txt")
    for kind_call in (
        lambda: p.set_retention_policy(maker, RESEARCH_7Y),
        lambda: p.release_hold(maker, held.id),
    ):
        pid = _proposed(kind_call)
        with pytest.raises(PermissionDenied, match="a second key"):
            p.approving(lambda a, pid=pid: a.approve(second, pid))  # type: ignore[misc]
    assert p.retaining(lambda r: r.policies(ana())) == []
    assert [h.id for h in p.retaining(lambda r: r.holds(ana(), active_only=True))] == [held.id]


class _HoldArrivesMidRun(SqliteHoldStore):
    """The catalog's hold table, where another process (``other``, its own connection) places a
    hold on ``document_id`` at the third read of a retention run: the run read the holds to
    plan (1) and before its first batch (2); the hold lands before its second batch (3)."""

    def __init__(self, catalog: Path, other: Retention, document_id: str) -> None:
        super().__init__(catalog)
        self.other, self.document_id, self.reads = other, document_id, 0

    def active(self) -> list[Hold]:
        self.reads += 1
        if self.reads == 3:
            placed = self.other.place(ana(), "M-LATE", "subpoena served during the run", document_id=self.document_id)
            assert placed.error is None, placed.error
        return super().active()


def test_a_hold_placed_while_retention_runs_is_honoured_from_the_next_batch(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform.set_retention_policy(ana(), RESEARCH_7Y)
    monkeypatch.setattr(retention_module, "_BATCH", 1)  # one document a batch: the hold lands between two
    order = [d for d, _ in platform.retaining(lambda r: r.apply(ana(), dry_run=True)).deleted]
    assert len(order) == 2  # old.txt and old-held.txt expired; nothing holds them yet
    catalog = platform.settings.catalog_path
    other = Retention(platform.ops, SqliteHoldStore(catalog))
    run = Retention(platform.ops, _HoldArrivesMidRun(catalog, other, order[1]))
    try:
        report = platform.retaining(lambda _: run.apply(ana()))
    finally:
        run.close()
        other.close()
    assert run.store.reads == 3  # type: ignore[attr-defined]  # the hold arrived between the two batches
    assert [d for d, _ in report.deleted] == [order[0]]
    assert [(d, m) for d, m, _ in report.held] == [(order[1], "M-LATE")]
    assert order[1] in live(platform).values() and order[0] not in live(platform).values()
    deletes = [r["target"] for r in records(platform, "retention.delete")]
    assert deletes == [order[0]]  # no record says the held document was deleted
