"""Durable ingestion over Redis Streams, against a real Redis on 127.0.0.1:6379: the Bus
contract, and what is Redis's own (claiming from the pending entries list, a worker
process killed mid-document).

Skipped with a visible reason when no Redis answers locally; CI runs next to one.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from strongroom.bus import IngestJob, Outcome
from strongroom.bus.redis_streams import BusUnavailable, RedisStreamsBus
from strongroom.errors import ConfigError
from strongroom.ingest.pipeline import IngestOptions
from strongroom.testing.bus_contract import WRITER, BusFactory, HeldJobsContract, job_for
from tests.redis_service import REDIS_URL, needs_redis

URL = REDIS_URL
SEC10Q = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "sec10q" / "docs"


pytestmark = [pytest.mark.integration, needs_redis]


def _bus(stream: str, **kw: float) -> RedisStreamsBus:
    return RedisStreamsBus(URL, stream=stream, **kw)  # type: ignore[arg-type]


def _job(path: Path) -> IngestJob:
    return IngestJob.for_file(path, IngestOptions(), [path.parent], principal=WRITER)


class TestRedisStreamsBus(HeldJobsContract):
    @pytest.fixture
    def bus(self) -> Iterator[BusFactory]:
        prefix = f"strongroom:test:{uuid.uuid4().hex[:10]}"
        opened: list[RedisStreamsBus] = []

        def make(stream: str = "jobs", *, max_attempts: int = 3) -> RedisStreamsBus:
            opened.append(_bus(f"{prefix}:{stream}", reclaim_idle_s=0.5, max_attempts=max_attempts))
            return opened[-1]

        yield make
        for queue in opened:
            queue._redis.delete(queue.stream, queue.dead, queue.errors)
            queue.close()


def test_a_job_a_worker_left_unacknowledged_is_reclaimed_by_another(stream: str, tmp_path: Path) -> None:
    bus = _bus(stream, reclaim_idle_s=0.2)
    sent = _job(tmp_path / "a.txt")
    message_id = bus.publish(sent)
    first = bus.receive("worker-a", block_s=1)
    assert first is not None and first.job == sent and first.attempt == 1
    assert bus.receive("worker-b", block_s=0.1) is None  # held by a, not idle long enough yet
    time.sleep(0.3)  # worker-a "died"
    again = bus.receive("worker-b", block_s=0.1)
    assert again is not None and again.message_id == message_id and again.attempt == 2
    bus.settle(again, Outcome.done())
    assert bus.pending() == [] and bus.receive("worker-c", block_s=0.1) is None
    bus.close()


def test_an_unreachable_bus_is_a_clear_error() -> None:
    with pytest.raises(BusUnavailable, match=re.escape("cannot reach the Redis bus at redis://127.0.0.1:1/0")):
        RedisStreamsBus("redis://127.0.0.1:1/0")
    with pytest.raises(ConfigError, match="max_attempts"):
        RedisStreamsBus(URL, max_attempts=0)


def _worker(home: Path, stream: str, name: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("STRONGROOM_EMBEDDER", None)  # the bundled MiniLM: slow enough to be killed mid-document
    cmd = [sys.executable, "-m", "strongroom.cli", "worker", "--bus", URL, "--stream", stream, "--home", str(home),
           "--consumer", name, "--reclaim-idle-s", "2", "--max-attempts", "3"]  # fmt: skip
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.mark.skipif(not SEC10Q.is_dir(), reason=f"the sec10q corpus is not at {SEC10Q}")
def test_kill_9_mid_document_another_worker_finishes_it(stream: str, tmp_path: Path) -> None:
    files = [SEC10Q / "2023 Q1 AAPL.pdf", SEC10Q / "2023 Q2 NVDA.pdf"]
    home = tmp_path / "home"
    bus = _bus(stream, reclaim_idle_s=2)
    for f in files:
        bus.publish(job_for(f, home))
    doomed = _worker(home, stream, "doomed")
    try:
        _wait(lambda: any(p["consumer"] == "doomed" for p in bus.pending()), 120, "the first worker to take a job")
        time.sleep(1.0)  # it is parsing or embedding now
        held = [p["message_id"] for p in bus.pending() if p["consumer"] == "doomed"]
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=10)
    finally:
        if doomed.poll() is None:
            doomed.kill()
        assert doomed.stderr is not None
        doomed.stderr.close()
    assert held, "the first worker had finished before it could be killed"
    with sqlite3.connect(home / "catalog.sqlite3") as db:
        stored_at_kill = [r[0] for r in db.execute("SELECT source FROM versions")]
    survivor = _worker(home, stream, "survivor")
    try:
        _wait(
            lambda: not bus.pending() and bus._redis.xinfo_groups(stream)[0]["lag"] == 0, 240, "all jobs acknowledged"
        )
    finally:
        survivor.send_signal(signal.SIGTERM)
        _, stderr = survivor.communicate(timeout=60)
    assert survivor.returncode == 0, stderr.decode()[-2000:]
    with sqlite3.connect(home / "catalog.sqlite3") as db:
        names = sorted(r[0] for r in db.execute("SELECT source FROM versions"))
        duplicated = db.execute("SELECT COUNT(*) - COUNT(DISTINCT id) FROM chunks").fetchone()[0]
        statuses = [r[0] for r in db.execute("SELECT status FROM jobs")]
    assert [Path(n).name for n in names] == ["2023 Q1 AAPL.pdf", "2023 Q2 NVDA.pdf"]  # each exactly once
    assert duplicated == 0 and statuses.count("done") == 2
    assert len(stored_at_kill) < 2  # the kill really landed before both were stored
    assert bus.backlog().dead_letters == ()
    bus.close()
