"""Upload, jobs and deletion over real HTTP."""

from __future__ import annotations

import sqlite3
from typing import Any

from tests.api.conftest import Env, audit_records

REPORT = (
    b"Quasar holdings annual review\n\n"
    b"Quasar revenue reached 77 million dollars. Quasar net sales grew in every region.\n"
)


def _upload(env: Env, groups: list[str], name: str, data: bytes, acl: str, **form: str) -> dict[str, Any]:
    with env.client(groups, sub="uploader") as c:
        r = c.post("/v1/documents", files={"file": (name, data)}, data={"acl": acl, "wait": "true", **form})
    assert r.status_code == 202, r.text
    job: dict[str, Any] = r.json()
    return job


def test_upload_ingests_and_the_job_reports_per_file(env: Env) -> None:
    job = _upload(
        env, ["ingesters", "research"], "quasar.txt", REPORT, "research", source="uploads/q1", meta='{"ticker": "QSR"}'
    )
    assert job["status"] == "done", job["files"][0]["error"]
    (file,) = job["files"]
    assert file["status"] == "ingested" and file["chunks"] >= 1 and file["name"] == "quasar.txt"
    with env.client(["readers", "research"]) as c:
        hits = c.post("/v1/search", json={"query": "quasar revenue", "filters": {"ticker": "QSR"}}).json()["hits"]
        assert hits and hits[0]["source"] == "uploads/q1/quasar.txt"
    with env.client(["readers", "public"]) as c:  # not entitled: nothing, not even the job
        assert "quasar" not in c.post("/v1/search", json={"query": "quasar revenue"}).text.lower()
    with env.client(["ingesters", "public"], sub="someone-else") as c:
        assert c.get(f"/v1/jobs/{job['job_id']}").status_code == 404
    with env.client(["ingesters"], sub="uploader") as c:  # the submitter sees its own job
        assert c.get(f"/v1/jobs/{job['job_id']}").json()["status"] == "done"


def test_a_bad_file_fails_the_job_with_a_reason_and_no_temporary_path(env: Env) -> None:
    job = _upload(env, ["ingesters", "public"], "notes.xyz", b"whatever", "public")
    assert job["status"] == "failed"
    (file,) = job["files"]
    assert file["status"] == "failed" and "unsupported file type" in file["error"]
    assert "/tmp" not in str(job) and "strongroom-uploads" not in str(job)


def test_background_upload_returns_a_running_or_finished_job(env: Env) -> None:
    with env.client(["ingesters", "public"], sub="bg") as c:
        r = c.post(
            "/v1/documents", files={"file": ("bg.txt", b"Background nimbus revenue rose.\n")}, data={"acl": "public"}
        )
        assert r.status_code == 202 and r.json()["status"] in {"running", "done"}
        job_id = r.json()["job_id"]
        for _ in range(200):
            if c.get(f"/v1/jobs/{job_id}").json()["status"] != "running":
                break
        assert c.get(f"/v1/jobs/{job_id}").json()["status"] == "done"


def test_delete_removes_chunks_pages_and_vectors_and_is_audited(env: Env) -> None:
    job = _upload(
        env, ["ingesters", "legal"], "vortex.txt", b"Vortex settlement revenue was 9 million dollars.\n", "legal"
    )
    doc_id = job["files"][0]["document_id"]
    version_id = job["files"][0]["version_id"]
    with env.client(["readers", "legal"]) as c:
        assert "vortex" in c.post("/v1/search", json={"query": "vortex settlement"}).text.lower()
    with env.client(["admins", "public"], sub="admin-outsider") as c:  # admin, but not entitled: as if absent
        assert c.delete(f"/v1/documents/{doc_id}").status_code == 404
    with env.client(["admins", "legal"], sub="admin") as c:
        r = c.delete(f"/v1/documents/{doc_id}")
        assert r.status_code == 200 and r.json()["deleted_versions"] == [version_id]
        assert c.delete(f"/v1/documents/{doc_id}").status_code == 404
        assert c.get(f"/v1/documents/{doc_id}").status_code == 404
        assert "vortex" not in c.post("/v1/search", json={"query": "vortex settlement"}).text.lower()
        records = audit_records(c)
    assert any(x["action"] == "documents.delete" and x["target"] == doc_id and x["outcome"] == "ok" for x in records)
    with sqlite3.connect(env.settings.catalog_path) as db:
        assert db.execute("SELECT COUNT(*) FROM pages WHERE version_id = ?", (version_id,)).fetchone()[0] == 0
        assert db.execute("SELECT deleted FROM versions WHERE id = ?", (version_id,)).fetchone()[0] == 1
        texts = [r[0] for r in db.execute("SELECT text FROM chunks")]
    assert not any("Vortex" in t for t in texts)
