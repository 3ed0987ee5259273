"""Attacks on retention, legal holds and the model registry (issue 20), from every entry point:
the Python platform, the ``strongroom`` CLI (typer's runner) and real HTTP.

What broke before the fixes these tests came with:

- a hold on a document that is not there (a typo, a file name sent over HTTP, a version id)
  was placed and covered nothing, so retention deleted the document the matter needed;
- an older version under a longer policy (a contract kept 10 years, re-filed as research kept
  1 year) was deleted with its document when the newest version expired;
- the ``reason`` of a policy change or a hold release was dropped: over HTTP it never reached
  the four-eyes proposal, and with four-eyes off it was in no audit record;
- a proposal to release a hold that does not exist (or was released already) waited for an
  approver, who could only see a hold id;
- an evaluation narrowed by ``--doc-type`` or ``--filter`` counted as release-gate evidence
  on "the same evaluation set" as an unnarrowed production run (its record did not even say);
- the release gate measured nothing about the candidate: any evaluation run (production's own,
  another embedder's, one as of another day or by other groups) was attached to any entry and
  compared as "the same set". The regressions below are real: a home re-embedded from a worse
  embedder (``switched_home``), whose run is in the home's own log.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from strongroom.cli import app
from strongroom.config import Settings
from strongroom.errors import ApprovalPending, NotFound, PermissionDenied, QueryError
from strongroom.evaluate import QAItem, load_qa
from strongroom.governance.holds import Hold, hold_on, query_terms
from strongroom.governance.registry import Evidence, Lineage, ModelEntry, gate
from strongroom.governance.retention import RetentionPolicy, expired, plan
from strongroom.service import IngestRequest, Platform, View
from strongroom.service.registry import PROMOTE, promote_change
from strongroom.testing import HashEmbedder
from strongroom.types import DocumentVersion, Principal, frozen_meta
from tests.api.test_retention_http import World, _world
from tests.auth.oidc_provider import Provider
from tests.service.test_registry import switched_home

ADMIN = frozenset({"reader", "ingester", "admin"})
GROUPS = frozenset({"public", "research"})
NOW = datetime(2026, 6, 1, tzinfo=UTC)
CLI_ADMIN = {"STRONGROOM_CLI_ROLES": '["reader","ingester","admin"]', "STRONGROOM_EMBEDDER": "hash"}


def ana() -> Principal:
    return Principal("ana", GROUPS, ADMIN, "oidc")


def bo() -> Principal:
    return Principal("bo", GROUPS, ADMIN | {"approver"}, "oidc")


def version(doc: str, n: int, published: datetime, doc_type: str, source: str = "s3://bank/") -> DocumentVersion:
    return DocumentVersion(
        id=f"{doc}-v{n}", document_id=doc, source=f"{source}{doc}.pdf", title="note", media_type="application/pdf",
        doc_type=doc_type, acl=frozenset({"research"}), published_at=published, ingested_at=published, size=1,
        pages=1, metadata=frozen_meta({"sensitivity": "internal"}),
    )  # fmt: skip


def _open(home: Path, files: Path, *, four_eyes: bool = False) -> Platform:
    p = Platform.open(Settings(home=home, embedder="hash", four_eyes=four_eyes), embedder=HashEmbedder(64))
    for name in ("old.txt", "other.txt"):
        (files / name).write_text(f"{name}\n\nThe desk note {name} expects two cuts this year.\n")
        request = IngestRequest(
            paths=(files / name,), acl=frozenset({"research"}), published="2001-03-01", doc_type="research_report"
        )
        assert p.ingest(ana(), request).ingested == 1
    return p


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    (tmp_path / "files").mkdir()
    p = _open(tmp_path / "home", tmp_path / "files")
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
def four_eyes(tmp_path: Path) -> Iterator[Platform]:
    (tmp_path / "files").mkdir()
    p = _open(tmp_path / "home", tmp_path / "files", four_eyes=True)
    try:
        yield p
    finally:
        p.close()


def docs(p: Platform) -> dict[str, str]:
    return {v.name: v.document_id for v in p.ops.store.versions()}


def records(p: Platform, action: str) -> list[dict[str, object]]:
    return [r for r in p.audit_records(ana()) if r["action"] == action]


# -- pure rules -------------------------------------------------------------------------------


def test_an_older_version_under_a_longer_policy_keeps_the_document() -> None:
    contracts = RetentionPolicy("contracts-10y", years=10, doc_type="contract")
    research = RetentionPolicy("research-1y", years=1, doc_type="research_report")
    v1 = version("d", 0, datetime(2024, 1, 1, tzinfo=UTC), "contract")  # kept until 2034
    v2 = version("d", 1, datetime(2025, 1, 1, tzinfo=UTC), "research_report")  # re-filed: 1 year
    assert expired([contracts, research], [v1, v2], NOW) == []  # deleting d would delete v1 too
    assert plan([contracts, research], [], [v1, v2], NOW).delete == ()
    later = datetime(2034, 1, 2, tzinfo=UTC)
    assert expired([contracts, research], [v1, v2], later) == [("d", contracts)]
    # the newest version still decides when it is kept longer, and an unmatched newest never expires
    assert expired([contracts, research], [version("e", 0, datetime(2001, 1, 1, tzinfo=UTC), "contract"),
                                           version("e", 1, datetime(2025, 1, 1, tzinfo=UTC), "contract")], NOW) == []  # fmt: skip
    unmatched = version("f", 1, datetime(2001, 1, 1, tzinfo=UTC), "memo")
    assert expired([contracts], [version("f", 0, datetime(2001, 1, 1, tzinfo=UTC), "contract"), unmatched], NOW) == []


def test_a_source_hold_is_a_prefix_and_only_ever_keeps_more() -> None:
    """``reports/a`` is a prefix, not a folder: it covers ``reports/ab/...`` too (a hold keeps
    more, never less); ``reports/ab`` never covers ``reports/a/...``."""
    on_a = Hold("h", "M", "ana", "r", NOW, source="s3://bank/reports/a")
    on_ab = Hold("h", "M", "ana", "r", NOW, source="s3://bank/reports/ab")
    in_a = version("x", 0, NOW, "memo", "s3://bank/reports/a/")
    in_ab = version("y", 0, NOW, "memo", "s3://bank/reports/ab/")
    assert hold_on([on_a], in_a) is not None and hold_on([on_a], in_ab) is not None
    assert hold_on([on_ab], in_ab) is not None and hold_on([on_ab], in_a) is None


def test_the_gate_never_accepts_on_non_numbers() -> None:
    sha = "ab" * 32
    with pytest.raises(ValueError, match="finite"):
        Evidence("qa", sha, {"k": 5, "mrr": float("nan")}, NOW, 1)
    prod = [Evidence("qa", sha, {"k": 5, "mrr": 0.8}, NOW, 1, "hash-64", groups=("r",))]
    for tolerance in (float("nan"), float("inf"), -0.1):
        with pytest.raises(ValueError, match="tolerance"):
            gate([Evidence("qa", sha, {"k": 5, "mrr": 0.1}, NOW, 2, "st:x", groups=("r",))], prod, tolerance)
    # a metric production has that the candidate's run lacks is a regression, not a pass
    lacking = gate([Evidence("qa", sha, {"k": 5, "mrr": None}, NOW, 2, "st:x", groups=("r",))], prod, 0.5)
    assert not lacking.accepted and "mrr on qa regressed: None" in lacking.reasons[0]


# -- holds: the target must be there ----------------------------------------------------------


def test_a_hold_on_a_document_that_is_not_there_is_refused(platform: Platform) -> None:
    version_id = platform.ops.store.versions()[0].id
    for wrong in ("old.txt", "no-such-document", version_id):  # a file name, a typo, a version id
        with pytest.raises(NotFound, match="no document"):
            platform.retaining(lambda r, d=wrong: r.place(ana(), "M-1", "litigation", document_id=d))  # type: ignore[misc]
    assert platform.retaining(lambda r: r.holds(ana())) == []
    hold = platform.retaining(lambda r: r.place(ana(), "M-1", "litigation", document_id=docs(platform)["old.txt"]))
    assert hold.active


def test_cli_hold_on_a_mistyped_file_name_places_nothing(tmp_path: Path) -> None:
    home, files = tmp_path / "home", tmp_path / "files"
    files.mkdir()
    _open(home, files).close()
    runner = CliRunner()

    def cli(*args: str) -> object:
        return runner.invoke(app, [*args, "--home", str(home), "--groups", "research"], env=CLI_ADMIN)

    typo = cli("holds", "place", "--matter", "M-9", "--reason", "litigation", "--document", "old.text", "--json")
    assert typo.exit_code == 1 and "old.text" in typo.output  # type: ignore[attr-defined]
    listed = cli("holds", "list", "--json")
    assert listed.exit_code == 0 and json.loads(listed.stdout) == []  # type: ignore[attr-defined]
    ok = cli("holds", "place", "--matter", "M-9", "--reason", "litigation", "--document", "old.txt", "--json")
    assert ok.exit_code == 0 and json.loads(ok.stdout)["kind"] == "document"  # type: ignore[attr-defined]


@pytest.fixture
def http(tmp_path: Path, provider: Provider) -> Iterator[World]:
    yield from _world(tmp_path, provider)


@pytest.fixture
def http_four_eyes(tmp_path: Path, provider: Provider) -> Iterator[World]:
    yield from _world(tmp_path, provider, four_eyes=True)


def test_http_hold_by_file_name_is_a_404_not_a_hold_on_nothing(http: World) -> None:
    with http.admin() as admin:
        placed = admin.post("/v1/holds", json={"matter_id": "M-1", "reason": "litigation", "document_id": "kept.txt"})
        assert placed.status_code == 404, placed.text
        assert admin.get("/v1/holds").json() == []
        assert admin.put("/v1/retention/policies/r7", json={"keep": "7y", "doc_type": "research_report"}).is_success
        assert admin.post("/v1/retention/apply", json={"dry_run": True}).json()["held"] == 0


# -- reasons are kept -------------------------------------------------------------------------


def test_the_reason_of_a_release_and_a_policy_change_is_audited(platform: Platform) -> None:
    hold = platform.retaining(lambda r: r.place(ana(), "M-1", "litigation", document_id=docs(platform)["old.txt"]))
    platform.release_hold(ana(), hold.id, "matter M-1 closed by court order 17")
    assert "court order 17" in str(records(platform, "holds.release")[-1].get("detail"))
    platform.set_retention_policy(ana(), {"id": "r7", "keep": "7y", "doc_type": "research_report"}, "RRS 4.2")
    assert "RRS 4.2" in str(records(platform, "retention.set")[-1].get("detail"))
    platform.remove_retention_policy(ana(), "r7", "superseded by RRS 4.3")
    assert "RRS 4.3" in str(records(platform, "retention.remove")[-1].get("detail"))


def test_http_reasons_reach_the_four_eyes_proposal(http_four_eyes: World) -> None:
    w = http_four_eyes
    with w.client(token=w.maker_key) as maker, w.client(sub="bo", groups=("approvers", "research")) as bo_:
        body = {"keep": "7y", "doc_type": "research_report", "reason": "records schedule 4.2"}
        pid = maker.put("/v1/retention/policies/r7", json=body).json()["proposal_id"]
        assert bo_.get(f"/v1/approvals/{pid}").json()["reason"] == "records schedule 4.2"
        kept = w.docs["kept.txt"]
        hold = maker.post("/v1/holds", json={"matter_id": "M-1", "reason": "r", "document_id": kept}).json()
        release = maker.post(f"/v1/holds/{hold['id']}/release", json={"reason": "matter closed"})
        assert release.status_code == 202
        shown = bo_.get(f"/v1/approvals/{release.json()['proposal_id']}").json()
        assert shown["reason"] == "matter closed" and shown["change"]["matter_id"] == "M-1"
        assert shown["change"]["target"] == f"document:{kept}"
        nothing = maker.post("/v1/holds/no-such-hold/release", json={"reason": "typo"})
        assert nothing.status_code == 404, nothing.text  # not a proposal an approver would wait on
        removal = maker.delete("/v1/retention/policies/r7", params={"reason": "superseded"})
        assert removal.status_code == 202
        assert bo_.get(f"/v1/approvals/{removal.json()['proposal_id']}").json()["reason"] == "superseded"


# -- four-eyes on holds -------------------------------------------------------------------------


def test_a_release_of_a_hold_that_is_not_in_force_is_refused_when_proposed(four_eyes: Platform) -> None:
    with pytest.raises(NotFound, match="no legal hold"):
        four_eyes.release_hold(ana(), "no-such-hold", "closed")
    hold = four_eyes.retaining(lambda r: r.place(ana(), "M-1", "lit", document_id=docs(four_eyes)["old.txt"]))
    with pytest.raises(ApprovalPending) as pending:
        four_eyes.release_hold(ana(), hold.id, "closed")
    proposal = four_eyes.approving(lambda a: a.show(bo(), pending.value.proposal_id))
    assert proposal.change["hold_id"] == hold.id
    four_eyes.approving(lambda a: a.approve(bo(), pending.value.proposal_id))
    with pytest.raises(QueryError, match="released already"):
        four_eyes.release_hold(ana(), hold.id, "again")
    # one person: a second credential of the maker never approves; direct release refused
    hold2 = four_eyes.retaining(lambda r: r.place(ana(), "M-2", "lit", document_id=docs(four_eyes)["old.txt"]))
    with pytest.raises(ApprovalPending) as pending2:
        four_eyes.release_hold(ana(), hold2.id, "closed")
    as_key = Principal("key:ana", GROUPS, ADMIN | {"approver"}, "api_key")
    with pytest.raises(PermissionDenied, match="another person"):
        four_eyes.approving(lambda a: a.approve(as_key, pending2.value.proposal_id))
    with pytest.raises(PermissionDenied, match="four-eyes"):
        four_eyes.retaining(lambda r: r.release(ana(), hold2.id))
    assert [h.id for h in four_eyes.retaining(lambda r: r.holds(ana(), active_only=True))] == [hold2.id]


def test_retention_never_runs_as_of_the_future(platform: Platform) -> None:
    platform.set_retention_policy(ana(), {"id": "r1", "keep": "1d", "doc_type": "research_report"})
    with pytest.raises(QueryError, match="still to come"):
        platform.retaining(lambda r: r.apply(ana(), datetime.now(UTC) + timedelta(days=3650)))
    with pytest.raises(QueryError, match="time zone"):  # a naive time: which 3 March? (was a TypeError)
        platform.retaining(lambda r: r.apply(ana(), datetime(2020, 1, 1)))
    assert len(docs(platform)) == 2


# -- the registry -----------------------------------------------------------------------------


def test_a_narrowed_evaluation_is_not_release_gate_evidence(platform: Platform, tmp_path: Path) -> None:
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"id": "q", "question": "How many cuts?", "evidence": [{"doc": "old.txt"}]}) + "\n")
    items = load_qa(qa)
    entry = ModelEntry("emb", "1", "embedder", "mrm", "high", platform.ops.store.model_id, Lineage(), "card")
    platform.registering(lambda r: r.register(ana(), entry))
    for view in (View(doc_types=frozenset({"research_report"})), View(filters={"ticker": "AAPL"})):
        _, seq = platform.evaluate_recorded(ana(), items, 5, view, name="qa.jsonl")
        record = next(r for r in records(platform, "eval") if r["seq"] == seq)
        assert record["filters"]["doc_types"] or record["filters"]["meta_filters"]  # type: ignore[index]
        with pytest.raises(QueryError, match="narrowed"):
            platform.registering(lambda r, s=seq: r.attach(ana(), "emb@1", s))  # type: ignore[misc]
    _, seq = platform.evaluate_recorded(ana(), items, 5, name="qa.jsonl")
    assert len(platform.registering(lambda r: r.attach(ana(), "emb@1", seq)).evidence) == 1


def test_a_promotion_of_a_version_that_is_not_there_is_refused(platform: Platform, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no model"):
        platform.approving(lambda a: a.propose(ana(), PROMOTE, promote_change("chat@9", "validated"), "r"))
    with pytest.raises(NotFound, match="no model"):
        platform.approving(lambda a: a.break_glass(ana(), PROMOTE, promote_change("chat@9", "production"), "now"))
    done = CliRunner().invoke(
        app, ["registry", "promote", "chat@9", "--to", "validated", "--home", str(platform.settings.home)],
        env=CLI_ADMIN,
    )  # fmt: skip
    assert done.exit_code == 1 and "chat@9" in done.output


def test_a_misspelt_sensitivity_is_refused_not_a_policy_or_hold_on_nothing(http: World) -> None:
    """``Restricted`` or ``secret`` would match nothing: a policy meant to delete restricted data
    after a year would keep it forever, and a hold meant to keep it would keep nothing."""
    with pytest.raises(QueryError, match="public, internal, confidential or restricted"):
        RetentionPolicy("r1", years=1, sensitivity="Restricted")
    with pytest.raises(QueryError, match="public, internal, confidential or restricted"):
        query_terms(["meta.sensitivity=secret"])
    assert RetentionPolicy("r1", years=1, sensitivity="restricted").sensitivity == "restricted"
    with http.admin() as admin:
        put = admin.put("/v1/retention/policies/r1", json={"keep": "1y", "sensitivity": "Restricted"})
        assert put.status_code == 422 and "restricted" in put.json()["error"]["message"]
        hold = admin.post("/v1/holds", json={"matter_id": "M", "reason": "r", "query": {"meta.sensitivity": "x"}})
        assert hold.status_code == 422, hold.text
        assert admin.get("/v1/retention/policies").json() == [] and admin.get("/v1/holds").json() == []


def _move(p: Platform, ref: str, stage: str) -> None:
    pid = p.approving(lambda a: a.propose(ana(), PROMOTE, promote_change(ref, stage), "r")).id
    p.approving(lambda a: a.approve(Principal("cy", GROUPS, frozenset({"approver"}), "oidc"), pid))


@dataclass
class Switched:
    """A platform on a home re-embedded from hash-1 to hash-64 (its audit chain with it):
    ``good``, ``good2``: runs of hash-64 on ``items`` (recall 1.0); ``old``: hash-1's (0.25)."""

    platform: Platform
    items: list[QAItem]
    good: int
    good2: int
    old: int

    def register(self, ref: str, binding: str, *seqs: int, stage: str = "validated") -> None:
        name, version = ref.split("@")
        entry = ModelEntry(name, version, "embedder", "mrm", "high", binding)
        self.platform.registering(lambda r: r.register(ana(), entry))
        for seq in seqs:
            self.platform.registering(lambda r, s=seq: r.attach(ana(), ref, s))  # type: ignore[misc]
        for to in ("validated", "production")[: ("validated", "production").index(stage) + 1]:
            _move(self.platform, ref, to)


