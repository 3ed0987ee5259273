"""Attacks on the worker by someone who can write to the bus but does not hold the
deployment's bus key: forged, tampered and mistyped jobs are dead-lettered untouched."""

from __future__ import annotations

import json
from pathlib import Path

from strongroom.bus import open_bus
from strongroom.bus.job import IngestJob
from strongroom.config import Settings
from strongroom.ingest.pipeline import IngestOptions
from strongroom.runtime import open_runtime
from strongroom.service.records import bus_key
from strongroom.service.worker import run_worker
from strongroom.testing import HashEmbedder
from strongroom.testing.bus_contract import WRITER, job_for
from strongroom.types import Principal


def _work(tmp_path: Path, *raw: str) -> tuple[dict[str, int], list[str], list[str]]:
    """Publish ``raw`` messages, run a worker until idle; its counts, the stored file names
    and the dead letters' errors."""
    queue = open_bus(f"sqlite://{tmp_path}/bus.sqlite3", stream="jobs")
    for text in raw:
        queue.publish_raw(text)  # type: ignore[attr-defined]
    runtime = open_runtime(Settings(home=tmp_path / "home", embedder="hash"), HashEmbedder(64))
    try:
        counts = run_worker(queue, runtime, "w1", block_s=0.2, until_idle=True)
        names = sorted(v.name for v in runtime.store.versions())
    finally:
        runtime.close()
    errors = [d.error for d in queue.backlog().dead_letters]
    queue.close()
    return counts, names, errors


def test_a_forged_job_cannot_delete_a_folder_or_write_as_someone(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "catalog.sqlite3").write_text("precious")
    forged = {"id": "x", "path": str(victim / "catalog.sqlite3"), "acl": ["public"], "delete_after": True,
              "principal": "alice", "groups": ["research"]}  # fmt: skip
    counts, names, errors = _work(tmp_path, json.dumps(forged))
    assert (victim / "catalog.sqlite3").read_text() == "precious"
    assert counts == {"done": 0, "retry": 0, "dead": 1} and names == []
    assert "not sealed with this deployment's bus key" in errors[0]


def test_a_sealed_job_changed_on_the_bus_is_refused(tmp_path: Path) -> None:
    (tmp_path / "memo.txt").write_text("Treasury memo: coupon 4.25%.")
    sealed = json.loads(job_for(tmp_path / "memo.txt", tmp_path / "home").to_json())
    tampered = json.dumps({**sealed, "principal": "alice", "groups": ["research", "admins"]})
    counts, names, errors = _work(tmp_path, tampered, json.dumps(sealed))
    assert names == ["memo.txt"] and counts == {"done": 1, "retry": 0, "dead": 1}
    assert "not sealed" in errors[0]


def test_a_job_sealed_with_another_key_is_refused(tmp_path: Path) -> None:
    (tmp_path / "memo.txt").write_text("Treasury memo.")
    other = job_for(tmp_path / "memo.txt", tmp_path / "elsewhere")
    counts, names, _ = _work(tmp_path, other.to_json())
    assert names == [] and counts["dead"] == 1


def test_a_mistyped_job_is_poison_not_a_worker_crash(tmp_path: Path) -> None:
    good = json.loads(job_for(tmp_path / "x.txt").to_json())
    bad = [
        {**good, "published": 12345},
        {**good, "published": "not a date"},
        {**good, "doc_type": {}},
        {**good, "source": ["a"]},
        {**good, "roots": ["a\x00b"]},
        {**good, "acl": "research"},  # a string, not a list: not the letters r, e, s, ...
        {**good, "acl": []},
        {**good, "delete_after": "yes"},
        {**good, "meta": {"k": 1}},
        [1, 2],
    ]
    counts, names, errors = _work(tmp_path, *(json.dumps(b) for b in bad))
    assert counts == {"done": 0, "retry": 0, "dead": len(bad)} and names == []
    assert all("not an ingestion job" in e for e in errors)


def test_a_sealed_upload_removes_only_its_own_folder(tmp_path: Path) -> None:
    """delete_after removes the folder the service made for the upload (named by its job
    id), never the folder of a file elsewhere, even in a sealed job."""
    outside = tmp_path / "shared"
    outside.mkdir()
    (outside / "memo.txt").write_text("Treasury memo.")
    key = bus_key(Settings(home=tmp_path / "home"))
    job = IngestJob.for_file(outside / "memo.txt", IngestOptions(), [outside], delete_after=True, principal=WRITER)
    upload = tmp_path / "uploads" / "job1"
    upload.mkdir(parents=True)
    (upload / "note.txt").write_text("An upload.")
    mine = IngestJob.for_file(upload / "note.txt", IngestOptions(), [upload], id="job1", delete_after=True,
                              principal=WRITER)  # fmt: skip
    counts, names, _ = _work(tmp_path, job.sealed(key).to_json(), mine.sealed(key).to_json())
    assert names == ["memo.txt", "note.txt"] and counts["done"] == 2
    assert (outside / "memo.txt").exists() and not upload.exists()


