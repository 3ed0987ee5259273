"""The workspace pages in a real browser (Debian's chromium via playwright): a conversation
with a follow-up and feedback, the history, a shared link an outsider cannot open, the
documents, an upload followed to its end, the administration pages. Each test also checks
(the ``page`` fixture) that nothing beyond this machine was reached and nothing logged an error;
screenshots go to ``user.screenshots`` (docs/screenshots/ with STRONGROOM_SCREENSHOTS)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import RESEARCH, Watched, WebEnv
from tests.web.test_browser import HARBOR, KESTREL, ask, sign_in
from tests.web.test_workspace_http import ADMIN, INGESTER

pytestmark = pytest.mark.integration


def shot(p: Any, web: WebEnv, name: str) -> None:
    p.screenshot(path=str(web.screenshots / name), full_page=True)


def test_a_conversation_keeps_context_takes_feedback_and_is_in_the_history(page: Watched, user: WebEnv) -> None:
    user.as_user("hugo", ["readers", "public"])
    p = page.page
    sign_in(p)
    ask(p, HARBOR)
    p.wait_for_url("**/ui/ask?c=*")
    ask(p, "And the cost of risk?")
    assert p.locator("#thread li.turn").count() == 1  # the first turn moved up into the thread
    assert "31 basis points" in p.locator("#answer-body").inner_text()  # the follow-up kept its context
    feedback = p.locator("#answer-feedback")
    feedback.get_by_label("Comment (optional)").fill("exactly what I needed")
    feedback.get_by_role("button", name="Useful", exact=True).click()
    feedback.get_by_text("feedback saved").wait_for()
    assert feedback.get_by_role("button", name="Useful", exact=True).get_attribute("aria-pressed") == "true"
    p.get_by_role("button", name="Share").click()
    p.get_by_label("Link to this conversation").wait_for()
    assert "/shared/" in p.get_by_label("Link to this conversation").input_value()

    p.get_by_role("link", name="History").click()
    p.wait_for_url("**/ui/history")
    row = p.locator("#conversations li", has_text=HARBOR)
    assert row.count() == 1
    shot(p, user, "history.png")
    row.get_by_role("link").click()
    p.locator("#thread li.turn").first.wait_for()
    feedback = p.locator("#answer-feedback")
    feedback.get_by_text("Your rating: useful").wait_for()  # stored, shown again on reopening
    assert feedback.get_by_label("Comment (optional)").input_value() == "exactly what I needed"
    p.get_by_role("link", name="History").click()
    p.locator("#conversations li", has_text=HARBOR).get_by_role("button", name="Delete").click()
    p.get_by_text("The conversation was deleted.").wait_for()
    p.reload()
    assert p.locator("#conversations li", has_text=HARBOR).count() == 0


def test_a_shared_link_shows_an_outsider_only_not_found(page: Watched, user: WebEnv) -> None:
    user.as_user("rita", RESEARCH)
    p = page.page
    sign_in(p)
    ask(p, KESTREL)
    p.get_by_role("button", name="Share").click()
    p.get_by_label("Link to this conversation").wait_for()  # shown once the link is made
    url = p.get_by_label("Link to this conversation").input_value()
    assert "/shared/" in url
    p.goto(url)
    p.get_by_role("heading", name=KESTREL, level=2).wait_for()
    assert "Lisbon" in p.locator("main").inner_text()
    p.get_by_role("button", name="Sign out").click()
    p.wait_for_url("**/ui/signin")

    user.as_user("ana", ["readers", "public"])
    page.expect_status(404)
    p.goto(url)
    p.get_by_role("link", name="Sign in with single sign-on").click()
    p.get_by_role("heading", name="Not found").wait_for()
    text = p.locator("body").inner_text()
    assert "Lisbon" not in text and "Kestrel" not in text


def test_documents_show_only_what_the_user_may_read(page: Watched, user: WebEnv) -> None:
    p = page.page
    sign_in(p)  # ana: public only
    p.get_by_role("link", name="Documents").click()
    p.wait_for_url("**/ui/documents")
    table = p.locator("#documents")
    assert "harbor.txt" in table.inner_text() and "osprey.pdf" in table.inner_text()
    assert "kestrel" not in p.locator("body").inner_text().lower()
    shot(p, user, "documents.png")
    p.get_by_label("Search titles and sources").fill("osprey")
    p.get_by_role("button", name="Search").click()
    p.wait_for_url("**q=osprey**")
    assert p.locator("#documents tbody tr").count() == 1
    p.locator("#documents tbody a").first.click()
    p.get_by_role("heading", name="Versions").wait_for()
    assert "factsheet" in p.locator("#doc-facts").inner_text()
    p.get_by_role("button", name="Page 1").click()
    p.locator("#doc-text", has_text="Osprey fees").wait_for()
    p.locator("#doc-figure:not([hidden])").wait_for()  # a PDF kept whole: the page as printed
    shot(p, user, "document.png")
    page.expect_status(404)
    p.goto(f"/ui/documents/{user.doc_ids['kestrel.txt']}")  # typed by hand
    p.get_by_role("heading", name="Not found").wait_for()
    assert "Lisbon" not in p.locator("body").inner_text()


def test_a_text_page_asks_for_no_image(page: Watched, user: WebEnv) -> None:
    p = page.page
    sign_in(p)
    p.goto(f"/ui/documents/{user.doc_ids['harbor.txt']}")
    p.get_by_role("button", name="Page 1").click()
    p.locator("#doc-text", has_text="Deposits at Harbor Bank").wait_for()
    ask_page_requests = [u for u in page.requests if u.endswith("/image")]
    assert ask_page_requests == [] and p.locator("#doc-figure").is_hidden()


def test_an_upload_shows_its_job_to_completion_and_a_failure_its_reason(
    page: Watched, user: WebEnv, tmp_path: Path
) -> None:
    user.as_user("ivan", INGESTER)
    p = page.page
    sign_in(p)
    p.get_by_role("link", name="Upload").click()
    p.wait_for_url("**/ui/upload")
    good = tmp_path / "egret.txt"
    good.write_text("Egret Bank memo\n\nEgret Bank raised its dividend to 40 cents.\n")
    p.get_by_label("File").set_input_files(str(good))
    p.get_by_label("Document type (optional)").fill("memo")
    p.get_by_role("button", name="Upload").click()
    p.locator("#job-status", has_text="done.").wait_for()
    assert p.evaluate("document.getElementById('job-progress').value") == 1
    assert "egret.txt: ingested" in p.locator("#job-files").inner_text()
    shot(p, user, "upload.png")
    assert any("/v1/jobs/" in u for u in page.requests) or "done" in p.locator("#job-status").inner_text()

    bad = tmp_path / "broken.pdf"
    bad.write_bytes(b"%PDF-1.7 this is not a PDF at all")
    p.get_by_label("File").set_input_files(str(bad))
    p.get_by_role("button", name="Upload").click()
    p.locator("#job-status", has_text="failed.").wait_for()
    reason = p.locator("#job-files .reason").inner_text()
    assert "broken.pdf: failed" in p.locator("#job-files").inner_text() and len(reason) > 5
    p.reload()
    assert "broken.pdf" in p.locator(".jobs").inner_text()  # the failure stays listed with its reason


def test_administration_is_hidden_and_refused_for_a_reader(page: Watched, user: WebEnv) -> None:
    p = page.page
    sign_in(p)
    assert p.get_by_role("link", name="Admin").count() == 0
    page.expect_status(403)
    response = p.goto("/ui/admin/audit")
    assert response is not None and response.status == 403
    p.get_by_role("heading", name="Refused").wait_for()


def test_an_admin_verifies_the_audit_log_and_manages_keys(page: Watched, user: WebEnv) -> None:
    user.as_user("ada", ADMIN)
    p = page.page
    sign_in(p)
    p.get_by_role("link", name="Admin").click()
    p.wait_for_url("**/ui/admin/audit")
    p.get_by_role("button", name="Verify the audit log").click()
    p.locator("#verify-status", has_text="OK:").wait_for()
    p.get_by_label("Action (starts with)").fill("ui.")
    p.get_by_role("button", name="Filter").click()
    p.wait_for_url("**action=ui.**")
    assert "ui.signin" in p.locator("#audit-records").inner_text()
    assert p.get_by_role("link", name="Export all (JSON lines)").get_attribute("download") == "audit.jsonl"
    p.get_by_role("button", name="Verify the audit log").click()
    p.locator("#verify-status", has_text="OK:").wait_for()
    shot(p, user, "admin-audit.png")

    p.get_by_role("link", name="API keys").click()
    p.get_by_label("Owner (who answers for it)").fill("nightly-batch")
    p.get_by_label("Groups (comma-separated; only groups you hold)").fill("public")
    p.get_by_role("button", name="Create key").click()
    secret = p.get_by_label("Secret", exact=True)
    secret.wait_for()
    value = secret.input_value()
    assert value.startswith("sr_")
    shot(p, user, "admin-keys.png")
    p.get_by_role("button", name="I have stored it").click()
    assert p.locator("#key-secret").is_hidden() and value not in p.content()
    row = p.locator("#keys tr", has_text="nightly-batch").first
    row.get_by_role("button", name="Revoke").click()
    row.locator(".key-status", has_text="revoked").wait_for()
    p.reload()
    assert value not in p.content()
    assert "revoked" in p.locator("#keys tr", has_text="nightly-batch").first.inner_text()
    p.get_by_role("link", name="Model routes").click()
    assert "fake-vllm" in p.locator("#deployments").inner_text()
    p.get_by_role("link", name="Ingestion jobs").click()
    p.locator("#dead-letters").wait_for()


def test_every_control_on_the_new_pages_is_labelled(page: Watched, user: WebEnv) -> None:
    user.as_user("ada", [*ADMIN, "ingesters"])
    p = page.page
    sign_in(p)
    for path in (
        "/ui/history",
        "/ui/documents",
        f"/ui/documents/{user.doc_ids['osprey.pdf']}",
        "/ui/upload",
        "/ui/admin/audit",
        "/ui/admin/keys",
        "/ui/admin/jobs",
        "/ui/admin/models",
    ):
        p.goto(path)
        unlabelled = p.evaluate(
            """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button, a[href]')]
                 .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                              && !e.getAttribute('aria-labelledby') && !(e.textContent || '').trim())
                 .map(e => e.outerHTML)"""
        )
        assert unlabelled == [], (path, unlabelled)
