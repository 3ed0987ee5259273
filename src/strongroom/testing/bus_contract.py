"""The Bus contract: every backend's test subclasses :class:`BusContract`.

A backend test supplies one fixture, ``bus``: a factory that opens the backend on a
stream. The same name in one test is the same stream (two buses on it are two consumers
of one group); each test's names are its own. A bus it opens holds its jobs for a short
reclaim time (a second or so, or the backend's least), and it also takes a message as it
is (``publish_raw``), so the tests can send what is not a job::

    class TestSqliteBus(HeldJobsContract):
        @pytest.fixture
        def bus(self, tmp_path):
            def make(stream="jobs", *, max_attempts=3):
                return SqliteBus(f"sqlite://{tmp_path}/bus.sqlite3", stream=stream,
                                 reclaim_idle_s=0.5, max_attempts=max_attempts)
            return make

A bus that holds a job for its consumer for a time and counts every delivery (SQLite,
Redis) runs :class:`HeldJobsContract` as well; Kafka, which hands a partition on when its
consumer leaves the group and does not count the deliveries of a consumer that died, runs
the rest and sets ``counts_crashed_deliveries = False``. The factory closes what it opened
at teardown.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import ClassVar, Protocol

from strongroom.bus.base import Backlog, Bus, DeadLetter, Delivery, Outcome
from strongroom.bus.job import IngestJob
from strongroom.config import Settings
from strongroom.embed.hashing import HashEmbedder
from strongroom.ingest.pipeline import IngestOptions
from strongroom.runtime import open_runtime
from strongroom.service.records import bus_key
from strongroom.service.worker import handle, run_worker
from strongroom.types import Principal

__all__ = ["WRITER", "BusContract", "BusFactory", "HeldJobsContract", "RawBus", "job_for", "next_delivery"]

#: who queued the jobs: the worker writes with this principal's write entitlements
WRITER = Principal("etl", frozenset({"public"}))


class RawBus(Bus, Protocol):
    """A bus that also queues a message as it is: the tests' way to send poison."""

    def publish_raw(self, text: str) -> str: ...


class BusFactory(Protocol):
    def __call__(self, stream: str = "jobs", *, max_attempts: int = 3) -> RawBus: ...


def job_for(path: Path, home: Path | None = None) -> IngestJob:
    """A job for one file, queued by :data:`WRITER`; sealed with the bus key of ``home``
    (where the worker that is to act on it runs), as ``strongroom ingest --bus`` seals it."""
    job = IngestJob.for_file(path, IngestOptions(), [path.parent], principal=WRITER)
    return job if home is None else job.sealed(bus_key(Settings(home=home)))


