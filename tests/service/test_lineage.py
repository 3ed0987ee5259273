"""Lineage of an answer through the application layer over a real store: a real 10-Q PDF and a
note are ingested, a question asked, and the lineage of its audit record names the versions
(SHA-256 of the file's bytes), the pages and spans of the chunks, the ingestion job and its
record, the parser version, the generator and prompt template version, and the ACL in force
when the answer was given (not today's).

The attacks: another person's record, a record past the log's head, a record that never
existed and ids that are not seqs are refused alike (NotFound, or QueryError for a malformed id)
and audited; a reader who has lost access to a version sees it withheld; a document deleted
after the answer is still reported, by its hashes only, with the record that deleted it."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from strongroom.config import Settings
from strongroom.errors import NotFound, QueryError
from strongroom.governance.lineage import AclEvent, Lineage, acl_at
from strongroom.governance.registry import Lineage as RegistryLineage
from strongroom.governance.registry import ModelEntry
from strongroom.governance.retention import RetentionPolicy
from strongroom.llm.deployments import DeploymentSpec, save_deployment
from strongroom.llm.route_config import RouteStore, parse_target
from strongroom.rag import EXTRACTIVE_VERSION
from strongroom.service import AskRequest, IngestRequest, Platform
from strongroom.service.agent_local import LocalAgentRuns
from strongroom.service.agent_runs import AgentRunRequest
from strongroom.service.erasure import Erasures
from strongroom.testing import HashEmbedder
from strongroom.testing.openai_server import FakeOpenAIServer, Reply
from strongroom.types import Principal
from tests.api.agent_world import LOADER, ROUTE, ScriptedModel, build_home

ADMIN = frozenset({"reader", "ingester", "admin"})
READER = frozenset({"reader"})
AAPL = "2022 Q3 AAPL.pdf"


def ana() -> Principal:  # asks the questions; ingests and administers too
    return Principal("ana", frozenset({"research"}), ADMIN, "oidc")


def ana_reader(groups: frozenset[str] = frozenset({"research"})) -> Principal:  # ana without admin
    return Principal("ana", groups, READER, "oidc")


def bo() -> Principal:  # another reader of the same documents
    return Principal("bo", frozenset({"research"}), READER, "oidc")


def carl() -> Principal:  # an auditor
    return Principal("carl", frozenset(), frozenset({"auditor"}), "oidc")


@pytest.fixture
def files(tmp_path: Path) -> Path:
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "desk.txt").write_text("Rates desk note\n\nThe rates desk expects two cuts this year.\n")
    return folder


@pytest.fixture
def platform(tmp_path: Path, files: Path) -> Iterator[Platform]:
    with Platform.open(Settings(home=tmp_path / "home", embedder="hash"), embedder=HashEmbedder(64)) as p:
        yield p


def ingest(p: Platform, files: Path, name: str) -> str:
    report = p.ingest(ana(), IngestRequest(paths=(files / name,), acl=frozenset({"research"}), published="2022-08-01"))
    assert report.ingested == 1
    return report.job_id


def records(p: Platform, action: str) -> list[dict[str, object]]:
    return [r for r in p.audit_records(ana()) if r["action"] == action]


def test_lineage_names_the_versions_pages_job_parser_generator_and_prompt(
    platform: Platform, files: Path, sec10q: Path
) -> None:
    shutil.copy(sec10q / "docs" / AAPL, files / AAPL)
    job = ingest(platform, files, AAPL)
    answer, seq = platform.ask_recorded(ana_reader(), AskRequest(question="What were Apple's total net sales?"))
    assert answer.found and answer.citations
    lineage = platform.lineage(ana_reader(), seq)

    assert isinstance(lineage, Lineage) and lineage.seq == seq and lineage.action == "ask"
    assert lineage.principal == "ana" and lineage.groups == ("research",)
    record = next(r for r in platform.audit_records(ana()) if r["seq"] == seq)
    assert lineage.hash == record["hash"] and lineage.answer_sha256 == record["answer_sha256"]
    assert [(c.chunk_id, c.version_id) for c in lineage.chunks] == [tuple(c) for c in record["chunks"]]  # type: ignore[attr-defined]
    stored = {c.id: c for c, _ in platform.runtime.store.fetch([c.chunk_id for c in lineage.chunks])}
    for c in lineage.chunks:
        assert c.status == "live"
        assert (c.page, c.char_start, c.char_end) == (stored[c.chunk_id].page, stored[c.chunk_id].char_start,
                                                      stored[c.chunk_id].char_end)  # fmt: skip
    assert {c.page for c in lineage.chunks} >= {c.page for c in answer.citations}

    (version,) = lineage.versions
    assert version.version_id == hashlib.sha256((files / AAPL).read_bytes()).hexdigest()
    assert version.status == "live" and version.source.endswith(AAPL) and version.title
    assert version.published_at.startswith("2022-08-01") and version.ingested_at
    assert version.acl_at_record == ("research",) == version.acl_now
    assert version.ingestion is not None
    ingested = records(platform, "ingest")
    assert version.ingestion.job_id == job and version.ingestion.seq == ingested[0]["seq"]
    assert version.ingestion.principal == "ana"
    assert version.ingestion.parser.startswith("pdf.parse_pdf strongroom-") and "pypdfium2-" in version.ingestion.parser

    assert lineage.model.generator == EXTRACTIVE_VERSION == lineage.model.prompt_template_version
    assert lineage.model.route == "" and lineage.model.deployment == ""
    assert lineage.embedder["setting"] == "hash" and lineage.embedder["store_model_id"] == "hash-64"
    assert lineage.policies["acl_at_record"] == {version.version_id: ["research"]}

    (read,) = records(platform, "lineage.read")
    assert read["target"] == str(seq) and read["outcome"] == "ok" and read["principal"] == "ana"
    as_json = lineage.as_dict()
    assert as_json["versions"][0]["ingestion"]["job_id"] == job and as_json["model"]["generator"] == EXTRACTIVE_VERSION


def test_another_persons_record_the_future_and_nonsense_are_refused_alike(platform: Platform, files: Path) -> None:
    ingest(platform, files, "desk.txt")
    _, seq = platform.ask_recorded(ana_reader(), AskRequest(question="How many cuts does the rates desk expect?"))
    head = platform.audit.head().seq
    messages = set()
    for who, record_id in ((bo(), seq), (bo(), head + 100), (ana_reader(), head + 1000), (ana_reader(), 2**53 - 1)):
        with pytest.raises(NotFound) as refused:
            platform.lineage(who, record_id)
        messages.add(str(refused.value).replace(str(record_id), "N"))
    assert messages == {"no audit record N that you may see"}  # nothing tells a stranger the record exists
    for nonsense in ("0", "-1", "abc", "1 OR 1=1", "9" * 40, ""):
        with pytest.raises(QueryError):
            platform.lineage(ana_reader(), nonsense)
    refusals = [r for r in records(platform, "lineage.read") if r["outcome"] != "ok"]
    assert len(refusals) == 10 and {r["outcome"] for r in refusals} == {"not_found", "error"}
    # the ingest record is not an answer: an auditor is told so, not shown a misleading lineage
    with pytest.raises(QueryError, match="lineage is for answers"):
        platform.lineage(carl(), records(platform, "ingest")[0]["seq"])  # type: ignore[arg-type]


def test_the_requester_by_any_credential_and_an_auditor_may_read_it(platform: Platform, files: Path) -> None:
    ingest(platform, files, "desk.txt")
    _, seq = platform.ask_recorded(ana_reader(), AskRequest(question="How many cuts does the rates desk expect?"))
    by_key = Principal("key:ana", frozenset({"research"}), READER, "apikey")
    assert platform.lineage(by_key, seq).seq == seq
    assert platform.lineage(carl(), str(seq)).versions[0].title == "desk"  # an auditor needs no group
    assert platform.lineage(ana(), seq).seq == seq  # an admin


def test_the_acl_in_force_is_the_one_of_the_time_and_a_reader_who_lost_access_sees_hashes(
    platform: Platform, files: Path
) -> None:
    ingest(platform, files, "desk.txt")
    _, seq = platform.ask_recorded(ana_reader(), AskRequest(question="How many cuts does the rates desk expect?"))
    doc = platform.find_document(ana(), "desk.txt").document_id
    platform.set_acl(Principal("root", frozenset({"research", "credit"}), ADMIN, "oidc"), doc, ["credit"])

    audited = platform.lineage(carl(), seq).versions[0]
    assert audited.acl_at_record == ("research",) and audited.acl_now == ("credit",) and audited.title == "desk"
    withheld = platform.lineage(ana_reader(), seq)  # her own answer, but she may no longer read the note
    (version,) = withheld.versions
    assert version.status == "withheld" and version.title == "" and version.source == "" and version.ingestion is None
    assert version.acl_at_record == ("research",)
    assert all(c.page is None and c.char_start is None for c in withheld.chunks)


def test_a_document_deleted_after_the_answer_is_reported_by_its_hashes(platform: Platform, files: Path) -> None:
    job = ingest(platform, files, "desk.txt")
    _, seq = platform.ask_recorded(ana_reader(), AskRequest(question="How many cuts does the rates desk expect?"))
    before = platform.lineage(carl(), seq)
    doc = platform.find_document(ana(), "desk.txt").document_id
    assert platform.delete(ana(), doc)

    after = platform.lineage(carl(), seq)
    (version,) = after.versions
    assert version.status == "deleted" and version.version_id == before.versions[0].version_id
    assert version.document_id == doc and version.title == "" and version.source == "" and version.size is None
    assert version.removal is not None and version.removal.action == "documents.delete"
    assert version.removal.seq == records(platform, "documents.delete")[0]["seq"] and version.removal.principal == "ana"
    assert version.ingestion is not None and version.ingestion.job_id == job  # from the ingest record
    assert version.acl_at_record == ("research",)
    assert [(c.chunk_id, c.status, c.page) for c in after.chunks] == [
        (c.chunk_id, "deleted", None) for c in before.chunks
    ]
    assert "Rates desk" not in str(after.as_dict())  # nothing of the text is left to show


def test_acl_at_takes_the_change_around_the_record() -> None:
    changes = [AclEvent(5, ("a",), ("b",)), AclEvent(9, ("b",), ("c",))]
    assert acl_at(7, live=frozenset({"c"}), ingested=frozenset({"a"}), changes=changes) == {"b"}
    assert acl_at(3, live=frozenset({"c"}), ingested=frozenset({"a"}), changes=changes) == {"a"}
    assert acl_at(12, live=frozenset({"c"}), ingested=None, changes=changes) == {"c"}
    assert acl_at(12, live=None, ingested=frozenset({"a"}), changes=()) == {"a"}
    assert acl_at(12, live=None, ingested=None, changes=()) is None


def test_the_retention_policies_and_the_holds_in_force_at_the_time_are_named(platform: Platform, files: Path) -> None:
    ingest(platform, files, "desk.txt")
    doc = platform.find_document(ana(), "desk.txt").document_id
    platform.retaining(lambda r: r.set_policy(ana(), RetentionPolicy("notes-1y", years=1, doc_type="other")))
    platform.retaining(lambda r: r.set_policy(ana(), RetentionPolicy("research-7y", years=7, doc_type="research")))
    platform.retaining(lambda r: r.place(ana(), "M-7", "litigation", document_id=doc))
    _, seq = platform.ask_recorded(ana_reader(), AskRequest(question="How many cuts does the rates desk expect?"))
    platform.retaining(lambda r: r.place(ana(), "M-8", "a later matter", document_id=doc))  # not in force then

    lineage = platform.lineage(carl(), seq)
    (version,) = lineage.versions
    retention = lineage.policies["retention"]
    holds = lineage.policies["holds"]
    assert isinstance(retention, dict) and isinstance(holds, dict)
    assert [p["id"] for p in retention[version.version_id]] == ["notes-1y"]
    assert [h["matter_id"] for h in holds[version.version_id]] == ["M-7"]


def test_an_answer_through_a_model_route_names_the_route_version_and_the_deployment_actually_used(
    tmp_path: Path, files: Path
) -> None:
    settings = Settings(home=tmp_path / "routed", embedder="hash", route_groups={"chat": ["research"]})
    with (
        FakeOpenAIServer(Reply.error(500, "scripted outage")) as server,
        Platform.open(settings, embedder=HashEmbedder(64)) as p,
    ):
        spec = DeploymentSpec(backend="openai-compatible", url=server.url, model="m", clearance="restricted", mnpi=True)
        save_deployment(settings.home, "fake-vllm", spec)
        RouteStore(settings.home).set_route("chat", [parse_target("fake-vllm:100"), parse_target("extractive")])
        ingest(p, files, "desk.txt")
        entry = ModelEntry("desk-chat", "1", "chat", "model-risk", "high", binding="fake-vllm",
                           lineage=RegistryLineage(data="sec10q@v3", code="git:abc123", parent="llama-3.1-8b"))  # fmt: skip
        p.registering(lambda r: r.register(ana(), entry))
        question = AskRequest(question="How many cuts does the rates desk expect?", model="chat")
        _, failed_over = p.ask_recorded(ana_reader(), question)  # the backend is down: extractive answers
        server.script(Reply.stream("The rates desk expects two cuts this year [1]."))
        _, served = p.ask_recorded(ana_reader(), question)
        RouteStore(settings.home).set_route("chat", [parse_target("extractive")])  # v2, after both answers

        first = p.lineage(ana_reader(), failed_over).model
        assert (first.route, first.route_version, first.route_deployments) == ("chat", 1, ("fake-vllm", "extractive"))
        assert first.deployment == "extractive" and first.failovers == 1 and first.failed_over_from == "fake-vllm"
        assert first.prompt_template_version == EXTRACTIVE_VERSION

        second = p.lineage(ana_reader(), served).model
        assert second.deployment == "fake-vllm" == second.generator and second.failovers == 0
        assert second.route_version == 1 and second.route_deployments == ("fake-vllm", "extractive")
        assert dict(second.deployment_config) == {
            "backend": "openai-compatible", "model": "m", "path": None, "clearance": "restricted", "mnpi": True,
        }  # fmt: skip
        assert second.prompt_template_version and second.prompt_template_version != EXTRACTIVE_VERSION
        assert server.url not in str(p.lineage(carl(), served).as_dict())  # never the deployment's address
        assert p.lineage(carl(), served).policies["route_groups"] == ["research"]
        (registered,) = p.lineage(carl(), served).registry["models"]
        assert registered["ref"] == "desk-chat@1" and registered["stage_then"] == registered["stage_now"] == "candidate"
        assert registered["lineage"] == {"data": "sec10q@v3", "code": "git:abc123", "parent": "llama-3.1-8b"}
        assert p.lineage(carl(), failed_over).registry["models"] == []  # extractive answered that one


def test_an_erased_document_and_an_erased_identifier_are_reported_without_their_text(
    platform: Platform, files: Path
) -> None:
    (files / "client.txt").write_text("Client call note\n\nJane Roe asked whether the rates desk expects cuts.\n")
    ingest(platform, files, "desk.txt")
    ingest(platform, files, "client.txt")
    _, seq = platform.ask_recorded(ana_reader(), AskRequest(question="Does the rates desk expect cuts?", k=10))
    assert len(platform.lineage(carl(), seq).versions) == 2
    erasures = Erasures(platform.ops, platform.audit)

    def erase(**target: str) -> int:
        outcome = erasures.erase(ana(), reason="a data subject's request", **target)
        seqs = platform.audit.append_many(list(outcome.events))
        outcome.result()
        return max(seqs)

    client = platform.find_document(ana(), "client.txt").document_id
    by_document = erase(document_id=client)
    by_identifier = erase(identifier="rates desk")

    lineage = platform.lineage(carl(), seq)
    erased = next(v for v in lineage.versions if v.document_id == client)
    assert erased.status == "erased" and erased.title == "" and erased.source == ""
    assert erased.removal is not None and erased.removal.action == "erasure.erase"
    assert erased.removal.seq == by_document
    assert all(c.status == "erased" and c.page is None for c in lineage.chunks if c.version_id == erased.version_id)
    assert lineage.erasures_since == (by_document, by_identifier)  # the second may have changed a live chunk
    shown = str(lineage.as_dict())
    assert "Jane Roe" not in shown and "client.txt" not in shown


def test_an_agent_runs_lineage_gathers_its_tool_calls_and_its_model_turns(tmp_path: Path) -> None:
    model = ScriptedModel()
    with FakeOpenAIServer(model) as server:
        settings = build_home(tmp_path / "agent-home", tmp_path, server.url)
        with Platform.open(settings, embedder=HashEmbedder(64)) as p, LocalAgentRuns(p) as agent:
            owner = Principal("ana", frozenset({"research"}), READER, "oidc")
            run = agent.ask(owner, AgentRunRequest("[multi] How do Acme's sales compare with its price?", ROUTE))
            assert run.status == "answered"
            records = [r for r in p.audit_records(LOADER) if r["target"] == run.id]
            end = next(r for r in records if r["action"] == "agent.run.end")
            tools = [r for r in records if str(r["action"]).startswith("agent.tool.")]
            turns = [r for r in records if r["action"] == "agent.run.model"]

            lineage = p.lineage(owner, end["seq"])  # type: ignore[arg-type]
            assert lineage.action == "agent.run.end" and lineage.steps == tuple(
                sorted(int(r["seq"]) for r in [*tools, *turns])  # type: ignore[call-overload]
            )
            retrieved = {tuple(c) for r in tools for c in r["chunks"]}  # type: ignore[attr-defined]
            assert retrieved and {(c.chunk_id, c.version_id) for c in lineage.chunks} == retrieved
            assert all(c.status == "live" and c.page == 1 for c in lineage.chunks)
            assert {v.source.rsplit("/", 1)[-1] for v in lineage.versions} == {"acme-10q.md"}
            assert lineage.model.deployment == "fake" == lineage.model.generator and lineage.model.route == ROUTE
            assert lineage.model.prompt_template_version == end["filters"]["prompt_version"]  # type: ignore[index]
            with pytest.raises(NotFound):
                p.lineage(bo(), end["seq"])  # type: ignore[arg-type]
        model.release.set()