@pytest.fixture
def switched(tmp_path: Path) -> Iterator[Switched]:
    home = switched_home(tmp_path)
    with Platform.open(home.settings, embedder=HashEmbedder(64)) as p:
        items = load_qa(home.qa)
        runs = [p.evaluate_recorded(ana(), items, 1, name="notes.jsonl") for _ in range(2)]
        assert [r["doc_recall_at_1"] for r, _ in runs] == [1.0, 1.0]
        yield Switched(p, items, runs[0][1], runs[1][1], home.old_run)


def test_productions_own_run_or_another_embedders_is_not_the_candidates(switched: Switched) -> None:
    """Before: a candidate with production's own run attached (or any run at all) was "measured"."""
    p = switched.platform
    switched.register("emb@1", "hash-64", switched.good, stage="production")
    switched.register("emb@2", "hash-64")
    with pytest.raises(QueryError, match="is evidence of emb@1 already"):
        p.registering(lambda r: r.attach(ana(), "emb@2", switched.good))
    switched.register("cheap@1", "hash-1")
    with pytest.raises(QueryError, match="evaluated the embedder hash-64, not cheap@1"):
        p.registering(lambda r: r.attach(ana(), "cheap@1", switched.good2))
    p.registering(lambda r: r.register(ana(), ModelEntry("chat", "1", "chat", "mrm", "high", "vllm-a")))
    with pytest.raises(QueryError, match="measures the embedder hash-64, not the chat model chat@1"):
        p.registering(lambda r: r.attach(ana(), "chat@1", switched.good2))
    _move(p, "chat@1", "validated")
    for ref in ("emb@2", "chat@1"):  # nothing attached: the gate still wants a run of their own
        with pytest.raises(PermissionDenied, match="no evaluation attached"):
            p.approving(lambda a, x=ref: a.propose(ana(), PROMOTE, promote_change(x, "production"), "r"))  # type: ignore[misc]


