"""Run one job on untrusted bytes in a child process, under a time and a memory limit.

    run_bounded(job, request, data, bounds)
      parent (any thread)                        child, forked by the forkserver (jobs preloaded)
      ───────────────────                        ──────────────────────────────────────────────────
      start a child ───────────────────────────► die with the forkserver (PR_SET_PDEATHSIG)
                                                 RLIMIT_AS, RLIMIT_CPU, no core files
      send the bytes ─────────── pipe ─────────► job.work(request, data)
      wait up to timeout_s ◄──── JSON header ─── the answer or the error (never a pickle),
                           ◄──── raw bytes ───── then the answer's bytes (a PNG), if any
      kill and reap it on timeout, on stop_children() or when the thread is interrupted

This is the machinery only: :mod:`strongroom.ingest.sandbox` defines the jobs (parse a
file, draw a PDF page, locate a span on it), what their answers hold and how a failure
reads. A job is a :class:`Job`: a name and a function of the child, which answers with a
JSON-able header and optional raw bytes. Whatever the child does, the parent gets back a
:class:`Reply`: the header (plain JSON data) and the bytes, or why there is none:
``"timeout"``, ``"stopped"``, ``"killed"`` (SIGKILL, not by us), ``"crashed"`` (another
exit, with its code) or ``"unreadable"``. An exception raised in the job is an answer,
``{"error": ...}`` (see :func:`error_reply`).

Children come from a :mod:`multiprocessing` forkserver that has imported the jobs (the
parsers and pdfium) once, so a job costs a fork (about 10 ms), not an interpreter start,
and the calling process (threads, torch, faiss) is never forked. The forkserver exits when
the process that started it dies (each child closes its copy of the pipe that tells it
so), each child dies with the forkserver (PR_SET_PDEATHSIG), and the forkserver reaps its
children: no child outlives its process or lingers as a zombie, and none writes a file. A
child also stops on its own once its CPU time passes the limit.

    >>> reply = run_bounded(job, ("q3.docx", limits), data, Bounds(timeout_s=30, memory_mb=384))  # doctest: +SKIP
    >>> reply.failure, reply.header                                                          # doctest: +SKIP
    (None, {'document': {...}, 'peak_rss_mb': 61.2})
"""

from __future__ import annotations

import ctypes
import io
import json
import math
import multiprocessing
import os
import resource
import signal
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import forkserver, popen_forkserver, reduction, spawn, util
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext, ForkServerProcess, set_spawning_popen
from multiprocessing.process import BaseProcess
from typing import Any, Literal

from strongroom.errors import CorruptDocument, IngestError, NotFound, StrongroomError, TooLarge, UnsupportedFormat
from strongroom.ingest.parsers.limits import MB, is_memory_error

__all__ = [
    "ERRORS",
    "Bounds",
    "Failure",
    "Job",
    "Reply",
    "error_reply",
    "resume_children",
    "run_bounded",
    "running_children",
    "stop_children",
    "warm_up",
]

#: What the child's answer may name as its error (the nearest of these in its class's MRO).
ERRORS: dict[str, type[StrongroomError]] = {
    cls.__name__: cls for cls in (IngestError, UnsupportedFormat, CorruptDocument, TooLarge, NotFound)
}
#: The modules whose jobs the forkserver imports once: each child is then a fork with the
#: parsers and pdfium loaded. (A job defined elsewhere, as in tests, is imported on start.)
PRELOAD = ["strongroom.ingest.sandbox"]

Failure = Literal["timeout", "stopped", "killed", "crashed", "unreadable"]
JobWork = Callable[[Any, bytes], tuple[dict[str, Any], bytes]]

_PR_SET_PDEATHSIG = 1
_EXIT_GRACE_S = 2.0  # a child that has answered exits at once; one that does not is killed


@dataclass(frozen=True)
class Job:
    """One kind of work a child may do.

    ``work(request, data)`` runs in the child: ``request`` is what the parent passed (plain
    values), ``data`` the untrusted bytes; it returns a JSON-able header and raw bytes
    (``b""`` for none). It must be a module-level function: the child imports it by name.
    """

    name: str
    work: JobWork


