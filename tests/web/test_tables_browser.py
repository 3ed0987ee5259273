"""A document's tables in a real browser (Debian's chromium via playwright), on a real filing:
Apple's 10-Q for the third quarter of 2023, whose income statement (page 4) shows total net
sales of 81,797. Each table is an HTML table with a caption, column headers and right-aligned
figures, linking to its page in the page reader; a reader outside the document's ACL gets the
"not found" page. The ``page`` fixture still checks that nothing beyond this machine was
reached and nothing logged an error; ``document-tables.png`` goes to ``user.screenshots``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from strongroom.api import create_app
from strongroom.auth import SqliteApiKeyStore
from strongroom.config import Settings
from strongroom.ingest.originals import originals_folder
from strongroom.ingest.pipeline import IngestOptions, ingest
from strongroom.runtime import open_runtime
from strongroom.testing import HashEmbedder
from strongroom.testing.openai_server import FakeOpenAIServer, Reply
from tests.api.conftest import service_settings
from tests.api.live import live_server
from tests.auth.oidc_provider import CLIENT_ID, Provider
from tests.web.conftest import PUBLIC, RESEARCH, Watched, WebEnv
from tests.web.test_browser import sign_in

pytestmark = pytest.mark.integration

AAPL = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "sec10q" / "docs" / "2023 Q3 AAPL.pdf"
TERMS = 'Field,Value\nCoupon,4.25%\nIssue price,99.412%\nNotional,"750,000,000"\n'


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory, web_provider: Provider) -> Iterator[WebEnv]:
    """This module's workspace: the filing and a term sheet, both for the group research."""
    if not AAPL.is_file():
        pytest.skip(f"the sec10q corpus is not at {AAPL.parent}")
    home = tmp_path_factory.mktemp("tables-home")
    files = tmp_path_factory.mktemp("tables-docs")
    (files / "terms.csv").write_text(TERMS)
    settings = Settings(home=home, embedder="hash")
    runtime = open_runtime(settings, HashEmbedder(64))
    ids: dict[str, str] = {}
    try:
        opts = IngestOptions(acl=frozenset({"research"}), source="filings", originals=originals_folder(home))
        for path in (AAPL, files / "terms.csv"):
            assert ingest([path], runtime.store, runtime.embedder, opts).ok
            ids[path.name] = runtime.store.versions()[-1].document_id
    finally:
        runtime.close()
    _, api_key = SqliteApiKeyStore(settings.catalog_path).create("dev", frozenset(PUBLIC))
    shots = Path(os.environ.get("STRONGROOM_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    with FakeOpenAIServer(Reply.stream("unused")) as model:
        app = create_app(settings, service_settings(web_provider, ui_client_id=CLIENT_ID), embedder=HashEmbedder(64))
        with live_server(app) as url:
            yield WebEnv(url, app, web_provider, settings, model, api_key, shots, ids)


def test_a_filing_shows_its_income_statement_as_a_table_that_opens_its_page(page: Watched, user: WebEnv) -> None:
    user.as_user("rita", RESEARCH)
    p = page.page
    sign_in(p)
    p.goto(f"/ui/documents/{user.doc_ids[AAPL.name]}")
    p.get_by_role("heading", name="Tables of the current version").wait_for()
    sales = p.get_by_role("rowheader", name="Total net sales", exact=True)
    block = p.locator("div.table-block", has=sales).first  # the income statement (segments follow)
    statement = block.locator("table.data-table")
    caption = statement.locator("caption").inner_text()
    assert caption.endswith("page 4"), caption
    figure = statement.get_by_role("row").filter(has=sales).get_by_role("cell").first
    assert figure.inner_text() == "81,797"
    assert figure.evaluate("c => getComputedStyle(c).textAlign") == "right"
    headings = statement.locator("thead th[scope=col]")
    assert headings.count() == statement.locator("tbody tr").first.locator("th, td").count() >= 3

    # from the list of tables to the statement, and on to its page, with the keyboard
    number = caption.split(",")[0]  # "Table N"
    p.locator("#table-list").get_by_role("link", name=number, exact=True).focus()
    p.keyboard.press("Enter")
    p.wait_for_url(f"**#{block.get_attribute('id')}")
    p.get_by_role("group", name=caption).focus()  # a wide table scrolls from the keyboard
    p.screenshot(path=str(user.screenshots / "document-tables.png"))
    block.get_by_role("link", name="Read page 4").focus()
    p.keyboard.press("Enter")
    p.locator("#doc-text", has_text="Total net sales").wait_for()
    assert p.get_by_role("button", name="Page 4").get_attribute("aria-pressed") == "true"
    assert p.evaluate("document.activeElement.getAttribute('data-page')") == "4"  # the focus follows
    p.locator("#doc-figure:not([hidden])").wait_for()  # the page as printed, beside its text


def test_a_term_sheet_table_has_its_header_cells(page: Watched, user: WebEnv) -> None:
    user.as_user("rita", RESEARCH)
    p = page.page
    sign_in(p)
    p.goto(f"/ui/documents/{user.doc_ids['terms.csv']}")
    table = p.locator("#doc-tables table.data-table")
    assert table.count() == 1
    assert table.get_by_role("columnheader").all_inner_texts() == ["Field", "Value"]
    assert table.get_by_role("cell", name="4.25%").evaluate("c => getComputedStyle(c).textAlign") == "right"
    assert table.get_by_role("cell", name="Coupon").evaluate("c => getComputedStyle(c).textAlign") == "left"


def test_an_outsider_sees_only_not_found(page: Watched, user: WebEnv) -> None:
    user.as_user("ana", PUBLIC)
    p = page.page
    sign_in(p)
    page.expect_status(404)
    p.goto(f"/ui/documents/{user.doc_ids[AAPL.name]}")
    p.get_by_role("heading", name="Not found").wait_for()
    body = p.locator("body").inner_text()
    assert "81,797" not in body and "Total net sales" not in body
    assert not [u for u in page.requests if "/tables" in u]
