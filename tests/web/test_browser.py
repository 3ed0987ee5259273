"""The web workspace in a real browser (Debian's chromium, headless, driven by playwright):
sign in through the local OIDC provider, ask, read the numbered citations, open the cited
page. Every test also checks (in the ``page`` fixture) that the browser reached nothing
beyond this machine and that the page logged no error."""

from __future__ import annotations

from typing import Any

import pytest

from tests.web.conftest import RESEARCH, Watched, WebEnv

pytestmark = pytest.mark.integration

HARBOR = "What was Harbor Bank net interest income?"
KESTREL = "What would Project Kestrel acquire?"


def sign_in(page: Any, shot: str = "") -> None:
    page.goto("/")
    page.wait_for_url("**/ui/signin")
    assert page.get_by_role("heading", name="Sign in to strongroom").is_visible()
    if shot:
        page.screenshot(path=shot)
    page.get_by_role("link", name="Sign in with single sign-on").click()
    page.wait_for_url("**/ui/ask")
    page.get_by_label("Question").wait_for()


def ask(page: Any, question: str) -> None:
    page.get_by_label("Question").fill(question)
    page.get_by_role("button", name="Ask", exact=True).click()
    page.wait_for_selector("#answer[aria-busy='false'] #answer-status:not(:empty)")


def test_sign_in_ask_and_open_a_citation(page: Watched, user: WebEnv) -> None:
    p = page.page
    sign_in(p, str(user.screenshots / "signin.png"))
    assert p.get_by_text("ana", exact=True).is_visible()
    ask(p, HARBOR)
    claims = p.locator("#answer-body .claim")
    assert claims.count() >= 1 and "812 million" in claims.first.inner_text()
    numbers = p.locator("#answer-body button.cite").all_inner_texts()
    assert numbers and numbers[0] == "[1]" and all(n.startswith("[") for n in numbers)
    sources = p.locator("#sources li")
    assert sources.count() >= 1 and "harbor.txt p.1" in sources.first.inner_text()
    quote = sources.first.locator("q").text_content()
    p.screenshot(path=str(user.screenshots / "ask.png"), full_page=True)

    p.locator("#answer-body button.cite").first.click()
    viewer = p.get_by_role("dialog", name="[1] harbor.txt p.1")
    viewer.wait_for()
    mark = p.locator("#viewer-text mark")
    mark.wait_for()
    assert mark.text_content() == quote  # the cited characters, marked in the page's text
    assert "Deposits at Harbor Bank grew" in p.locator("#viewer-text").inner_text()  # the whole page
    assert p.locator("#viewer-figure").is_hidden()  # a text file: no page image
    p.keyboard.press("Escape")
    viewer.wait_for(state="hidden")
    assert p.evaluate("document.activeElement.textContent") == "[1]"  # focus back on the citation


def test_a_pdf_citation_shows_the_page_image_with_the_span_outlined(page: Watched, user: WebEnv) -> None:
    p = page.page
    sign_in(p)
    ask(p, "What did the Osprey Fund return in the year?")
    p.locator("#sources li", has_text="osprey.pdf").locator("button.cite").first.click()
    p.locator("#viewer-text mark").wait_for()
    image = p.locator("#viewer-image")
    image.wait_for()
    assert p.locator("#viewer-figure").is_visible()
    assert p.evaluate("document.getElementById('viewer-image').naturalWidth") > 100
    p.locator(".page-image .box").first.wait_for()
    box = p.locator(".page-image .box").first.bounding_box()
    frame = image.bounding_box()
    assert box and frame and box["width"] > 5 and box["height"] > 2
    assert frame["x"] <= box["x"] and box["x"] + box["width"] <= frame["x"] + frame["width"] + 1
    assert any("/image" in u for u in page.requests) and any("/highlight?start=" in u for u in page.requests)
    p.screenshot(path=str(user.screenshots / "citation.png"))