@dataclass(frozen=True)
class Bounds:
    """Wall-clock seconds and memory (MB of address space above the child's start)."""

    timeout_s: float
    memory_mb: int


@dataclass(frozen=True)
class Reply:
    """What came back from one child: the header and bytes it sent, or why it sent none.

    ``exitcode`` is the child's (negative: the signal that ended it); ``peak_rss_mb`` its
    peak resident memory, as it or /proc reported it (None when neither could be read).
    """

    header: dict[str, Any] | None
    body: bytes
    failure: Failure | None
    exitcode: int | None
    seconds: float
    peak_rss_mb: float | None


def run_bounded(job: Job, request: Any, data: bytes, bounds: Bounds) -> Reply:
    """Run ``job`` on ``data`` in a child process under ``bounds``; never raises for what
    the child does (only :class:`IngestError` when no child can be started). Safe to call
    from any thread, and from Ray or bus workers."""
    return _CHILDREN.run(job, request, data, bounds)


def stop_children(*, refuse_new: bool = True) -> int:
    """Kill every child this process has in flight (their replies fail with ``"stopped"``).

    With ``refuse_new``, later runs fail with ``"stopped"`` at once, until
    :func:`resume_children`. Returns how many were killed. Safe from any thread and from a
    signal handler.
    """
    return _CHILDREN.stop(refuse_new)


def resume_children() -> None:
    """Accept runs again after :func:`stop_children`."""
    _CHILDREN.resume()


def warm_up() -> None:
    """Start this process's forkserver now (it imports the jobs' modules, about a second),
    so the first parse or page drawing of a service does not wait for it."""
    _CHILDREN.warm_up()


def running_children() -> tuple[int, ...]:
    """The process ids of the children in flight (for monitoring and tests)."""
    return _CHILDREN.pids()


def error_reply(exc: BaseException) -> dict[str, Any]:
    """The child's answer for an exception its job raised: plain data, decoded by the job's caller.

    ``{"error": "memory"}``, ``{"error": "recursion"}``, ``{"error": <a class in ERRORS>,
    "message": ...}`` for strongroom's own errors, else ``{"error": "exception", "type": ...}``.
    """
    if is_memory_error(exc):
        return {"error": "memory"}
    if isinstance(exc, RecursionError):
        return {"error": "recursion"}
    if isinstance(exc, StrongroomError):
        kind = next((c.__name__ for c in type(exc).__mro__ if c.__name__ in ERRORS), None)
        if kind is not None:
            return {"error": kind, "message": str(exc)}
    return {"error": "exception", "type": type(exc).__name__}


class _Popen(popen_forkserver.Popen):
    """The forkserver's launcher, less the re-import of the parent's ``__main__``.

    multiprocessing makes each child import the parent's main module (the ``strongroom``
    script, Ray's worker, pytest), in case the target was defined there; ours is defined
    here, and that import would cost more than the job. ``_launch`` is CPython's
    (identical in 3.11 to 3.13) with the two ``init_main_*`` keys dropped.
    """

    def _launch(self, process_obj: BaseProcess) -> None:
        prep_data = spawn.get_preparation_data(process_obj._name)  # type: ignore[attr-defined]
        prep_data.pop("init_main_from_name", None)
        prep_data.pop("init_main_from_path", None)
        buf = io.BytesIO()
        set_spawning_popen(self)
        try:
            reduction.dump(prep_data, buf)
            reduction.dump(process_obj, buf)
        finally:
            set_spawning_popen(None)
        self.sentinel, w = forkserver.connect_to_new_process(self._fds)  # type: ignore[attr-defined]
        parent_w = os.dup(w)  # the child's sentinel of its parent, as in CPython
        self.finalizer = util.Finalize(self, _close_fds, (parent_w, self.sentinel))
        with open(w, "wb", closefd=True) as f:
            f.write(buf.getbuffer())
        self.pid = forkserver.read_signed(self.sentinel)


def _close_fds(*fds: int) -> None:
    for fd in fds:
        os.close(fd)


