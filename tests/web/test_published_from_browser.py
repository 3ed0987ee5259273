"""The Ask page's "Published from" date in a real browser: a document published before the
day never answers, one published on it does, and a day after "as of" is refused with the
server's reason. The ``page`` fixture still checks that nothing left the machine and that
the page logged no error beyond the declared refusal."""

from __future__ import annotations

import httpx
import pytest

from tests.web.conftest import Watched, WebEnv
from tests.web.test_browser import ask, sign_in

pytestmark = pytest.mark.integration

HERON = "What dividend did the Heron Trust pay?"


@pytest.fixture
def heron(user: WebEnv) -> WebEnv:
    """A public letter published on 2019-06-01, uploaded as an ingester (again: a duplicate)."""
    token = user.provider.token(sub="ian", groups=["ingesters", "readers", "public"])
    with httpx.Client(base_url=user.url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
        text = "Heron Trust annual letter\n\nThe Heron Trust paid a dividend of 55 cents per unit in the year.\n"
        form = {"acl": "public", "published": "2019-06-01", "source": "letters", "wait": "true"}
        r = c.post("/v1/documents", files={"file": ("heron.txt", text.encode())}, data=form)
        assert r.status_code in (200, 202), r.text
        assert r.json()["status"] == "done", r.text
    return user


def test_published_from_narrows_the_answer_next_to_as_of(page: Watched, heron: WebEnv) -> None:
    p = page.page
    sign_in(p)
    published_from = p.get_by_label("Published from")
    assert published_from.is_visible() and published_from.get_attribute("type") == "date"
    # beside the as-of picker, in the same fieldset
    assert p.locator("fieldset:has(#as-of) #published-from").count() == 1

    ask(p, HERON)
    assert "heron.txt" in p.locator("#sources").inner_text()  # no bound: the 2019 letter answers

    published_from.fill("2020-01-01")
    ask(p, HERON)
    assert "heron.txt" not in p.locator("#answer").inner_text()  # published before the day: never

    published_from.fill("2019-06-01")  # the day itself is inside
    ask(p, HERON)
    assert "55 cents" in p.locator("#answer-body").inner_text()
    assert "heron.txt" in p.locator("#sources").inner_text()

    page.expect_status(422)  # the refusal below: chromium logs the failed request
    p.get_by_label("Published by (as of)").fill("2019-01-01")
    ask(p, HERON)
    status = p.locator("#answer-status.error").inner_text()
    assert "published_from" in status and "after as_of" in status