def test_a_run_under_other_clocks_or_groups_is_not_compared(switched: Switched) -> None:
    """As of 2000 nothing was published: every metric 0 (or, by fewer groups, 1.0 of less):
    neither is a measurement of production's, whatever its figures."""
    p = switched.platform
    switched.register("emb@1", "hash-64", switched.good, stage="production")
    narrow = Principal("ana", frozenset({"research"}), ADMIN, "oidc")
    for who, view in ((ana(), View(as_of="2000-01-01")), (narrow, View())):
        seq = p.evaluate_recorded(who, switched.items, 1, view, name="notes.jsonl")[1]
        switched.register(f"emb@c{seq}", "hash-64", seq)
        with pytest.raises(PermissionDenied, match=r"no evaluation on production's set notes\.jsonl"):
            p.approving(lambda a, s=seq: a.propose(ana(), PROMOTE, promote_change(f"emb@c{s}", "production"), "r"))  # type: ignore[misc]


def test_a_new_name_on_the_production_binding_does_not_skip_the_gate(switched: Switched) -> None:
    """Registering a model under a new name bound to the production embedder would be compared
    with nothing: the gate compares it with whatever is in production on that binding."""
    p = switched.platform
    switched.register("emb@1", "hash-64", switched.good, stage="production")
    as_then = p.evaluate_recorded(ana(), switched.items, 1, View(as_of="2000-01-01"), name="notes.jsonl")[1]
    switched.register("emb-b@1", "hash-64", as_then)
    with pytest.raises(PermissionDenied, match="release gate"):
        p.approving(lambda a: a.propose(ana(), PROMOTE, promote_change("emb-b@1", "production"), "r"))
    switched.register("emb-c@1", "hash-64", switched.good2, stage="production")  # measured as production was


