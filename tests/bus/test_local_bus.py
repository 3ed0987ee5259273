"""The SQLite-file bus: the contract, the holds and the worker processes that share one file.

Nothing to start: these run everywhere.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from strongroom.bus import Outcome, open_bus
from strongroom.bus.local import SqliteBus
from strongroom.errors import BusUnavailable, ConfigError
from strongroom.testing.bus_contract import BusFactory, HeldJobsContract, job_for, next_delivery
from tests.test_cli import run

SEC10Q = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "sec10q" / "docs"


class TestSqliteBus(HeldJobsContract):
    @pytest.fixture
    def bus(self, tmp_path: Path) -> Iterator[BusFactory]:
        opened: list[SqliteBus] = []

        def make(stream: str = "jobs", *, max_attempts: int = 3) -> SqliteBus:
            opened.append(
                SqliteBus(
                    f"sqlite://{tmp_path}/bus.sqlite3", stream=stream, reclaim_idle_s=0.5, max_attempts=max_attempts
                )
            )
            return opened[-1]

        yield make
        for queue in opened:
            queue.close()


def test_open_bus_reads_a_sqlite_url(tmp_path: Path) -> None:
    queue = open_bus(f"sqlite://{tmp_path}/new/folder/bus.sqlite3", stream="s", max_attempts=5)
    try:
        assert isinstance(queue, SqliteBus)
        assert queue.path == tmp_path / "new" / "folder" / "bus.sqlite3" and queue.path.is_file()
        assert queue.max_attempts == 5
    finally:
        queue.close()
    with pytest.raises(ConfigError, match=re.escape("sqlite:///path/to/bus.sqlite3")):
        open_bus("amqp://b1:5672")
    with pytest.raises(ConfigError, match="not a SQLite bus URL"):
        open_bus("sqlite://")
    with pytest.raises(ConfigError, match="max_attempts"):
        open_bus(f"sqlite://{tmp_path}/bus.sqlite3", max_attempts=0)


def test_an_unusable_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(BusUnavailable, match=r"cannot use the SQLite bus at .*a-file/bus\.sqlite3"):
        SqliteBus(f"sqlite://{tmp_path}/a-file/bus.sqlite3")
    (tmp_path / "garbage.sqlite3").write_bytes(b"this is not a database, it is only text" * 200)
    with pytest.raises(BusUnavailable, match="cannot use the SQLite bus"):
        SqliteBus(f"sqlite://{tmp_path}/garbage.sqlite3")


def test_a_held_job_waits_for_its_hold_to_end(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/bus.sqlite3"
    holder, other = SqliteBus(url, reclaim_idle_s=600), SqliteBus(url, reclaim_idle_s=600)
    try:
        message_id = holder.publish(job_for(tmp_path / "a.txt"))
        got = next_delivery(holder, "worker-a")
        assert [(h["message_id"], h["consumer"], h["attempts"]) for h in other.held()] == [(message_id, "worker-a", 1)]
        assert other.receive("worker-b", block_s=0.3) is None  # held for ten minutes
        assert other.backlog().outstanding == 1
        holder.settle(got, Outcome.done())
        assert other.held() == [] and other.backlog().outstanding == 0
    finally:
        holder.close()
        other.close()


def test_a_consumer_whose_hold_ended_cannot_retry_or_bury_the_job_another_took(tmp_path: Path) -> None:
    """The newer holder decides; a late ``done`` still counts (the version is stored)."""
    url = f"sqlite://{tmp_path}/bus.sqlite3"
    slow, fast = SqliteBus(url, reclaim_idle_s=0.2), SqliteBus(url, reclaim_idle_s=600)
    try:
        slow.publish(job_for(tmp_path / "a.txt"))
        stale = next_delivery(slow, "slow")
        taken = next_delivery(fast, "fast")  # after slow's hold of 0.2 s
        assert taken.attempt == 2
        slow.settle(stale, Outcome.retry("timed out"))
        slow.settle(stale, Outcome.dead("gave up"))
        assert fast.backlog().dead_letters == () and dict(fast.backlog().last_errors) == {}
        assert [h["consumer"] for h in fast.held()] == ["fast"]
        slow.settle(stale, Outcome.done())
        assert fast.backlog().outstanding == 0
        fast.settle(taken, Outcome.done())  # settling what is gone is no error
    finally:
        slow.close()
        fast.close()


_CONSUME = """
import sys
from strongroom.bus import Outcome
from strongroom.bus.local import SqliteBus
bus = SqliteBus(sys.argv[1], reclaim_idle_s=600)
while (got := bus.receive(sys.argv[2], block_s=1.0)) is not None:
    print(got.raw, flush=True)
    bus.settle(got, Outcome.done())
