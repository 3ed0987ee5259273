"""A version's tables over real HTTP: listed and read for a reader of the document, with each
cell's figure and its span in the page text; 404 (the same as for nothing there) for anyone
else; never cached; one audit record per read."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from strongroom.api import create_app
from strongroom.config import Settings
from strongroom.testing import HashEmbedder
from tests.api.conftest import audit_records, service_settings
from tests.api.live import live_server
from tests.auth.oidc_provider import Provider

AAPL = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "sec10q" / "docs" / "2023 Q3 AAPL.pdf"
ANALYST = ["readers", "ingesters", "research"]
OUTSIDER = ["readers", "public"]  # a reader, but not of research documents
AUDITOR = ["admins"]


@dataclass
class Site:
    url: str
    provider: Provider
    versions: dict[str, tuple[str, str]]  # name -> (document id, version id)

    def client(self, groups: list[str], sub: str = "ana") -> httpx.Client:
        token = self.provider.token(sub=sub, groups=groups)
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)

    def tables(self, name: str, index: int | None = None) -> str:
        document_id, version_id = self.versions[name]
        found = f"/v1/documents/{document_id}/versions/{version_id}/tables"
        return found if index is None else f"{found}/{index}"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, provider: Provider) -> Iterator[Site]:
    if not AAPL.is_file():
        pytest.skip(f"the sec10q corpus is not at {AAPL.parent}")
    settings = Settings(home=tmp_path_factory.mktemp("home"), embedder="hash")
    app = create_app(settings, service_settings(provider), embedder=HashEmbedder(64))
    with live_server(app) as url:
        site = Site(url, provider, {})
        uploads = {
            "aapl.pdf": AAPL.read_bytes(),
            "terms.csv": b'Field,Value\nCoupon,4.25%\nIssue price,99.412%\nNotional,"750,000,000"\n',
        }
        with site.client(ANALYST, sub="uploader") as c:
            for name, data in uploads.items():
                r = c.post("/v1/documents", files={"file": (name, data)}, data={"acl": "research", "wait": "true"})
                assert r.status_code == 202 and r.json()["status"] == "done", r.text
                (entry,) = r.json()["files"]
                site.versions[name] = (entry["document_id"], entry["version_id"])
        yield site


def test_a_reader_lists_the_tables_and_reads_one_with_its_cells(site: Site) -> None:
    with site.client(ANALYST) as c:
        listed = c.get(site.tables("aapl.pdf"))
        assert listed.status_code == 200, listed.text
        assert listed.headers["cache-control"] == "private, no-store"
        summaries = listed.json()["tables"]
        assert [s["index"] for s in summaries] == list(range(len(summaries)))
        on_4 = [s for s in summaries if s["page"] == 4]
        assert on_4 and all(s["kind"] == "figures" and s["columns"] >= 3 for s in on_4)
        shown = [c.get(site.tables("aapl.pdf", s["index"])) for s in on_4]
        assert all(r.status_code == 200 and r.headers["cache-control"] == "private, no-store" for r in shown)
        statement = next(
            r.json() for r in shown if any(row[0]["text"] == "Total net sales" for row in r.json()["rows"])
        )
        sales = next(row for row in statement["rows"] if row[0]["text"] == "Total net sales")
        assert sales[1] == {**sales[1], "text": "81,797", "number": 81797.0, "page": 4}
        # the span indexes the page text, as a citation's does
        page = c.get(f"/v1/documents/{statement['document_id']}/versions/{statement['version_id']}/pages/4").json()
        assert page["text"][sales[1]["start"] : sales[1]["end"]] == "81,797"


def test_a_pipe_table_has_header_cells(site: Site) -> None:
    with site.client(ANALYST) as c:
        (summary,) = c.get(site.tables("terms.csv")).json()["tables"]
        table = c.get(site.tables("terms.csv", 0)).json()
    assert summary == {"index": 0, "page": 1, "kind": "pipe", "rows": 3, "columns": 2, "first": ["Coupon", "4.25%"]}
    assert table["header"] == ["Field", "Value"]
    assert [c["number"] for c in table["rows"][0]] == [None, 4.25]


def test_an_outsider_gets_the_404_of_a_version_that_does_not_exist(site: Site) -> None:
    document_id, version_id = site.versions["aapl.pdf"]
    with site.client(OUTSIDER, sub="bo") as c:
        refused = [c.get(site.tables("aapl.pdf")), c.get(site.tables("aapl.pdf", 0))]
    with site.client(ANALYST) as c:
        absent = [
            c.get(site.tables("aapl.pdf").replace(version_id, "f" * 64)),
            c.get(site.tables("aapl.pdf", 0).replace(document_id, "0" * 64)),
            c.get(site.tables("aapl.pdf"), params={"as_of": "2000-01-01"}),  # not yet published then
        ]
        past_the_end = c.get(site.tables("terms.csv", 1))
    assert all(r.status_code == 404 for r in [*refused, *absent, past_the_end])
    assert {r.content for r in refused} == {r.content for r in absent}  # one answer: nothing to tell apart
    assert "has 1 tables" in past_the_end.text


def test_each_read_is_audited_without_the_tables_text(site: Site) -> None:
    document_id, version_id = site.versions["aapl.pdf"]
    with site.client(AUDITOR, sub="auditor") as admin:
        before = audit_records(admin)[-1]["seq"]
        with site.client(ANALYST) as c:
            assert c.get(site.tables("aapl.pdf")).status_code == 200
        with site.client(OUTSIDER, sub="bo") as c:
            assert c.get(site.tables("aapl.pdf", 0)).status_code == 404
        records = [r for r in audit_records(admin, before) if r["action"] == "documents.tables"]
    assert [(r["principal"], r["outcome"], r["target"]) for r in records] == [
        ("ana", "ok", f"{document_id}/{version_id}"),
        ("bo", "not_found", f"{document_id}/{version_id}"),
    ]
    assert "81,797" not in str(records) and "Total net sales" not in str(records)
