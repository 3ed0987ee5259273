"""The workspace pages over real HTTP: conversations (history, follow-ups, feedback, share
links), documents (only what the user may read), uploads and their jobs, administration
(admins only), the page image flag, and CSRF on every new state-changing call."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.web.conftest import PUBLIC, RESEARCH, WebEnv
from tests.web.test_signin import signed_in

pytestmark = pytest.mark.integration

ADMIN = ["readers", "public", "admins"]
INGESTER = ["readers", "public", "ingesters"]
HARBOR = "What was Harbor Bank net interest income?"
KESTREL = "What would Project Kestrel acquire?"


@pytest.fixture
def second_client(web: WebEnv) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=web.url, timeout=30) as c:
        yield c


def _session(web: WebEnv, client: httpx.Client, sub: str, groups: list[str]) -> dict[str, str]:
    web.as_user(sub, groups)
    return {"X-CSRF-Token": signed_in(web, client)}


def _ask(client: httpx.Client, csrf: dict[str, str], question: str, conversation: str = "") -> dict[str, object]:
    if not conversation:
        created = client.post("/v1/conversations", json={}, headers=csrf)
        assert created.status_code == 201, created.text
        conversation = created.json()["conversation_id"]
    turn = client.post(f"/v1/conversations/{conversation}/ask", json={"question": question}, headers=csrf)
    assert turn.status_code == 200, turn.text
    body: dict[str, object] = turn.json()
    return body


def test_history_lists_the_conversation_a_follow_up_keeps_context_and_feedback_is_stored(
    user: WebEnv, browser_client: httpx.Client
) -> None:
    csrf = _session(user, browser_client, "hana", PUBLIC)
    first = _ask(browser_client, csrf, HARBOR)
    cid = str(first["conversation_id"])
    follow = _ask(browser_client, csrf, "And the cost of risk?", cid)
    assert "Harbor" in str(follow["query"])  # retrieved with the previous question's words
    history = browser_client.get("/ui/history")
    assert history.status_code == 200 and HARBOR in history.text and f"/ui/ask?c={cid}" in history.text
    rated = browser_client.post(
        f"/v1/conversations/{cid}/turns/{follow['turn_id']}/feedback",
        json={"rating": "down", "comment": "wanted the quarter"},
        headers=csrf,
    )
    assert rated.status_code == 200, rated.text
    turns = browser_client.get(f"/v1/conversations/{cid}").json()["turns"]
    assert turns[1]["feedback"]["rating"] == "down" and turns[1]["feedback"]["comment"] == "wanted the quarter"
    assert browser_client.delete(f"/v1/conversations/{cid}", headers=csrf).status_code == 200
    assert HARBOR not in browser_client.get("/ui/history").text


def test_a_shared_link_opened_by_an_outsider_is_the_not_found_page(
    user: WebEnv, browser_client: httpx.Client, second_client: httpx.Client
) -> None:
    csrf = _session(user, browser_client, "rita", RESEARCH)
    turn = _ask(browser_client, csrf, KESTREL)
    assert "Lisbon" in str(turn["answer"])
    link = browser_client.post(f"/v1/conversations/{turn['conversation_id']}/share", json={}, headers=csrf).json()
    own = browser_client.get(f"/shared/{link['token']}", follow_redirects=True)
    assert own.status_code == 200 and "Lisbon" in own.text and "kestrel.txt" in own.text

    _session(user, second_client, "ana", PUBLIC)  # outside the research group
    opened = second_client.get(f"/shared/{link['token']}", follow_redirects=True)
    missing = second_client.get("/ui/shared/no-such-link")
    assert opened.status_code == missing.status_code == 404
    assert opened.text == missing.text  # the same page: nothing tells the link exists
    assert "Lisbon" not in opened.text and "Kestrel" not in opened.text and "Not found" in opened.text


def test_the_document_list_holds_only_what_the_user_may_read(
    user: WebEnv, browser_client: httpx.Client, second_client: httpx.Client
) -> None:
    _session(user, browser_client, "ana", PUBLIC)
    listed = browser_client.get("/ui/documents")
    assert listed.status_code == 200 and "harbor.txt" in listed.text and "osprey.pdf" in listed.text
    assert "kestrel" not in listed.text.lower()
    typed = browser_client.get(f"/ui/documents/{user.doc_ids['kestrel.txt']}")
    missing = browser_client.get("/ui/documents/0123456789abcdef")
    assert typed.status_code == missing.status_code == 404 and typed.text == missing.text
    assert "Lisbon" not in typed.text and "kestrel" not in typed.text.lower()
    searched = browser_client.get("/ui/documents", params={"q": "osprey"})
    assert "osprey.pdf" in searched.text and "harbor.txt" not in searched.text
    detail = browser_client.get(f"/ui/documents/{user.doc_ids['osprey.pdf']}")
    assert detail.status_code == 200 and "factsheet" in detail.text and "published" in detail.text

    _session(user, second_client, "rita", RESEARCH)
    assert "kestrel.txt" in second_client.get("/ui/documents").text
    assert second_client.get(f"/ui/documents/{user.doc_ids['kestrel.txt']}").status_code == 200


def test_page_text_says_whether_an_image_exists(user: WebEnv, browser_client: httpx.Client) -> None:
    _session(user, browser_client, "ana", PUBLIC)
    for name, expected in (("harbor.txt", False), ("osprey.pdf", True)):
        doc = browser_client.get(f"/v1/documents/{user.doc_ids[name]}").json()
        shown = browser_client.get(
            f"/v1/documents/{doc['document_id']}/versions/{doc['current']['version_id']}/pages/1"
        )
        assert shown.status_code == 200 and shown.json()["has_image"] is expected


def test_an_upload_is_followed_to_its_end_and_a_failure_has_its_reason(
    user: WebEnv, browser_client: httpx.Client
) -> None:
    assert _session(user, browser_client, "ana", PUBLIC)
    refused = browser_client.get("/ui/upload")
    assert refused.status_code == 403 and 'href="/ui/upload"' not in refused.text
    csrf = _session(user, browser_client, "ivan", INGESTER)
    assert 'href="/ui/upload"' in browser_client.get("/ui/ask").text
    good = browser_client.post(
        "/v1/documents",
        files={"file": ("heron.txt", b"Heron Bank memo\n\nHeron Bank opened 12 branches in 2024.\n")},
        data={"acl": "public", "wait": "true"},
        headers=csrf,
    )
    bad = browser_client.post(
        "/v1/documents",
        files={"file": ("broken.pdf", b"%PDF-1.7 this is not a PDF at all")},
        data={"acl": "public", "wait": "true"},
        headers=csrf,
    )
    assert good.json()["status"] == "done" and bad.json()["status"] == "failed", (good.text, bad.text)
    reason = bad.json()["files"][0]["error"]
    assert reason
    jobs = browser_client.get("/v1/jobs").json()["jobs"]
    assert [j["job_id"] for j in jobs[:2]] == [bad.json()["job_id"], good.json()["job_id"]]
    page = browser_client.get("/ui/upload").text
    assert "broken.pdf" in page and "heron.txt" in page and reason[:40] in page.replace("&#39;", "'")


def test_administration_is_refused_to_a_reader_and_works_for_an_admin(
    user: WebEnv, browser_client: httpx.Client, second_client: httpx.Client
) -> None:
    _session(user, browser_client, "ana", PUBLIC)
    assert 'id="nav-admin"' not in browser_client.get("/ui/ask").text
    for path in ("/ui/admin", "/ui/admin/audit", "/ui/admin/jobs", "/ui/admin/keys", "/ui/admin/models"):
        refused = browser_client.get(path, follow_redirects=False)
        assert refused.status_code == 403 and "Refused" in refused.text, path
    for path in ("/v1/admin/audit/verify", "/v1/admin/dead-letters", "/v1/admin/models", "/v1/jobs"):
        assert browser_client.get(path).status_code == 403, path

    csrf = _session(user, second_client, "ada", ADMIN)
    assert 'id="nav-admin"' in second_client.get("/ui/ask").text
    verified = second_client.get("/v1/admin/audit/verify").json()
    assert verified["ok"] is True and verified["records"] > 0
    audit = second_client.get("/ui/admin/audit", params={"action": "ui.admin", "principal": "ana"})
    assert audit.status_code == 200 and "ui.admin.audit" in audit.text and "denied" in audit.text
    models = second_client.get("/ui/admin/models").text
    assert "fake-vllm" in models and "chat" in models
    assert "no bus is configured" in second_client.get("/ui/admin/jobs").text
    created = second_client.post("/v1/keys", json={"owner": "batch", "groups": ["public"], "days": 7}, headers=csrf)
    assert created.status_code == 201
    key = created.json()
    keys_page = second_client.get("/ui/admin/keys").text
    assert key["id"] in keys_page and key["key"] not in keys_page  # the secret is never shown again
    assert second_client.delete(f"/v1/keys/{key['id']}", headers=csrf).status_code == 200
    exported = second_client.get("/v1/audit", params={"limit": 100000})
    assert exported.status_code == 200 and '"action": "keys.revoke"' in exported.text


def test_every_new_state_changing_call_needs_the_csrf_token(user: WebEnv, browser_client: httpx.Client) -> None:
    csrf = _session(user, browser_client, "ada", [*ADMIN, "ingesters"])
    turn = _ask(browser_client, csrf, HARBOR)
    cid, tid = turn["conversation_id"], turn["turn_id"]
    key = browser_client.post("/v1/keys", json={"owner": "x", "groups": ["public"]}, headers=csrf).json()
    calls = [
        ("POST", "/v1/conversations", {"json": {}}),
        ("POST", f"/v1/conversations/{cid}/ask", {"json": {"question": HARBOR}}),
        ("POST", f"/v1/conversations/{cid}/turns/{tid}/feedback", {"json": {"rating": "up"}}),
        ("POST", f"/v1/conversations/{cid}/share", {"json": {}}),
        ("DELETE", f"/v1/conversations/{cid}", {}),
        ("POST", "/v1/documents", {"files": {"file": ("x.txt", b"x")}, "data": {"acl": "public"}}),
        ("POST", "/v1/keys", {"json": {"owner": "y", "groups": ["public"]}}),
        ("DELETE", f"/v1/keys/{key['id']}", {}),
    ]
    for method, path, kwargs in calls:
        for headers in ({}, {"X-CSRF-Token": "forged"}):
            r = browser_client.request(method, path, headers=headers, **kwargs)  # type: ignore[arg-type]
            assert r.status_code == 403 and "CSRF" in r.text, (method, path, r.text)
    assert browser_client.get(f"/v1/conversations/{cid}").status_code == 200  # nothing happened
    assert any(k["id"] == key["id"] and k["status"] == "active" for k in browser_client.get("/v1/keys").json())
