"""Conversations over real HTTP: history, follow-ups, feedback and its export, share links, and
the attacks on them (ids typed by hand, links opened by the wrong reader, at the wrong
instant, after a document was closed or deleted). A service of its own (documents are
narrowed and deleted here; the session's shared corpus stays as it is)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from strongroom.api import create_app
from strongroom.config import Settings
from strongroom.ingest.pipeline import IngestOptions, ingest
from strongroom.runtime import open_runtime
from strongroom.testing import HashEmbedder
from tests.api.conftest import Env, audit_records, service_settings
from tests.api.live import live_server
from tests.auth.oidc_provider import Provider

#: marker -> (ACL, published, text); kestrel was published only in 2024
DOCS = {
    "alphacorp": ("public", datetime(2023, 3, 1, tzinfo=UTC), "Alphacorp revenue rose to 42 million dollars. "),
    "zephyr": ("research", datetime(2023, 3, 1, tzinfo=UTC), "Zephyr margin widened; Zephyr revenue rose. "),
    "kestrel": ("public", datetime(2024, 1, 15, tzinfo=UTC), "Kestrel revenue fell to 7 million dollars. "),
}
ALL = ["readers", "public", "research"]
ADMIN = ["admins", "readers", "public", "research"]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, provider: Provider) -> Iterator[Env]:
    home, files = tmp_path_factory.mktemp("conv-home"), tmp_path_factory.mktemp("conv-docs")
    settings = Settings(home=home, embedder="hash")
    runtime = open_runtime(settings, HashEmbedder(64))
    doc_ids, version_ids = {}, {}
    try:
        for marker, (acl, published, text) in DOCS.items():
            path = files / f"{marker}.txt"
            path.write_text(f"{marker.title()} quarterly report\n\n{text * 3}\n")
            options = IngestOptions(acl=frozenset({acl}), published=published, source="corpus")
            assert ingest([path], runtime.store, runtime.embedder, options).ingested == 1
            version = runtime.store.versions()[-1]
            doc_ids[marker], version_ids[marker] = version.document_id, version.id
    finally:
        runtime.close()
    app = create_app(settings, service_settings(provider), embedder=HashEmbedder(64))
    with live_server(app) as url:
        yield Env(url, provider, home, settings, doc_ids, version_ids)


def _ok(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()


def _start(c: httpx.Client, *questions: str, **clocks: str) -> tuple[str, list[dict[str, Any]]]:
    cid = _ok(c.post("/v1/conversations", json={}), 201)["conversation_id"]
    turns = [_ok(c.post(f"/v1/conversations/{cid}/ask", json={"question": q, **clocks})) for q in questions]
    return cid, turns


def _cited(turn: dict[str, Any]) -> set[str]:
    return {x["document_id"] for x in turn["answer"]["citations"]}


def _not_found(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 404, r.text
    body: dict[str, Any] = r.json()
    assert body["error"]["type"] == "not_found"
    return body


def test_a_conversation_keeps_its_turns_and_a_follow_up_its_context(env: Env) -> None:
    with env.client(ALL, sub="ana") as ana, env.client(ADMIN, sub="root") as admin:
        cid, (first, follow) = _start(ana, "What was Alphacorp revenue?", "and how much did it rise to?")
        assert follow["query"] == "What was Alphacorp revenue? and how much did it rise to?"
        assert follow["answer"]["question"] == "and how much did it rise to?"
        assert env.doc_ids["alphacorp"] in _cited(follow)
        shown = _ok(ana.get(f"/v1/conversations/{cid}"))
        assert [t["turn_id"] for t in shown["turns"]] == [first["turn_id"], follow["turn_id"]]
        assert shown["title"] == "What was Alphacorp revenue?"
        assert cid in [c["conversation_id"] for c in _ok(ana.get("/v1/conversations"))["conversations"]]
        # each answer names its audit record, and /v1/ask now says it too
        records = {r["seq"]: r for r in audit_records(admin)}
        assert records[follow["audit_seq"]]["action"] == "conversations.ask"
        assert records[follow["audit_seq"]]["principal"] == "ana"
        plain = _ok(ana.post("/v1/ask", json={"question": "What was Alphacorp revenue?"}))
        assert audit_records(admin, plain["audit_seq"] - 1, 1)[0]["action"] == "ask"
        assert _ok(ana.delete(f"/v1/conversations/{cid}"))["deleted"] is True
        _not_found(ana.get(f"/v1/conversations/{cid}"))


def test_another_users_conversation_id_typed_by_hand_is_404_as_a_nonexistent_one(env: Env) -> None:
    with env.client(ALL, sub="ana2") as ana, env.client(ALL, sub="bob2") as bob:
        cid, (turn,) = _start(ana, "What was Alphacorp revenue?")
        tid = turn["turn_id"]

        def attempts(target: str) -> list[dict[str, Any]]:
            return [
                _not_found(bob.get(f"/v1/conversations/{target}")),
                _not_found(bob.delete(f"/v1/conversations/{target}")),
                _not_found(bob.post(f"/v1/conversations/{target}/ask", json={"question": "and the margin?"})),
                _not_found(bob.post(f"/v1/conversations/{target}/share", json={})),
                _not_found(bob.post(f"/v1/conversations/{target}/turns/{tid}/feedback", json={"rating": "down"})),
            ]

        assert attempts(cid) == attempts("nonexistent-conversation-id")  # identical, route by route
        assert _ok(bob.get("/v1/conversations"))["conversations"] == []
        still = _ok(ana.get(f"/v1/conversations/{cid}"))
        assert len(still["turns"]) == 1 and still["turns"][0]["feedback"] is None


def test_feedback_is_the_owners_and_the_export_carries_the_audit_seq(env: Env) -> None:
    with env.client(ALL, sub="ana3") as ana, env.client(ALL, sub="bob3") as bob:
        cid, (turn,) = _start(ana, "What was Alphacorp revenue?")
        bob_cid, (bob_turn,) = _start(bob, "What was Zephyr revenue?")
        # bob's turn, typed by ana: under bob's conversation and under her own
        _not_found(ana.post(f"/v1/conversations/{bob_cid}/turns/{bob_turn['turn_id']}/feedback", json={"rating": "up"}))
        _not_found(ana.post(f"/v1/conversations/{cid}/turns/{bob_turn['turn_id']}/feedback", json={"rating": "up"}))
        _ok(bob.post(f"/v1/conversations/{bob_cid}/turns/{bob_turn['turn_id']}/feedback", json={"rating": "down"}))
        given = _ok(
            ana.post(
                f"/v1/conversations/{cid}/turns/{turn['turn_id']}/feedback", json={"rating": "up", "comment": "ok"}
            )
        )
        assert given["audit_seq"] == turn["audit_seq"] is not None
        r = ana.get("/v1/feedback/export")
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in r.text.splitlines()]
        assert [(x["turn_id"], x["rating"], x["comment"], x["audit_seq"]) for x in lines] == [
            (turn["turn_id"], "up", "ok", turn["audit_seq"])
        ]
        assert lines[0]["citations"] and lines[0]["question"] == "What was Alphacorp revenue?"
        assert bob_turn["turn_id"] not in r.text
        bad = ana.post(f"/v1/conversations/{cid}/turns/{turn['turn_id']}/feedback", json={"rating": "meh"})
        assert bad.status_code == 422


def test_a_shared_link_opens_only_for_readers_of_every_cited_document(env: Env) -> None:
    with env.client(ALL, sub="ana4") as ana:
        cid, turns = _start(ana, "What was Alphacorp revenue?", "What about the Zephyr margin widened?")
        assert {env.doc_ids["alphacorp"], env.doc_ids["zephyr"]} <= set().union(*map(_cited, turns))
        link = _ok(ana.post(f"/v1/conversations/{cid}/share", json={}), 201)
        assert link["url"] == f"/v1/shared/{link['token']}"
    with env.client(ALL, sub="carl4") as carl, env.client(["readers", "public"], sub="dan4") as dan:
        shared = _ok(carl.get(link["url"]))
        assert len(shared["turns"]) == 2 and shared["as_of"] == link["as_of"]
        assert "conversation_id" not in shared and "feedback" not in json.dumps(shared)
        refused, nonexistent = dan.get(link["url"]), dan.get("/v1/shared/" + "A" * 32)
        assert refused.status_code == nonexistent.status_code == 404
        assert _not_found(refused) == _not_found(nonexistent)  # dan may not read Zephyr
    with env.client(["public"], sub="eve4") as eve:  # no reader role at all
        assert eve.get(link["url"]).status_code == 403
    assert httpx.get(env.url + link["url"]).status_code == 401


def test_a_shared_link_at_an_as_of_before_a_cited_version_was_published_is_404(env: Env) -> None:
    with env.client(ALL, sub="ana5") as ana:
        cid, (turn,) = _start(ana, "What did Kestrel revenue fall to?")
        assert env.doc_ids["kestrel"] in _cited(turn)
        early = _ok(ana.post(f"/v1/conversations/{cid}/share", json={"as_of": "2023-06-30"}), 201)
        later = _ok(ana.post(f"/v1/conversations/{cid}/share", json={"as_of": "2024-06-30"}), 201)
        assert _not_found(ana.get(early["url"])) == _not_found(ana.get("/v1/shared/nope"))
        _ok(ana.get(later["url"]))


def test_a_shared_link_stops_opening_when_a_cited_document_is_narrowed_or_deleted(env: Env) -> None:
    alphacorp = env.doc_ids["alphacorp"]
    with env.client(["readers", "public"], sub="ana6") as ana, env.client(ADMIN, sub="root") as admin:
        cid, (turn,) = _start(ana, "What was Alphacorp revenue?")
        assert alphacorp in _cited(turn)
        link = _ok(ana.post(f"/v1/conversations/{cid}/share", json={}), 201)
        with env.client(["readers", "public"], sub="carl6") as carl, env.client(ALL, sub="frank6") as frank:
            _ok(carl.get(link["url"]))
            _ok(admin.put(f"/v1/documents/{alphacorp}/acl", json={"acl": ["research"]}))
            assert _not_found(carl.get(link["url"])) == _not_found(carl.get("/v1/shared/nope"))
            _ok(frank.get(link["url"]))  # frank reads research: it still opens for him
            _ok(admin.delete(f"/v1/documents/{alphacorp}"))
            _not_found(frank.get(link["url"]))
        # ana's own history withholds the answer that quoted what she may no longer read
        shown = _ok(ana.get(f"/v1/conversations/{cid}"))["turns"][0]["answer"]
        assert shown["citations"] == [] and shown["claims"] == [] and "withheld" in shown["answer"]
        assert "Alphacorp revenue rose" not in json.dumps(shown)
    opened = [r for r in audit_records_of(env) if r["action"] == "conversations.shared" and r["principal"] == "carl6"]
    assert [r["outcome"] for r in opened] == ["ok", "not_found", "not_found"]


def audit_records_of(env: Env) -> list[dict[str, Any]]:
    with env.client(ADMIN, sub="root") as admin:
        return audit_records(admin)


def test_conversation_responses_are_not_cached(env: Env) -> None:
    with env.client(ALL, sub="ana7") as ana:
        cid = _ok(ana.post("/v1/conversations", json={"title": "rates"}), 201)["conversation_id"]
        r = ana.post(f"/v1/conversations/{cid}/ask", json={"question": "What was Alphacorp revenue?"})
        assert r.status_code == 200 and r.headers["cache-control"] == "private, no-store"
        assert ana.get(f"/v1/conversations/{cid}").headers["cache-control"] == "private, no-store"