class _Process(ForkServerProcess):
    @staticmethod
    def _Popen(process_obj: BaseProcess) -> _Popen:
        return _Popen(process_obj)


class _Child:
    def __init__(self, process: _Process) -> None:
        self.process = process
        self.stopped = False


class _Children:
    """The children in flight. One per process: the forkserver is per process too."""

    def __init__(self) -> None:
        # Reentrant: stop_children() may run in a signal handler on a thread that holds it.
        self._lock = threading.RLock()
        self._running: dict[int, _Child] = {}
        self._refusing = False
        self._context: ForkServerContext | None = None

    def _ctx(self) -> ForkServerContext:
        if self._context is None:
            context = multiprocessing.get_context("forkserver")
            assert isinstance(context, ForkServerContext)
            # A no-op if this process already runs a forkserver: children then import on start.
            context.set_forkserver_preload(PRELOAD)
            self._context = context
        return self._context

    def warm_up(self) -> None:
        self._ctx()
        forkserver.ensure_running()

    def run(self, job: Job, request: Any, data: bytes, bounds: Bounds) -> Reply:
        started = time.perf_counter()
        ctx = self._ctx()
        ours, theirs = ctx.Pipe()
        try:
            with self._lock:  # start under the lock: stop() then sees every child that exists
                if self._refusing:
                    return Reply(None, b"", "stopped", None, time.perf_counter() - started, None)
                process = _Process(
                    target=_child_main, args=(theirs, job, request, bounds), name=f"strongroom-{job.name}"
                )
                process.daemon = True  # killed by multiprocessing's exit handler too
                try:
                    process.start()
                except OSError as exc:  # the host, not the input: out of processes, memory or fds
                    raise IngestError(
                        f"could not start a {job.name} process ({exc.strerror or exc}); "
                        "check the host's process, memory and open-file limits, then try again"
                    ) from exc
                child = _Child(process)
                self._running[id(child)] = child
                if self._refusing:  # stop_children() ran meanwhile, in a signal handler on this thread
                    child.stopped = True
                    process.kill()
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        header: bytes | None = None
        body = b""
        timed_out = False
        peak: float | None = None
        try:
            deadline = time.monotonic() + bounds.timeout_s
            try:
                ours.send_bytes(data)
            except OSError:
                pass  # the child is gone; its exit code says why
            header, timed_out = _receive(ours, deadline, bounds)
            if header is not None:
                rest, timed_out = _receive(ours, deadline, bounds)
                header, body = (header, rest) if rest is not None else (None, b"")
            if timed_out:
                peak = _proc_peak_rss_mb(process.pid)
        finally:
            # Under the lock, as start() and stop() are: multiprocessing reads a child's exit
            # status from a pipe that only one reader may drain.
            with self._lock:
                del self._running[id(child)]
                exitcode = _reap(process, wait_s=0.0 if timed_out else _EXIT_GRACE_S)
            ours.close()
        seconds = time.perf_counter() - started
        if child.stopped:
            return Reply(None, b"", "stopped", exitcode, seconds, peak)
        if header is not None:
            return _decoded(header, body, exitcode, seconds)
        if timed_out:
            return Reply(None, b"", "timeout", exitcode, seconds, peak)
        failure: Failure = "killed" if exitcode == -signal.SIGKILL else "crashed"
        if exitcode == -signal.SIGXCPU:
            failure = "timeout"
        return Reply(None, b"", failure, exitcode, seconds, peak)

    def stop(self, refuse_new: bool) -> int:
        with self._lock:
            self._refusing = self._refusing or refuse_new
            killed = 0
            for child in self._running.values():
                child.stopped = True
                if child.process.is_alive():
                    child.process.kill()
                    killed += 1
            return killed

    def resume(self) -> None:
        with self._lock:
            self._refusing = False

    def pids(self) -> tuple[int, ...]:
        with self._lock:
            return tuple(c.process.pid for c in self._running.values() if c.process.pid is not None)

    def forget(self) -> None:
        """In a process forked from this one: no children, and a lock nobody holds."""
        self._lock = threading.RLock()
        self._running = {}


