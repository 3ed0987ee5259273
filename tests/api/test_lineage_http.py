"""``GET /v1/lineage/{record_id}`` over real HTTP: the ``audit_seq`` of an answer leads to its
version, pages, ingestion job and parser, generator and prompt version; another user's record,
a future record and a nonexistent one are the same 404 (nothing tells a stranger it exists); a
malformed id is a 4xx JSON error; the read is audited; after the document is deleted the
lineage still names its hashes."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from strongroom.config import Settings
from tests.api.conftest import audit_records
from tests.api.served import Served, served
from tests.auth.oidc_provider import Provider

ROLES = {"reader": ["readers"], "ingester": ["ingesters"], "admin": ["admins"], "auditor": ["auditors"]}
QUESTION = "How many cuts does the rates desk expect?"


@dataclass
class World(Served):
    note: Path

    def login(self, sub: str, *groups: str) -> httpx.Client:
        return self.client(sub=sub, groups=groups)


@pytest.fixture
def world(tmp_path: Path, provider: Provider) -> Iterator[World]:
    note = tmp_path / "desk.txt"
    note.write_text("Rates desk note\n\nThe rates desk expects two cuts this year.\n")
    settings = Settings(home=tmp_path / "home", embedder="hash")
    with served(settings, provider, ROLES) as url:
        yield World(url, provider, note)


def test_lineage_over_http(world: World) -> None:
    with world.login("ana", "readers", "ingesters", "research") as ana:
        with world.note.open("rb") as fh:
            up = ana.post("/v1/documents", files={"file": ("desk.txt", fh)}, data={"acl": "research", "wait": "true"})
        assert up.status_code == 202 and up.json()["status"] == "done", up.text
        job_id = up.json()["job_id"]
        asked = ana.post("/v1/ask", json={"question": QUESTION})
        assert asked.status_code == 200, asked.text
        seq = asked.json()["audit_seq"]
        got = ana.get(f"/v1/lineage/{seq}")
        assert got.status_code == 200, got.text
        lineage = got.json()
    (version,) = lineage["versions"]
    assert version["version_id"] == hashlib.sha256(world.note.read_bytes()).hexdigest()
    assert version["status"] == "live" and version["acl_at_record"] == ["research"]
    assert version["ingestion"]["job_id"] == job_id and version["ingestion"]["parser"].startswith("text.parse_txt")
    assert lineage["chunks"] and all(c["page"] == 1 for c in lineage["chunks"])
    assert lineage["model"]["generator"] == "extractive-v1" == lineage["model"]["prompt_template_version"]

    with world.login("bo", "readers", "research") as bo:
        theirs, future, nothing = (bo.get(f"/v1/lineage/{n}") for n in (seq, seq + 1000, 2**53 - 1))
        assert theirs.status_code == future.status_code == nothing.status_code == 404
        messages = {r.json()["error"]["message"].split(" that ")[-1] for r in (theirs, future, nothing)}
        assert messages == {"you may see"}
        assert "desk" not in theirs.text
        for nonsense in ("abc", "0", "-5", "1%20OR%201=1", "9" * 40):
            bad = bo.get(f"/v1/lineage/{nonsense}")
            assert 400 <= bad.status_code < 500 and bad.status_code != 404, (nonsense, bad.text)
            assert "error" in bad.json()
    with world.login("carl", "auditors") as carl:  # an auditor: no group, no other role
        audited = carl.get(f"/v1/lineage/{seq}")
        assert audited.status_code == 200 and audited.json()["versions"][0]["title"] == version["title"]
        assert carl.get("/v1/documents").status_code == 403  # the role reads lineage, not documents
    with world.login("root", "readers", "admins", "research") as root:
        doc = version["document_id"]
        assert root.delete(f"/v1/documents/{doc}").status_code in (200, 204)
        gone = root.get(f"/v1/lineage/{seq}")
        assert gone.status_code == 200, gone.text
        (deleted,) = gone.json()["versions"]
        assert deleted["status"] == "deleted" and deleted["version_id"] == version["version_id"]
        assert deleted["title"] == "" and deleted["removal"]["action"] == "documents.delete"
        reads = [r for r in audit_records(root) if r["action"] == "lineage.read"]
    assert [(r["principal"], r["outcome"]) for r in reads[:4]] == [
        ("ana", "ok"), ("bo", "not_found"), ("bo", "not_found"), ("bo", "not_found"),
    ]  # fmt: skip
    assert [(r["principal"], r["outcome"]) for r in reads[-2:]] == [("carl", "ok"), ("root", "ok")]
