"""No endpoint returns content, a title or a citation from a document outside the caller's
entitlements: exhaustively over every subset of the entitlement groups, on every content path."""

from __future__ import annotations

import itertools
import json

import httpx
import pytest

from tests.api.conftest import DOCS, ENTITLEMENTS, Env, audit_records

SUBSETS = [list(c) for n in range(len(ENTITLEMENTS) + 1) for c in itertools.combinations(ENTITLEMENTS, n)]
QUESTIONS = ["revenue net sales", "What was the quarterly revenue?", *[f"{m} margin" for m in DOCS]]


def _forbidden(groups: list[str]) -> list[str]:
    return [m for m, acl in DOCS.items() if not acl & set(groups)]


def _allowed(groups: list[str]) -> list[str]:
    return [m for m, acl in DOCS.items() if acl & set(groups)]


def _assert_clean(env: Env, groups: list[str], response: httpx.Response, asked: str = "") -> None:
    text = response.text.lower().replace(asked.lower(), "") if asked else response.text.lower()  # the echo
    for marker in _forbidden(groups):
        assert marker not in text, f"{groups} saw {marker} in {response.request.url}"
        assert env.doc_ids[marker] not in text
        assert env.version_ids[marker] not in text


@pytest.mark.parametrize("groups", SUBSETS, ids=lambda g: "+".join(g) or "none")
def test_no_endpoint_leaks_outside_entitlements(env: Env, groups: list[str]) -> None:
    with env.client(["readers", "ingesters", *groups], sub=f"user-{'-'.join(groups)}") as c:
        seen: set[str] = set()
        for q in QUESTIONS:
            r = c.post("/v1/search", json={"query": q, "k": 10})
            assert r.status_code == 200
            _assert_clean(env, groups, r)
            seen |= {h["document_id"] for h in r.json()["hits"]}
            r = c.post("/v1/ask", json={"question": q, "k": 10})
            assert r.status_code == 200
            _assert_clean(env, groups, r, asked=q)
            for stream in (False, True):
                r = c.post(
                    "/v1/chat/completions",
                    json={"model": "strongroom-rag", "stream": stream, "messages": [{"role": "user", "content": q}]},
                )
                assert r.status_code == 200
                _assert_clean(env, groups, r)
        # a restricted user still finds everything it may read (pre-filter, not post-filter)
        corpus = set(env.doc_ids.values())  # other tests upload documents of their own
        assert seen & corpus == {env.doc_ids[m] for m in _allowed(groups)}

        r = c.get("/v1/documents")
        assert r.status_code == 200
        _assert_clean(env, groups, r)
        assert {d["document_id"] for d in r.json()["documents"]} & corpus == seen & corpus

        for marker in DOCS:
            doc, version = env.doc_ids[marker], env.version_ids[marker]
            for path in (f"/v1/documents/{doc}", f"/v1/documents/{doc}/versions/{version}/pages/1"):
                r = c.get(path)
                if marker in _allowed(groups):
                    assert r.status_code == 200 and marker in r.text.lower()
                else:
                    # the same answer as for a document that does not exist
                    missing = c.get(path.replace(doc, "0" * 32))
                    assert r.status_code == missing.status_code == 404
                    assert r.json() == missing.json()
                    _assert_clean(env, groups, r)


def test_the_audit_record_names_what_was_returned(env: Env) -> None:
    with env.client(["readers", "research"], sub="auditor-check") as c:
        r = c.post("/v1/ask", json={"question": "zephyr revenue", "filters": {"source": "corpus"}})
    assert r.status_code == 200 and r.json()["found"]
    with env.client(["admins"], sub="admin") as c:
        records = audit_records(c)
    mine = [x for x in records if x["principal"] == "auditor-check"][-1]
    assert mine["action"] == "ask" and mine["outcome"] == "ok"
    assert mine["groups"] == ["readers", "research"]
    assert mine["query"] == "zephyr revenue" and mine["filters"]["filters"] == {"source": "corpus"}
    assert mine["generator"] == "extractive-v1" and len(mine["answer_sha256"]) == 64
    assert [env.version_ids["zephyr"]] == sorted({v for _, v in mine["chunks"]} & {env.version_ids["zephyr"]})
    assert json.dumps(mine).count("Bearer") == 0


def test_roles_readers_cannot_upload_or_delete_and_non_admins_cannot_read_the_audit(env: Env) -> None:
    with env.client(["readers", "public"]) as c:
        assert c.post("/v1/documents", files={"file": ("a.txt", b"hello there")}).status_code == 403
        assert c.delete(f"/v1/documents/{env.doc_ids['alphacorp']}").status_code == 403
        assert c.get("/v1/audit").status_code == 403
    with env.client(["public"]) as c:  # entitled to documents, but no role at all
        r = c.post("/v1/search", json={"query": "revenue"})
        assert r.status_code == 403 and "reader role" in r.json()["error"]["message"]
