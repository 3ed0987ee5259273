"""The Ask page's term-sheet field filter in a real browser: two notes that answer the same
question, told apart only by a term-sheet field; the filter sends ``ts.<field>`` as a metadata
filter, so only the matching one answers. The ``page`` fixture still checks that nothing left
the machine and that the page logged no error. (The notes join the session's shared web
store, so their names are unlike any other test's: a listing of "osprey" still finds one.)"""

from __future__ import annotations

import json

import httpx
import pytest

from tests.web.conftest import Watched, WebEnv
from tests.web.test_browser import ask, sign_in

pytestmark = pytest.mark.integration

QUESTION = "What coupon does the Wryneck note pay?"


@pytest.fixture
def wrynecks(user: WebEnv) -> WebEnv:
    """Two public Wryneck notes, one in EUR and one in USD (term-sheet fields as metadata)."""
    token = user.provider.token(sub="ian", groups=["ingesters", "readers", "public"])
    with httpx.Client(base_url=user.url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
        for currency, coupon in (("EUR", "3.10"), ("USD", "4.85")):
            text = f"Wryneck note ({currency})\n\nThe Wryneck note pays a fixed coupon of {coupon} percent a year.\n"
            form = {"acl": "public", "source": "notes", "meta": json.dumps({"ts.currency": currency}), "wait": "true"}
            r = c.post("/v1/documents", files={"file": (f"wryneck-{currency}.txt", text.encode())}, data=form)
            assert r.status_code in (200, 202), r.text
            assert r.json()["status"] == "done", r.text
    return user


def test_a_term_sheet_field_filter_answers_from_matching_term_sheets_only(page: Watched, wrynecks: WebEnv) -> None:
    p = page.page
    sign_in(p)
    ask(p, QUESTION)
    both = p.locator("#sources").inner_text()
    assert "wryneck-EUR.txt" in both and "wryneck-USD.txt" in both  # no filter: both answer

    p.get_by_label("Term-sheet field").select_option("currency")
    p.get_by_label("equals").fill("USD")
    ask(p, QUESTION)
    assert "4.85" in p.locator("#answer-body").inner_text()
    sources = p.locator("#sources").inner_text()
    assert "wryneck-USD.txt" in sources and "wryneck-EUR.txt" not in sources