def test_the_approver_of_a_release_sees_which_matter_and_documents_it_frees(four_eyes: Platform) -> None:
    """A checker who is not an admin cannot list holds: a proposal naming only a hold id would
    be approved blind. The proposal carries the hold's matter and target (and the maker cannot
    write them: they are read from the hold)."""
    document_id = docs(four_eyes)["old.txt"]
    hold = four_eyes.retaining(lambda r: r.place(ana(), "M-2026-41", "lit", document_id=document_id))
    checker = Principal("cy", GROUPS, frozenset({"approver"}), "oidc")
    with pytest.raises(PermissionDenied):
        four_eyes.retaining(lambda r: r.holds(checker))
    lie = {"hold_id": hold.id, "matter_id": "M-TRIVIAL", "target": "document:nothing"}
    p = four_eyes.approving(lambda a: a.propose(ana(), "holds.release", lie, "closed"))
    shown = four_eyes.approving(lambda a: a.show(checker, p.id)).change
    assert shown == {"hold_id": hold.id, "matter_id": "M-2026-41", "target": f"document:{document_id}"}
    four_eyes.approving(lambda a: a.approve(checker, p.id))
    assert four_eyes.retaining(lambda r: r.holds(ana(), active_only=True)) == []


def test_newcomer_mistakes_on_the_registry_are_clear_4xx(http: World) -> None:
    with http.admin() as admin:
        for path, status in (
            ("/v1/registry/records/0", 404),
            ("/v1/registry/records/999999", 404),
            ("/v1/registry/models/chat", 422),  # no @VERSION
            ("/v1/registry/models/chat@9", 404),
            ("/v1/registry/which?at=not-a-date", 422),
        ):
            got = admin.get(path)
            assert got.status_code == status and got.json()["error"]["message"], (path, got.text)
        promote = admin.post("/v1/registry/models/chat@9/promote", json={"stage": "production"})
        assert promote.status_code == 404 and "chat@9" in promote.text
        evidence = admin.post("/v1/registry/models/chat@9/evidence", json={"audit_seq": 1})
        assert evidence.status_code == 404


