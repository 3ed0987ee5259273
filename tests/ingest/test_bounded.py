"""The bounded-child machinery, with test-only jobs: a child that hangs is killed at the
timeout, one that crashes is reported with its signal, and the caller goes on.

The production jobs (parse, render, locate) are tested on real hostile files in
test_hostile.py and test_hostile_pages.py; these jobs (tests/ingest/child_jobs.py) do
what no file can be relied on to do: hang forever, read address 0, exit mid-job.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

from strongroom.ingest.bounded import Bounds, Job, Reply, resume_children, run_bounded, running_children, stop_children
from tests.ingest import child_jobs

BOUNDS = Bounds(timeout_s=30, memory_mb=256)


def _gone(pid: int, within_s: float = 30.0) -> bool:
    """Whether ``pid`` no longer exists, zombie included (a zombie keeps its /proc entry)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists():
            return True
        time.sleep(0.05)
    return False


def _in_thread(job: Job, bounds: Bounds) -> tuple[threading.Thread, list[Reply], int]:
    """Run ``job`` on a thread: the thread, its reply box, the child's pid once it runs."""
    box: list[Reply] = []
    thread = threading.Thread(target=lambda: box.append(run_bounded(job, None, b"data", bounds)))
    thread.start()
    deadline = time.monotonic() + 30
    while not (pids := running_children()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pids, "no child started"
    return thread, box, pids[0]


def test_the_answer_and_its_bytes_come_back_as_sent() -> None:
    data = bytes(range(256)) * 4096  # 1 MB, every byte value
    reply = run_bounded(child_jobs.ECHO, {"page": 4, "text": "Total net sales \u2013 81,797"}, data, BOUNDS)
    assert reply.failure is None and reply.exitcode == 0
    assert reply.header == {"request": {"page": 4, "text": "Total net sales \u2013 81,797"}, "length": len(data)}
    assert reply.body == data[::-1]
    assert reply.peak_rss_mb is not None and reply.peak_rss_mb > 0


def test_a_child_that_hangs_is_killed_at_the_timeout_and_the_caller_goes_on() -> None:
    thread, box, pid = _in_thread(child_jobs.HANG, Bounds(timeout_s=1, memory_mb=256))
    thread.join(60)
    (reply,) = box
    assert (reply.failure, reply.header, reply.body) == ("timeout", None, b"")
    assert reply.exitcode == -signal.SIGKILL  # killed by the caller, not left to its CPU limit
    assert _gone(pid), f"child {pid} is still there (a zombie?)"
    assert not running_children()
    assert run_bounded(child_jobs.ECHO, "after", b"ok", BOUNDS).body == b"ko"


def test_a_child_that_segfaults_is_reported_with_its_signal() -> None:
    reply = run_bounded(child_jobs.SEGFAULT, None, b"", BOUNDS)
    assert (reply.failure, reply.exitcode, reply.header) == ("crashed", -signal.SIGSEGV, None)
    assert run_bounded(child_jobs.ECHO, "after", b"ok", BOUNDS).failure is None


def test_a_child_that_exits_without_answering_is_a_crash_with_its_code() -> None:
    reply = run_bounded(child_jobs.EXIT, 3, b"", BOUNDS)
    assert (reply.failure, reply.exitcode) == ("crashed", 3)


def test_an_exception_in_the_job_is_an_answer_in_plain_data() -> None:
    answers = {
        request: run_bounded(child_jobs.RAISE, request, b"", BOUNDS).header
        for request in ("not found", "recursion", "memory", "other")
    }
    assert answers == {
        "not found": {"error": "NotFound", "message": "no page 9: the PDF has 4 pages"},
        "recursion": {"error": "recursion"},
        "memory": {"error": "memory"},  # a library's error caused by a MemoryError
        "other": {"error": "exception", "type": "KeyError"},
    }


def test_stop_children_kills_jobs_in_flight_and_refuses_new_ones() -> None:
    thread, box, pid = _in_thread(child_jobs.HANG, Bounds(timeout_s=600, memory_mb=256))
    try:
        assert stop_children() == 1
        thread.join(60)
        assert box[0].failure == "stopped"
        assert _gone(pid)
        assert run_bounded(child_jobs.ECHO, None, b"x", BOUNDS).failure == "stopped"
    finally:
        resume_children()
    assert run_bounded(child_jobs.ECHO, None, b"x", BOUNDS).failure is None