"""


def test_processes_sharing_a_file_never_take_the_same_message(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/bus.sqlite3"
    queue = SqliteBus(url)
    sent = {f"message {i}" for i in range(300)}
    for text in sorted(sent):
        queue.publish_raw(text)
    consumers = [
        subprocess.Popen([sys.executable, "-c", _CONSUME, url, f"c{i}"], stdout=subprocess.PIPE, text=True)
        for i in range(4)
    ]
    taken = [c.communicate(timeout=120)[0].splitlines() for c in consumers]
    assert [c.returncode for c in consumers] == [0, 0, 0, 0]
    everything = [line for lines in taken for line in lines]
    assert len(everything) == len(sent) and set(everything) == sent  # each once, none lost
    assert queue.backlog().outstanding == 0
    queue.close()


def _worker(url: str, home: Path, name: str, *extra: str, embedder: str = "hash") -> subprocess.Popen[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "STRONGROOM_EMBEDDER": embedder}
    if embedder == "model":
        env.pop("STRONGROOM_EMBEDDER")  # the bundled MiniLM: slow enough to be killed mid-document
    cmd = [sys.executable, "-m", "strongroom.cli", "worker", "--bus", url, "--home", str(home), "--consumer", name,
           "--max-attempts", "3", *extra]  # fmt: skip
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_two_worker_processes_on_one_file_store_each_job_once(tmp_path: Path) -> None:
    """Two ``strongroom worker`` processes share the bus file and the store; then
    ``strongroom dead-letters`` lists the job given up on."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(12):
        (docs / f"note{i:02d}.txt").write_text(f"Desk note {i}. The coupon of bond {i} is {4 + i}.25%.")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.7\nthis is not really a pdf")
    url, home = f"sqlite://{tmp_path}/bus.sqlite3", tmp_path / "home"
    queue = SqliteBus(url)
    for path in sorted(docs.iterdir()):
        queue.publish(job_for(path, home))
    queue.publish_raw("{not json")
    workers = [_worker(url, home, f"w{i}", "--until-idle") for i in range(2)]
    logs = [w.communicate(timeout=300)[1] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], logs
    counts = [re.search(r"stopped: (\d+) done, (\d+) to retry, (\d+) dead-lettered", log) for log in logs]
    assert all(counts), logs
    done, retried, dead = (sum(int(m.group(g)) for m in counts if m) for g in (1, 2, 3))
    assert (done, retried, dead) == (12, 2, 2)  # no job was taken twice
    with sqlite3.connect(home / "catalog.sqlite3") as db:
        names = sorted(Path(r[0]).name for r in db.execute("SELECT source FROM versions"))
        statuses = sorted(r[0] for r in db.execute("SELECT status FROM jobs"))
    assert names == [f"note{i:02d}.txt" for i in range(12)]
    assert statuses == ["done"] * 12 + ["failed"]
    assert queue.backlog().outstanding == 0
    queue.close()

    listed = run(home, "dead-letters", "--bus", url, "--json")
    assert listed.returncode == 0, listed.stderr
    letters = json.loads(listed.stdout)["dead_letters"]
    assert sorted(Path(d["file"]).name for d in letters) == ["", "broken.pdf"]
    assert all(d["error"] for d in letters)
    assert sorted(d["attempts"] for d in letters) == [1, 3]
    table = run(home, "dead-letters", "--bus", url)
    assert table.returncode == 0, table.stderr
    assert "broken.pdf" in table.stdout and "(not a job)" in table.stdout
    empty = run(home, "dead-letters", "--bus", url, "--stream", "elsewhere")
    assert empty.returncode == 0 and "no dead letters" in empty.stdout


def _wait(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.mark.skipif(not SEC10Q.is_dir(), reason=f"the sec10q corpus is not at {SEC10Q}")
def test_kill_9_mid_document_another_worker_finishes_it(tmp_path: Path) -> None:
    files = [SEC10Q / "2023 Q1 AAPL.pdf", SEC10Q / "2023 Q2 NVDA.pdf"]
    url, home = f"sqlite://{tmp_path}/bus.sqlite3", tmp_path / "home"
    queue = SqliteBus(url)
    for f in files:
        queue.publish(job_for(f, home))
    doomed = _worker(url, home, "doomed", "--reclaim-idle-s", "2", embedder="model")
    try:
        _wait(lambda: any(h["consumer"] == "doomed" for h in queue.held()), 120, "the first worker to take a job")
        time.sleep(1.0)  # it is parsing or embedding now
        held = [h["message_id"] for h in queue.held() if h["consumer"] == "doomed"]
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
    survivor = _worker(url, home, "survivor", "--reclaim-idle-s", "2", embedder="model")
    try:
        _wait(lambda: queue.backlog().outstanding == 0, 240, "all jobs settled")
    finally:
        survivor.send_signal(signal.SIGTERM)
        _, stderr = survivor.communicate(timeout=60)
    assert survivor.returncode == 0, stderr[-2000:]
    with sqlite3.connect(home / "catalog.sqlite3") as db:
        names = sorted(r[0] for r in db.execute("SELECT source FROM versions"))
        duplicated = db.execute("SELECT COUNT(*) - COUNT(DISTINCT id) FROM chunks").fetchone()[0]
        statuses = [r[0] for r in db.execute("SELECT status FROM jobs")]
    assert [Path(n).name for n in names] == ["2023 Q1 AAPL.pdf", "2023 Q2 NVDA.pdf"]  # each exactly once
    assert duplicated == 0 and statuses.count("done") == 2
    assert len(stored_at_kill) < 2  # the kill really landed before both were stored
    assert queue.backlog().dead_letters == ()
    queue.close()