def test_the_viewer_and_citations_work_from_the_keyboard(page: Watched, user: WebEnv) -> None:
    p = page.page
    sign_in(p)
    p.get_by_label("Question").fill(HARBOR)
    p.get_by_label("Question").press("Tab")  # into the route picker ...
    for _ in range(30):  # ... through the filters and the clocks (a date field takes 4 stops), to Ask
        if p.evaluate("document.activeElement.id") == "ask-button":
            break
        p.keyboard.press("Tab")
    assert p.evaluate("document.activeElement.id") == "ask-button"  # reached by keyboard alone
    p.keyboard.press("Enter")
    p.locator("#answer-body button.cite").first.wait_for()
    for _ in range(20):
        p.keyboard.press("Tab")
        if p.evaluate("document.activeElement.classList.contains('cite')"):
            break
    assert p.evaluate("document.activeElement.textContent") == "[1]"
    p.keyboard.press("Enter")
    p.locator("#viewer-text mark").wait_for()
    assert p.evaluate("document.activeElement.id") == "viewer"  # focus moved to the viewer
    p.keyboard.press("Escape")
    p.locator("#viewer").wait_for(state="hidden")


def test_every_control_is_labelled(page: Watched, user: WebEnv) -> None:
    p = page.page
    sign_in(p)
    unlabelled = p.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button, a[href]')]
             .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                          && !(e.textContent || '').trim())
             .map(e => e.outerHTML)"""
    )
    assert unlabelled == []
    assert p.get_by_label("Answer with").is_visible() and p.get_by_label("Document type").is_visible()
    assert p.get_by_label("Source", exact=True).is_visible() and p.get_by_label("Published by (as of)").is_visible()
    assert p.get_by_label("Held by the platform by (known at)").is_visible()


def test_a_user_outside_the_group_never_sees_the_restricted_answer(page: Watched, user: WebEnv) -> None:
    p = page.page
    sign_in(p)  # ana: public only
    ask(p, KESTREL)
    shown = p.locator("#answer").inner_text()
    assert "Lisbon" not in shown and "kestrel.txt" not in shown
    assert p.locator("#route option").all_inner_texts() == ["strongroom-rag (extractive)"]


def test_a_user_in_the_group_sees_it_and_a_model_route_streams(page: Watched, user: WebEnv) -> None:
    user.as_user("rita", RESEARCH)
    p = page.page
    sign_in(p)
    ask(p, KESTREL)
    assert "Lisbon" in p.locator("#answer-body").inner_text()
    assert "kestrel.txt p.1" in p.locator("#sources").inner_text()
    p.locator("#route option[value='chat']").wait_for(state="attached")
    p.get_by_label("Answer with").select_option("chat")
    ask(p, HARBOR)
    assert any(u.endswith("/v1/chat/completions") for u in page.requests)  # streamed (SSE)
    assert "812 million" in p.locator("#answer-body").inner_text()
    assert "chat" in p.locator("#answer-status").inner_text()
    p.locator("#answer-body button.cite").first.click()
    p.locator("#viewer-text mark").wait_for()


def test_filters_and_clocks_narrow_the_answer(page: Watched, user: WebEnv) -> None:
    p = page.page
    sign_in(p)
    p.get_by_label("Document type").fill("factsheet")
    ask(p, HARBOR)
    shown = p.locator("#answer").inner_text()
    assert "harbor.txt" not in shown  # only factsheets: the Harbor report is not one
    p.get_by_label("Document type").fill("")
    p.get_by_label("Source", exact=True).fill("funds")
    ask(p, "What did the Osprey Fund return in the year?")
    assert "osprey.pdf" in p.locator("#sources").inner_text()
    p.get_by_label("Source", exact=True).fill("")
    p.get_by_label("Published by (as of)").fill("2001-01-01")
    ask(p, HARBOR)
    assert p.locator("#answer-status.notfound").is_visible()  # nothing was published by then


def test_signing_out_ends_the_session(page: Watched, user: WebEnv) -> None:
    p = page.page
    sign_in(p)
    p.get_by_role("button", name="Sign out").click()
    p.wait_for_url("**/ui/signin")
    p.goto("/ui/ask")
    p.wait_for_url("**/ui/signin?next=/ui/ask")
