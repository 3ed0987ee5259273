"""Sensitivity-aware routing through the ask path: documents ingested and labelled for real,
a route over two scripted OpenAI-compatible servers on loopback (an external API cleared
public, the bank's own server cleared restricted + MNPI), and the ask's audit record.

Attacks: the external API is the route's champion (100% of the split) and the only other
deployment is down; the restricted text never reaches it, and the record names the version
that forced the choice (its id, never its text).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from strongroom.agent.clearance import evidence_clearance
from strongroom.config import Settings
from strongroom.embed import HashEmbedder
from strongroom.llm.deployments import DeploymentSpec, save_deployment
from strongroom.llm.route_config import RouteStore, parse_target
from strongroom.service import AskRequest, IngestRequest, Platform
from strongroom.service.agent_tools import toolbox_for
from strongroom.testing.openai_server import FakeOpenAIServer, Reply
from strongroom.types import Principal

DESK = Principal("dana", frozenset({"desk", "restricted-mnpi"}), frozenset({"reader", "ingester", "admin"}))
FILING = (
    "UNITED STATES SECURITIES AND EXCHANGE COMMISSION\nFORM 10-K\nExact name of registrant: Harbor Bank\n"
    "Harbor Bank annual report. Net interest income was 812 million dollars in 2023.\n"
)
NOTE = "Desk note. The Harbor Bank covered bonds trade 14 basis points over swaps.\n"
DEAL = "Wall-crossed. Material non-public: Project Falcon will bid 41.50 dollars per Harbor Bank share.\n"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Platform, FakeOpenAIServer, FakeOpenAIServer, dict[str, str]]]:
    settings = Settings(home=tmp_path / "home", embedder="hash", route_groups={"chat": ["desk"]})
    docs = tmp_path / "docs"
    docs.mkdir()
    ids: dict[str, str] = {}
    with (
        FakeOpenAIServer(Reply.stream("From the external API [1].")) as external,
        FakeOpenAIServer(Reply.stream("From the bank's own model [1].")) as internal,
        Platform.open(settings, embedder=HashEmbedder(64)) as p,
    ):
        for name, text in (("10-K.txt", FILING), ("note.txt", NOTE), ("deal.txt", DEAL)):  # fmt: skip
            (docs / name).write_text(text)
            report = p.ingest(DESK, IngestRequest(paths=(docs / name,), acl=frozenset({"desk"})))
            assert report.ingested == 1, report
            ids[name] = report.files[0].version_id
        save_deployment(settings.home, "external", DeploymentSpec(backend="openai-compatible", url=external.url,
                                                                  model="gpt"))  # fmt: skip
        save_deployment(settings.home, "internal", DeploymentSpec(backend="openai-compatible", url=internal.url,
                                                                  model="llama", clearance="restricted", mnpi=True))  # fmt: skip
        RouteStore(settings.home).set_route("chat", [parse_target("external:100"), parse_target("internal")])
        yield p, external, internal, ids


def ask(p: Platform, question: str, k: int = 1) -> tuple[dict[str, str], dict[str, object]]:
    answer, seq = p.ask_recorded(DESK, AskRequest(question=question, k=k, model="chat"))
    [record] = [r for r in p.audit_records(DESK) if r["seq"] == seq]
    return dict(answer.metadata), record


def test_labels_as_ingested(world: tuple[Platform, FakeOpenAIServer, FakeOpenAIServer, dict[str, str]]) -> None:
    p, _, _, ids = world
    labels = {v.id: (v.metadata.get("sensitivity"), bool(v.metadata.get("mnpi_markers")), "restricted-mnpi" in v.acl)
              for v in p.ops.store.versions()}  # fmt: skip
    assert labels == {ids["10-K.txt"]: ("public", False, False), ids["note.txt"]: ("internal", False, False),
                      ids["deal.txt"]: ("restricted", True, True)}  # fmt: skip


def test_public_context_goes_to_the_external_champion(
    world: tuple[Platform, FakeOpenAIServer, FakeOpenAIServer, dict[str, str]],
) -> None:
    p, external, internal, _ = world
    meta, record = ask(p, "What was Harbor Bank net interest income in the annual report?")
    assert meta["deployment"] == "external" and "context_clearance" not in meta
    assert len(external.requests) == 1 and internal.requests == []
    assert "context_clearance" not in json.dumps(record["filters"])


def test_restricted_context_goes_only_to_the_cleared_deployment_and_the_record_says_why(
    world: tuple[Platform, FakeOpenAIServer, FakeOpenAIServer, dict[str, str]],
) -> None:
    p, external, internal, ids = world
    meta, record = ask(p, "What will Project Falcon bid per Harbor Bank share?", k=3)
    assert meta["deployment"] == "internal"
    assert meta["context_clearance"] == "restricted (MNPI)" and meta["clearance_forced_by"] == ids["deal.txt"]
    answered_by = record["filters"]["answered_by"]  # type: ignore[index]
    assert answered_by["context_clearance"] == "restricted (MNPI)"
    assert answered_by["clearance_forced_by"] == ids["deal.txt"]
    assert "41.50" not in json.dumps(record)  # the versions by id, never their text
    assert external.requests == [] and "Project Falcon" in json.dumps(internal.requests)

    meta, record = ask(p, "Where do the Harbor Bank covered bonds trade over swaps?")  # the desk note: internal
    assert meta["deployment"] == "internal" and meta["context_clearance"] == "internal"
    assert meta["clearance_forced_by"] == ids["note.txt"] and external.requests == []


def test_no_fallback_to_the_external_api_when_the_bank_model_is_down(
    world: tuple[Platform, FakeOpenAIServer, FakeOpenAIServer, dict[str, str]],
) -> None:
    p, external, internal, ids = world
    internal.default = Reply.error(503, "the bank's model is down")
    meta, record = ask(p, "What will Project Falcon bid per Harbor Bank share?", k=3)
    assert external.requests == [] and len(internal.requests) >= 1
    # the gateway call failed as a whole; the answer is quoted in process (extractive), never external
    assert meta["fallback"] == "gateway-error" and meta["deployment"] == "extractive"
    assert "not cleared for this context, so not tried: external" in meta["gateway_error"]
    answered_by = record["filters"]["answered_by"]  # type: ignore[index]
    assert answered_by["clearance_forced_by"] == ids["deal.txt"] and answered_by["deployment"] == "extractive"


def test_the_agent_toolbox_labels_its_evidence(
    world: tuple[Platform, FakeOpenAIServer, FakeOpenAIServer, dict[str, str]],
) -> None:
    p, _, _, ids = world
    toolbox = toolbox_for(p, DESK, run_id="run-labels")
    out = toolbox.call("search_documents", {"query": "Project Falcon bid per share"})
    labels = {e.ref["version_id"]: (e.ref["sensitivity"], e.ref["mnpi"]) for e in out.evidence}
    assert labels[ids["deal.txt"]] == ("restricted", True)
    need = evidence_clearance([{"kind": e.kind, "ref": dict(e.ref)} for e in out.evidence])
    assert (need.sensitivity, need.mnpi, need.forced_by) == ("restricted", True, (ids["deal.txt"],))
