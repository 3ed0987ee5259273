"""The admin audit page after an erasure (issue 20): a record whose free text was erased is
listed, marked erased, and the erased text is nowhere on the page or in the export."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from strongroom.audit import open_audit_log
from tests.web.conftest import WebEnv
from tests.web.test_signin import signed_in

pytestmark = pytest.mark.integration

ADMIN = ["readers", "public", "admins"]
NEEDLE = "Ysolde Brackwater-9932"


@pytest.fixture
def admin_client(web: WebEnv) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=web.url, timeout=30) as c:
        yield c


def _found(web: WebEnv) -> list[int]:
    """The seqs of the records naming :data:`NEEDLE`, once the server's audit thread wrote them."""
    deadline = time.monotonic() + 30  # a deadline, not a timing assertion
    log = open_audit_log(web.settings)
    try:
        while not (seqs := log.find_text([NEEDLE])) and time.monotonic() < deadline:
            time.sleep(0.05)
        return seqs
    finally:
        log.close()


def test_an_erased_record_is_listed_as_erased_without_its_text(user: WebEnv, admin_client: httpx.Client) -> None:
    user.as_user("ada", ADMIN)
    csrf = {"X-CSRF-Token": signed_in(user, admin_client)}
    searched = admin_client.post("/v1/search", json={"query": f"what does {NEEDLE} owe"}, headers=csrf)
    assert searched.status_code == 200, searched.text
    seqs = _found(user)
    assert seqs
    shown = admin_client.get("/ui/admin/audit", params={"action": "search", "principal": "ada"})
    assert shown.status_code == 200 and NEEDLE in shown.text  # before: the page shows the query
    log = open_audit_log(user.settings)
    try:
        assert log.erase(seqs) == seqs
    finally:
        log.close()
    page = admin_client.get("/ui/admin/audit", params={"action": "search", "principal": "ada"})
    assert page.status_code == 200, page.text
    assert NEEDLE not in page.text and "[erased]" in page.text
    exported = admin_client.get("/v1/audit", params={"limit": 100000})
    assert exported.status_code == 200 and NEEDLE not in exported.text and '"erased": true' in exported.text
    verified = admin_client.get("/v1/admin/audit/verify").json()
    assert verified["ok"] is True and verified["erased"] >= 1