def test_every_governance_command_speaks_json(tmp_path: Path) -> None:
    runner = CliRunner()
    for group, commands in (
        ("retention", ("set", "list", "remove", "apply")),
        ("holds", ("place", "list", "release")),
        ("registry", ("register", "list", "show", "evidence", "promote", "which", "resolve")),
    ):
        for command in commands:
            shown = runner.invoke(app, [group, command, "--help"], env={"COLUMNS": "200"})
            assert shown.exit_code == 0 and "--json" in shown.output, (group, command)


def test_a_legal_hold_is_never_released_by_break_glass(platform: Platform) -> None:
    """Break glass is for what cannot wait; nothing about letting a matter's documents be deleted
    is urgent, and once retention has run a review after the fact restores nothing."""
    document_id = docs(platform)["old.txt"]
    hold = platform.retaining(lambda r: r.place(ana(), "M-5", "litigation", document_id=document_id))
    with pytest.raises(PermissionDenied, match="break glass"):
        platform.approving(lambda a: a.break_glass(ana(), "holds.release", {"hold_id": hold.id}, "urgent!"))
    assert [h.id for h in platform.retaining(lambda r: r.holds(ana(), active_only=True))] == [hold.id]
    assert platform.approving(lambda a: a.unreviewed(bo())) == []
    refused = [r for r in platform.audit_records(ana()) if r["action"] == "approvals.break-glass"]
    assert refused and refused[-1]["outcome"] == "denied"