def test_a_job_longer_than_the_hold_stays_with_its_worker(tmp_path: Path) -> None:
    """While a worker ingests (here: sleeps through three reclaim times), its heartbeat keeps
    the job from the other workers; no second worker starts it, none dead-letters it."""
    from strongroom.bus import Outcome
    from strongroom.service.worker import _holding

    url = f"sqlite://{tmp_path}/bus.sqlite3"
    mine, other = open_bus(url, reclaim_idle_s=0.3), open_bus(url, reclaim_idle_s=0.3)
    mine.publish(job_for(tmp_path / "long.pdf", tmp_path / "home"))
    held = mine.receive("w1", block_s=1.0)
    assert held is not None
    with _holding(mine, held):
        seen = [other.receive("w2", block_s=0.1) for _ in range(9)]  # ~0.9 s of asking
    assert seen == [None] * 9
    mine.settle(held, Outcome.done())
    assert other.receive("w2", block_s=0.6) is None and other.backlog().outstanding == 0
    mine.close()
    other.close()


def test_a_version_stored_by_a_worker_that_died_before_auditing_is_audited_on_redelivery(tmp_path: Path) -> None:
    """Killed between the store's write and the audit append: the next attempt finds the
    version stored and records it (ingest.recovered), so no version is without its record."""
    from strongroom.audit import open_audit_log
    from strongroom.service.operations import Operations
    from strongroom.service.records import QueryRedactor
    from strongroom.service.requests import IngestRequest
    from strongroom.service.worker import handle

    (tmp_path / "memo.txt").write_text("Treasury memo: coupon 4.25%.")
    settings = Settings(home=tmp_path / "home", embedder="hash")
    url = f"sqlite://{tmp_path}/bus.sqlite3"
    queue = open_bus(url, reclaim_idle_s=0.3)
    job = job_for(tmp_path / "memo.txt", settings.home)
    queue.publish(job)
    assert queue.receive("dead-worker", block_s=1.0) is not None  # taken, never settled
    runtime = open_runtime(settings, HashEmbedder(64))
    audit = open_audit_log(settings)
    try:
        ops = Operations(settings, runtime.store, runtime.embedder, QueryRedactor.for_settings(settings))
        writer = Principal(WRITER.name, WRITER.groups, frozenset({"reader", "ingester"}), "bus")  # as the worker
        stored = ops.ingest(writer, IngestRequest(paths=(tmp_path / "memo.txt",), roots=(tmp_path,)), job_id=job.id)
        (version,) = [f.version_id for f in stored.result().files]  # what the dead worker wrote, unaudited
        again = None
        while again is None:
            again = queue.receive("w2", block_s=1.0)
        assert again.attempt == 2 and handle(queue, runtime, again, audit) == "done"
        recovered = [r.event() for r in audit.read() if r.event()["action"] == "ingest.recovered"]
    finally:
        runtime.close()
        audit.close()
        queue.close()
    assert len(recovered) == 1 and version in str(recovered[0]["chunks"])


def test_bad_bus_urls_and_holds_are_clear_errors(tmp_path: Path) -> None:
    import math

    import pytest

    from strongroom.errors import ConfigError

    for url, options in [
        ("sqlite://var/bus.sqlite3", {}),  # relative: each process would open its own
        ("redis://u:p[w@host:6379/0", {}),
        ("redis://localhost:99999/0", {}),
        (f"sqlite://{tmp_path}/bus.sqlite3", {"reclaim_idle_s": math.nan}),
        (f"sqlite://{tmp_path}/bus.sqlite3", {"reclaim_idle_s": math.inf}),
        (f"sqlite://{tmp_path}/bus.sqlite3", {"reclaim_idle_s": 0}),
    ]:
        with pytest.raises(ConfigError) as refused:
            open_bus(url, **options)
        assert "p[w" not in str(refused.value)  # never the password


def test_a_tampered_bus_file_is_a_clear_error(tmp_path: Path) -> None:
    import sqlite3

    import pytest

    from strongroom.errors import BusUnavailable

    url = f"sqlite://{tmp_path}/bus.sqlite3"
    queue = open_bus(url)
    queue.publish(job_for(tmp_path / "a.txt"))
    with sqlite3.connect(tmp_path / "bus.sqlite3") as db:
        db.execute("UPDATE messages SET attempts = 'abc'")
    with pytest.raises(BusUnavailable, match="malformed"):
        queue.receive("w1", block_s=0.1)
    queue.close()