_CHILDREN = _Children()
os.register_at_fork(after_in_child=_CHILDREN.forget)


def _receive(conn: Connection, deadline: float, bounds: Bounds) -> tuple[bytes | None, bool]:
    """The child's next message (None when it died first), and whether the deadline passed."""
    if not conn.poll(max(0.0, deadline - time.monotonic())):
        return None, True
    try:
        return conn.recv_bytes(max(256, 4 * bounds.memory_mb) * MB), False
    except (EOFError, OSError):
        return None, False


def _decoded(header: bytes, body: bytes, exitcode: int | None, seconds: float) -> Reply:
    """The child's header as plain JSON data: at worst a wrong answer, never objects for this
    process to construct."""
    try:
        value = json.loads(header.decode("utf-8", "surrogatepass"))
        if not isinstance(value, dict):
            raise TypeError("not an object")
        peak = float(value.pop("peak_rss_mb"))
        if value.pop("body_bytes", 0) != len(body):
            raise ValueError("the bytes that followed are not the ones announced")
    except (ValueError, KeyError, TypeError) as exc:
        return Reply({"unreadable": type(exc).__name__}, b"", "unreadable", exitcode, seconds, None)
    return Reply(value, body, None, exitcode, seconds, peak)


def _reap(process: _Process, wait_s: float) -> int | None:
    """Make sure the child is gone and release it; its exit code. (The forkserver, its
    parent, reaps it: no zombie is left in either process.)"""
    process.join(wait_s)
    if process.exitcode is None:
        process.kill()
        process.join(10.0)  # SIGKILL cannot be caught: this returns at once unless the host is stalled
    exitcode = process.exitcode
    if exitcode is not None:
        process.close()
    return exitcode


def _proc_peak_rss_mb(pid: int | None) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


# -- the child --------------------------------------------------------------------------------


def _prctl() -> Any:
    try:
        return getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)
    except OSError:  # pragma: no cover - no C library to load
        return None


_PRCTL = _prctl()  # Linux only; elsewhere children rely on the CPU limit and the pipe's EOF


def _child_main(conn: Connection, job: Job, request: Any, bounds: Bounds) -> None:
    """Runs in the child: bound itself, read the bytes, do the job, answer in JSON (then the
    answer's bytes), exit at once."""
    _bound(bounds)
    warnings.simplefilter("ignore")  # library warnings would print once per input: each child is new
    try:
        data = conn.recv_bytes()
    except EOFError:  # the parent is gone
        os._exit(0)
    header: dict[str, Any]
    body = b""
    try:
        header, body = job.work(request, data)
    except BaseException as exc:  # anything a library does on hostile input is this input's failure
        header = error_reply(exc)
    header["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    header["body_bytes"] = len(body)
    try:
        conn.send_bytes(json.dumps(header, ensure_ascii=False).encode("utf-8", "surrogatepass"))
        conn.send_bytes(body)
        conn.close()
    finally:
        os._exit(0)  # skip freeing a huge tree object by object, and every exit handler


def _bound(bounds: Bounds) -> None:
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # die with the forkserver
    _release_the_forkserver()
    cpu = math.ceil(bounds.timeout_s) + 1  # a backstop: the parent kills at timeout_s wall time
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 2))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # SIGXCPU and crashes leave no core file
    limit = _address_space() + bounds.memory_mb * MB
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _release_the_forkserver() -> None:
    """Close this child's copy of the pipe that keeps the forkserver alive.

    The forkserver exits when the process that started it dies, that is when every copy of
    that pipe's write end is closed; multiprocessing hands one to each child, so a child
    still working would keep the forkserver alive, and with it itself (PR_SET_PDEATHSIG).
    """
    server = getattr(forkserver, "_forkserver", None)
    fd = getattr(server, "_forkserver_alive_fd", None)
    if isinstance(fd, int):
        os.close(fd)
        setattr(server, "_forkserver_alive_fd", None)  # noqa: B010 - a private attribute


def _address_space() -> int:
    """The child's virtual size at the start: the limit is memory_mb on top of it."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[0]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
        return 0