def test_one_admin_cannot_lower_the_bar_by_re_evaluating_production(switched: Switched, tmp_path: Path) -> None:
    """The newest run on a set counts: attaching a newer run to the production version (on the
    same questions, k, clocks and groups) would re-set the bar every candidate is gated against,
    by one admin, with no approver."""
    p = switched.platform
    switched.register("emb@1", "hash-64", switched.good, stage="production")
    with pytest.raises(QueryError, match="in production"):
        p.registering(lambda r: r.attach(ana(), "emb@1", switched.good2))
    switched.register("emb@0", "hash-1", switched.old)
    with pytest.raises(PermissionDenied, match=r"release gate.*doc_recall_at_1 on notes\.jsonl regressed: 0\.25"):
        p.approving(lambda a: a.propose(ana(), PROMOTE, promote_change("emb@0", "production"), "r"))
    # a new evaluation set only adds a bar: production may be evaluated on it
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"id": "z", "question": "gold gold", "evidence": [{"doc": "d5.txt"}]}) + "\n")
    _, seq = p.evaluate_recorded(ana(), load_qa(other), 1, name="other.jsonl")
    assert len(p.registering(lambda r: r.attach(ana(), "emb@1", seq)).evidence) == 2


def test_retiring_production_first_does_not_empty_the_gate(switched: Switched) -> None:
    """Two break-glass moves by one admin, retire production and then promote a regressed
    version, would meet a gate with nothing to compare against: the version last in production
    is the bar until another one is."""
    p = switched.platform
    switched.register("emb@1", "hash-64", switched.good, stage="production")
    switched.register("emb@0", "hash-1", switched.old)
    switched.register("emb@3", "hash-64", switched.good2)
    glass = p.approving(
        lambda a: a.break_glass(ana(), PROMOTE, promote_change("emb@1", "retired"), "incident 9: bad answers")
    )
    assert glass.proposal.break_glass
    with pytest.raises(PermissionDenied, match="release gate"):
        p.approving(lambda a: a.break_glass(ana(), PROMOTE, promote_change("emb@0", "production"), "now"))
    assert p.registering(lambda r: r.show(ana(), "emb@0")).stage == "validated"
    _move(p, "emb@3", "production")  # no regression: accepted


def test_newcomer_inputs_that_would_silently_match_nothing(platform: Platform) -> None:
    # padded criteria (a pasted value) matched no document: the policy never deleted anything
    padded = RetentionPolicy.from_dict({"id": "r", "keep": "1y", "doc_type": " research_report ", "source": " "})
    assert (padded.doc_type, padded.source) == ("research_report", "")
    with pytest.raises(QueryError, match="at least one of"):
        RetentionPolicy.from_dict({"id": "r", "keep": "1y", "source": "   "})
    # a time still to come is answered as of now (as every clock in strongroom), not refused
    assert platform.registering(lambda r: r.which(ana(), "2999-01-01")) == []
