"""The four-eyes approvals page in a real browser (Debian's chromium, driven by playwright),
with STRONGROOM_FOUR_EYES on: Ana (an admin) proposes an ACL change from her browser session;
her approvals page lists it as hers with no Approve button, and when she forges the form's POST
anyway (with her valid CSRF token, and without one) the server refuses it and the ACL stays.
Bo (an approver, not an admin) signs in, clicks Approve, and the change takes effect. A reader
with neither role is refused the page."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from strongroom.api import create_app
from strongroom.config import Settings
from strongroom.ingest.pipeline import IngestOptions, ingest
from strongroom.runtime import open_runtime
from strongroom.testing import HashEmbedder
from tests.api.conftest import service_settings
from tests.api.live import live_server
from tests.auth.oidc_provider import CLIENT_ID, Provider, User

pytestmark = pytest.mark.integration

ROLES = {"reader": ["readers"], "ingester": ["ingesters"], "admin": ["admins"], "approver": ["approvers"]}
ANA = User("ana", ["readers", "admins", "research"])  # the maker
BO = User("bo", ["readers", "approvers"])  # the checker: an approver only
CY = User("cy", ["readers", "research"])  # neither


@dataclass
class World:
    url: str
    provider: Provider
    doc_id: str


@pytest.fixture
def world(tmp_path: Path, web_provider: Provider) -> Iterator[World]:
    settings = Settings(home=tmp_path / "home", embedder="hash", four_eyes=True)
    (tmp_path / "memo.txt").write_text("Credit memo\n\nThe credit desk expects spreads to widen.\n")
    runtime = open_runtime(settings, HashEmbedder(64))
    try:
        opts = IngestOptions(acl=frozenset({"research"}))
        assert ingest([tmp_path / "memo.txt"], runtime.store, runtime.embedder, opts).ingested == 1
        doc_id = runtime.store.versions()[-1].document_id
    finally:
        runtime.close()
    app = create_app(
        settings, service_settings(web_provider, ui_client_id=CLIENT_ID, role_groups=ROLES), embedder=HashEmbedder(64)
    )
    before = web_provider.user
    try:
        with live_server(app) as url:
            yield World(url, web_provider, doc_id)
    finally:
        web_provider.user = before


@pytest.fixture
def contexts(browser: Any, world: World) -> Iterator[list[Any]]:
    opened: list[Any] = []
    yield opened
    for context in opened:
        context.close()


def signed_in(browser: Any, world: World, who: User, opened: list[Any]) -> tuple[Any, Any, list[str]]:
    """A fresh browser context signed in as ``who``: its page, context and page errors."""
    context = browser.new_context(base_url=world.url, viewport={"width": 1280, "height": 860})
    context.set_default_timeout(15_000)
    opened.append(context)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    world.provider.user = who
    page.goto("/")
    page.wait_for_url("**/ui/signin")
    page.get_by_role("link", name="Sign in with single sign-on").click()
    page.wait_for_url("**/ui/ask")
    return page, context, errors


def unlabelled(page: Any) -> list[str]:
    """The page's controls that name themselves to no one (no label, aria-label or text)."""
    found: list[str] = page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button, a[href]')]
             .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                          && !e.getAttribute('aria-labelledby') && !(e.textContent || '').trim())
             .map(e => e.outerHTML)"""
    )
    return found


def acl_of(context: Any, world: World) -> list[str]:
    r = context.request.get(f"/v1/documents/{world.doc_id}")
    assert r.status == 200, r.text()
    return sorted(r.json()["current"]["acl"])


def test_a_second_person_approves_in_the_browser_and_the_maker_cannot(
    browser: Any, world: World, contexts: list[Any]
) -> None:
    ana, ana_ctx, ana_errors = signed_in(browser, world, ANA, contexts)
    csrf = ana.get_attribute('meta[name="csrf-token"]', "content")
    assert csrf
    proposed = ana_ctx.request.put(
        f"/v1/documents/{world.doc_id}/acl",
        data={"acl": ["research", "credit"]},
        headers={"X-CSRF-Token": csrf},
    )
    assert proposed.status == 202, proposed.text()
    pid = proposed.json()["proposal_id"]
    assert acl_of(ana_ctx, world) == ["research"]

    ana.goto("/ui/admin/approvals")
    row = ana.locator(f"tr[data-proposal='{pid}']")
    assert row.is_visible() and "ana (you)" in row.inner_text() and "waiting for another person" in row.inner_text()
    assert ana.get_by_role("button", name=f"Approve proposal {pid} by ana").count() == 0
    # the maker forges the form the page did not give her: refused by the application layer
    forged = ana_ctx.request.post(f"/ui/admin/approvals/{pid}/approve", form={"csrf_token": csrf})
    assert forged.status == 403 and "another person" in forged.text()
    no_token = ana_ctx.request.post(f"/ui/admin/approvals/{pid}/approve", form={"csrf_token": ""})
    assert no_token.status == 403 and "CSRF" in no_token.text()
    assert acl_of(ana_ctx, world) == ["research"]
    ana.reload()
    assert ana.locator(f"tr[data-proposal='{pid}'] .proposal-status").inner_text().startswith("proposed")

    cy, _, cy_errors = signed_in(browser, world, CY, contexts)
    refused = cy.goto("/ui/admin/approvals")
    assert refused is not None and refused.status == 403

    bo, bo_ctx, bo_errors = signed_in(browser, world, BO, contexts)
    bo.get_by_role("link", name="Approvals").click()
    bo.wait_for_url("**/ui/admin/approvals")
    assert unlabelled(bo) == []
    bo.get_by_role("button", name=f"Approve proposal {pid} by ana").click()
    bo.wait_for_selector("#approvals-notice")
    assert bo.locator("#approvals-notice").inner_text() == f"proposal {pid}: applied"
    assert "readable by credit, research" in bo.locator("#approvals-change").inner_text()
    assert bo.locator(f"tr[data-proposal='{pid}'] .proposal-status").inner_text().startswith("applied by bo")
    assert bo.get_by_role("button", name=f"Approve proposal {pid} by ana").count() == 0  # decided: no button
    assert acl_of(ana_ctx, world) == ["credit", "research"]  # in effect

    again = bo_ctx.request.post(f"/ui/admin/approvals/{pid}/approve", form={"csrf_token": bo.get_attribute(
        'meta[name="csrf-token"]', "content")})  # fmt: skip
    assert again.status == 400 and "is applied, not waiting for a decision" in again.text()  # applied once
    assert not (ana_errors or bo_errors or cy_errors)


def test_an_approver_rejects_and_reviews_break_glass_in_the_browser(
    browser: Any, world: World, contexts: list[Any]
) -> None:
    ana, ana_ctx, ana_errors = signed_in(browser, world, ANA, contexts)
    csrf = ana.get_attribute('meta[name="csrf-token"]', "content")
    headers = {"X-CSRF-Token": csrf}
    proposed = ana_ctx.request.put(f"/v1/documents/{world.doc_id}/acl", data={"acl": ["public"]}, headers=headers)
    assert proposed.status == 202, proposed.text()
    pid = proposed.json()["proposal_id"]
    change = {"document_id": world.doc_id, "acl": ["research", "risk"]}
    glass = ana_ctx.request.post(
        "/v1/approvals/break-glass",
        data={"kind": "acl.set", "change": change, "reason": "incident 42"},
        headers=headers,
    )
    assert glass.status == 200, glass.text()
    gid = glass.json()["proposal"]["id"]
    assert acl_of(ana_ctx, world) == ["research", "risk"]  # break glass: at once
    ana.goto("/ui/admin/approvals")
    assert ana.locator(f"#unreviewed tr[data-proposal='{gid}']").is_visible()
    assert ana.get_by_role("button", name=f"Mark break-glass change {gid} reviewed").count() == 0  # not hers to review

    bo, _, bo_errors = signed_in(browser, world, BO, contexts)
    bo.goto("/ui/admin/approvals")
    bo.get_by_label(f"Reason for rejecting {pid}").fill("not before the desk review")
    bo.get_by_role("button", name=f"Reject proposal {pid} by ana").click()
    bo.wait_for_selector("#approvals-notice")
    assert bo.locator("#approvals-notice").inner_text() == f"proposal {pid}: rejected"
    assert acl_of(ana_ctx, world) == ["research", "risk"]  # the rejected change never took effect

    bo.get_by_role("button", name=f"Mark break-glass change {gid} reviewed").click()
    bo.wait_for_selector("#approvals-notice")
    assert bo.locator("#approvals-notice").inner_text() == f"proposal {gid}: reviewed"
    assert bo.locator("#unreviewed").inner_text() == "Every break-glass change has been reviewed."
    bo.select_option("#approvals-status", "rejected")
    bo.get_by_role("button", name="Show").click()
    bo.wait_for_url("**/ui/admin/approvals?status=rejected")
    assert [bo.locator("#proposals tbody tr").nth(0).get_attribute("data-proposal")] == [pid]
    assert bo.locator("#proposals tbody tr").count() == 1
    assert not (ana_errors or bo_errors)
