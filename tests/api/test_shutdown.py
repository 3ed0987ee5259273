"""Stopping the real server (``strongroom serve`` in its own process) during an upload.

SIGTERM: the server stops within its grace period, the running job is marked interrupted and
its upload removed. SIGKILL: the next start marks the job interrupted and removes the orphan.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest

from tests.api.live import serve_process

pytestmark = pytest.mark.integration

GRACE_S = 5


def _serve(home: Path) -> AbstractContextManager[tuple[subprocess.Popen[bytes], str]]:
    """``strongroom serve --dev`` on a free port in its own process, until the block ends."""
    env = {**os.environ, "STRONGROOM_EMBEDDER": "hash", "STRONGROOM_SHUTDOWN_GRACE_S": str(GRACE_S)}
    return serve_process(home, env, "--dev")


def _big_upload() -> bytes:
    """A plain-text report large enough that ingesting it takes a while (many pages, many chunks)."""
    paragraph = "Quarterly revenue of segment {i} rose to {i},000 thousand dollars on higher unit volume.\n"
    page = "".join(paragraph.format(i=i) for i in range(400))
    return "\f".join(page for _ in range(120)).encode()


def _start_upload(url: str) -> str:
    r = httpx.post(f"{url}/v1/documents", files={"file": ("big-report.txt", _big_upload())}, timeout=60)
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] == "running", job
    time.sleep(1.0)  # it is parsing, redacting or embedding now
    still = httpx.get(f"{url}/v1/jobs/{job['job_id']}", timeout=10).json()
    assert still["status"] == "running", "the upload finished before the stop; make it bigger"
    return str(job["job_id"])


def _job_status(home: Path, job_id: str) -> str:
    with sqlite3.connect(home / "catalog.sqlite3") as db:
        (status,) = db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return str(status)


def test_sigterm_during_an_upload_stops_within_the_grace_period(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with _serve(home) as (process, url):
        job_id = _start_upload(url)
        stopped_at = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        took = time.monotonic() - stopped_at
    assert took < GRACE_S + 10, f"took {took:.1f} s to stop"
    assert _job_status(home, job_id) == "interrupted"
    assert list((home / "uploads").iterdir()) == []  # the upload's copy is gone
    with _serve(home) as (_, url):  # and the next start finds nothing to clean up, and serves
        job = httpx.get(f"{url}/v1/jobs/{job_id}", timeout=10).json()
        assert job["status"] == "interrupted" and "upload it again" in job["files"][0]["error"]


def test_a_killed_server_leaves_nothing_running_after_a_restart(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with _serve(home) as (process, url):
        job_id = _start_upload(url)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert _job_status(home, job_id) == "running"  # what a kill -9 leaves
    assert [p.name for p in (home / "uploads").iterdir()] == [job_id]
    stray = home / "uploads" / ("f" * 32)
    stray.mkdir()  # an upload whose job was never even recorded
    with _serve(home) as (_, url):
        job = httpx.get(f"{url}/v1/jobs/{job_id}", timeout=10).json()
        assert job["status"] == "interrupted"
        assert list((home / "uploads").iterdir()) == []