def next_delivery(bus: Bus, consumer: str, within_s: float = 60.0) -> Delivery:
    """The next delivery, waiting up to ``within_s`` (a consumer may first have to join its
    group, or a hold to end); an AssertionError if none comes."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if (delivery := bus.receive(consumer, block_s=1.0)) is not None:
            return delivery
    raise AssertionError(f"no delivery for {consumer} within {within_s:.0f} s")


class BusContract:
    """Behaviour every Bus must have. Tests use the protocol, and ``publish_raw`` for poison."""

    counts_crashed_deliveries: ClassVar[bool] = True

    def test_a_published_job_is_delivered_whole_and_settled_once(self, bus: BusFactory, tmp_path: Path) -> None:
        queue = bus()
        sent = job_for(tmp_path / "a.txt")
        message_id = queue.publish(sent)
        got = next_delivery(queue, "worker-a")
        assert (got.message_id, got.job, got.attempt, got.last_error) == (message_id, sent, 1, None)
        assert IngestJob.from_json(got.raw) == sent
        queue.settle(got, Outcome.done())
        assert queue.backlog().outstanding == 0
        assert queue.receive("worker-a", block_s=1.0) is None
        assert queue.backlog().dead_letters == ()

    def test_outstanding_counts_waiting_and_held_jobs(self, bus: BusFactory, tmp_path: Path) -> None:
        queue = bus()
        sent = [job_for(tmp_path / f"{name}.txt") for name in ("a", "b")]
        for job in sent:
            queue.publish(job)
        assert queue.backlog().outstanding == 2
        first = next_delivery(queue, "worker-a")
        assert queue.backlog().outstanding == 2  # held is not settled
        queue.settle(first, Outcome.done())
        assert queue.backlog().outstanding == 1
        second = next_delivery(queue, "worker-a")
        assert sorted(d.raw for d in (first, second)) == sorted(j.to_json() for j in sent)
        queue.settle(second, Outcome.done())
        assert queue.backlog() == Backlog(0)

    def test_a_retried_job_comes_back_with_its_attempt_and_last_error(self, bus: BusFactory, tmp_path: Path) -> None:
        queue = bus()
        sent = job_for(tmp_path / "a.txt")
        queue.publish(sent)
        got = next_delivery(queue, "worker-a")
        for attempt in (2, 3):
            queue.settle(got, Outcome.retry(f"disk full ({attempt - 1})"))
            backlog = queue.backlog()
            assert backlog.outstanding == 1 and list(backlog.last_errors.values()) == [f"disk full ({attempt - 1})"]
            got = next_delivery(queue, "worker-b")
            assert (got.job, got.attempt, got.last_error) == (sent, attempt, f"disk full ({attempt - 1})")
            assert backlog.last_errors.get(got.message_id) == got.last_error  # keyed as it is delivered
        queue.settle(got, Outcome.done())
        assert queue.backlog().outstanding == 0 and dict(queue.backlog().last_errors) == {}

    def test_a_dead_letter_keeps_the_message_its_attempts_and_error(self, bus: BusFactory, tmp_path: Path) -> None:
        queue = bus()
        sent = job_for(tmp_path / "broken.pdf")
        queue.publish(sent)
        first = next_delivery(queue, "worker-a")
        queue.settle(first, Outcome.retry("not a PDF"))
        second = next_delivery(queue, "worker-a")
        queue.settle(second, Outcome.dead("not a PDF, still"))
        (letter,) = queue.backlog().dead_letters
        assert letter == DeadLetter(second.message_id, sent.to_json(), 2, "not a PDF, still")
        assert letter.job == sent
        assert queue.backlog().outstanding == 0 and dict(queue.backlog().last_errors) == {}
        assert queue.receive("worker-a", block_s=1.0) is None

    def test_poison_is_delivered_as_no_job_and_dead_lettered_as_it_came(self, bus: BusFactory) -> None:
        queue = bus()
        queue.publish_raw("{not json")
        got = next_delivery(queue, "worker-a")
        assert (got.job, got.raw, got.attempt) == (None, "{not json", 1)
        queue.settle(got, Outcome.dead("not an ingestion job"))
        (letter,) = queue.backlog().dead_letters
        assert (letter.raw, letter.job, letter.attempts, letter.error) == ("{not json", None, 1, "not an ingestion job")

    def test_a_job_whose_consumer_died_goes_to_another(self, bus: BusFactory, tmp_path: Path) -> None:
        doomed, survivor = bus(), bus()
        sent = job_for(tmp_path / "a.txt")
        doomed.publish(sent)
        held = next_delivery(doomed, "worker-a")
        doomed.close()  # dies without settling
        again = next_delivery(survivor, "worker-b")
        assert again.job == sent and again.raw == held.raw
        assert again.attempt == (2 if self.counts_crashed_deliveries else 1)
        survivor.settle(again, Outcome.done())
        assert survivor.backlog().outstanding == 0
        assert survivor.receive("worker-b", block_s=1.0) is None

    def test_streams_are_isolated(self, bus: BusFactory, tmp_path: Path) -> None:
        one, two = bus("one"), bus("two")
        sent = job_for(tmp_path / "a.txt")
        one.publish(sent)
        one.publish_raw("poison")
        assert (one.backlog().outstanding, two.backlog().outstanding) == (2, 0)
        assert two.receive("worker-b", block_s=1.0) is None
        for _ in range(2):
            got = next_delivery(one, "worker-a")
            one.settle(got, Outcome.done() if got.job else Outcome.dead("poison"))
        assert len(one.backlog().dead_letters) == 1 and two.backlog().dead_letters == ()
        assert two.backlog().outstanding == 0

    def test_worker_stores_good_files_once_and_dead_letters_poison(self, bus: BusFactory, tmp_path: Path) -> None:
        docs = tmp_path / "docs"
        docs.mkdir()
        for i in range(3):
            (docs / f"note{i}.txt").write_text(f"Desk note {i}. The coupon of bond {i} is {4 + i}.25%.")
        (docs / "broken.pdf").write_bytes(b"%PDF-1.7\nthis is not really a pdf")
        queue = bus(max_attempts=3)
        home = tmp_path / "home"
        for path in sorted(docs.iterdir()):
            queue.publish(job_for(path, home))
        queue.publish(job_for(docs / "note0.txt", home))  # the same file queued twice stores once
        queue.publish_raw("{not json")  # a malformed message is poison too
        runtime = open_runtime(Settings(home=home, embedder="hash"), HashEmbedder(64))
        try:
            counts = run_worker(queue, runtime, "w1", block_s=1.0, until_idle=True)
            versions = runtime.store.versions()
        finally:
            runtime.close()
        assert sorted(v.name for v in versions) == ["note0.txt", "note1.txt", "note2.txt"]
        assert counts == {"done": 4, "retry": 2, "dead": 2}
        dead = {("broken.pdf" in d.raw): d for d in queue.backlog().dead_letters}
        assert "PDF" in dead[True].error and dead[True].attempts == 3
        assert "not an ingestion job" in dead[False].error and dead[False].attempts == 1
        assert queue.backlog().outstanding == 0


class HeldJobsContract(BusContract):
    """A bus that holds a delivered job for its consumer for ``reclaim_idle_s`` (renewed by
    ``Outcome.hold``) and counts every delivery, including one whose consumer died (the SQLite
    and Redis buses; Kafka instead moves a partition when its consumer leaves the group)."""

    def test_a_held_job_is_not_given_to_another_while_its_holder_says_so(self, bus: BusFactory, tmp_path: Path) -> None:
        """A long job: its holder renews the hold (``Outcome.hold``) past the reclaim time
        several times over, and no other consumer gets it meanwhile, nor is an attempt counted."""
        holder, other = bus(), bus()
        holder.publish(job_for(tmp_path / "long.pdf"))
        held = next_delivery(holder, "worker-a")
        deadline = time.monotonic() + 4 * holder.reclaim_idle_s
        while time.monotonic() < deadline:
            holder.settle(held, Outcome.hold())
            assert other.receive("worker-b", block_s=holder.reclaim_idle_s / 3) is None
        holder.settle(held, Outcome.done())
        assert other.receive("worker-b", block_s=2 * holder.reclaim_idle_s) is None
        assert other.backlog().outstanding == 0

    def test_a_job_that_outlives_its_attempts_is_given_up_with_its_last_error(
        self, bus: BusFactory, tmp_path: Path
    ) -> None:
        """Its first attempt failed, its second consumer died: the third delivery is past
        ``max_attempts`` and the worker dead-letters it with the error it last had."""
        (tmp_path / "memo.txt").write_text("Treasury memo.")
        first = bus(max_attempts=2)
        first.publish(job_for(tmp_path / "memo.txt", tmp_path / "home"))
        first.settle(next_delivery(first, "worker-a"), Outcome.retry("store unavailable"))
        next_delivery(first, "worker-b")
        first.close()  # worker-b died holding it
        last = bus(max_attempts=2)
        runtime = open_runtime(Settings(home=tmp_path / "home", embedder="hash"), HashEmbedder(64))
        try:
            delivery = next_delivery(last, "worker-c")
            assert delivery.attempt == 3
            assert handle(last, runtime, delivery) == "dead"
            assert runtime.store.versions() == []
        finally:
            runtime.close()
        (letter,) = last.backlog().dead_letters
        assert letter.error == "gave up after 2 deliveries: store unavailable" and letter.attempts == 3
        assert last.backlog().outstanding == 0
