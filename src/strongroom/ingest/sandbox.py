"""Parse untrusted files in a child process, under a time and a memory limit.

    parse_bounded(data, name, limits)
      parent (any thread)                        child, forked by the forkserver (parsers preloaded)
      ───────────────────                        ──────────────────────────────────────────────────
      start a child ───────────────────────────► die with the forkserver (PR_SET_PDEATHSIG)
                                                 RLIMIT_AS, RLIMIT_CPU, no core files
      send the bytes ─────────── pipe ─────────► parse(data, name, limits)
      wait up to timeout_s ◄──── JSON reply ───── the ParsedDocument or the error (never a pickle)
      kill and reap it on timeout, on stop_parses() or when the thread is interrupted

A refused file raises an :class:`~strongroom.errors.IngestError` with a reason the user
can act on, so the batch goes on: ``TooLarge`` for a decompression bomb, "parsing took
over 60 s" or "parsing needed over 1024 MB", ``CorruptDocument`` for a parser crash.

Children come from a :mod:`multiprocessing` forkserver that has imported the parsers
once, so a parse costs a fork (about 10 ms), not an interpreter start, and the calling
process (threads, torch, faiss) is never forked. The forkserver exits when the process
that started it dies (each child closes its copy of the pipe that tells it so), each
child dies with the forkserver (PR_SET_PDEATHSIG), and the forkserver reaps its children:
no child outlives its process or lingers as a zombie, and none writes a file. A child also
stops on its own once its CPU time passes the limit.

    >>> parse_bounded(data, "q3.docx", ParseLimits(timeout_s=30))  # doctest: +SKIP
    ParsedDocument(...)
    >>> stop_parses()  # doctest: +SKIP  (on SIGTERM: kill the parses in flight, refuse new ones)
    1
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
from dataclasses import dataclass
from datetime import datetime
from multiprocessing import forkserver, popen_forkserver, reduction, spawn, util
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext, ForkServerProcess, set_spawning_popen
from multiprocessing.process import BaseProcess
from typing import Any

from strongroom.errors import CorruptDocument, IngestError, ParseStopped, TooLarge, UnsupportedFormat
from strongroom.ingest.parsers import parse
from strongroom.ingest.parsers.limits import MB, ParseLimits, is_memory_error
from strongroom.types import Page, ParsedDocument, frozen_meta

__all__ = [
    "ParseLimits",
    "ParseOutcome",
    "parse_bounded",
    "resume_parses",
    "run_parse",
    "running_parses",
    "stop_parses",
]

_PR_SET_PDEATHSIG = 1
_ERRORS: dict[str, type[IngestError]] = {
    cls.__name__: cls for cls in (IngestError, UnsupportedFormat, CorruptDocument, TooLarge)
}
_EXIT_GRACE_S = 2.0  # a child that has answered exits at once; one that does not is killed


@dataclass(frozen=True)
class ParseOutcome:
    """What one sandboxed parse gave: the document or the refusal, and what it cost.

    ``peak_rss_mb`` is the child's peak resident memory (as the child or /proc reported it;
    None when neither could be read). :func:`parse_bounded` returns the document or raises.
    """

    document: ParsedDocument | None
    error: IngestError | None
    seconds: float
    peak_rss_mb: float | None


def parse_bounded(data: bytes, name: str, limits: ParseLimits | None = None) -> ParsedDocument:
    """:func:`~strongroom.ingest.parsers.parse` in a child process under ``limits``.

    Raises what ``parse`` raises, plus :class:`TooLarge` when the child runs out of time
    or memory, :class:`CorruptDocument` when it crashes, and :class:`ParseStopped` after
    :func:`stop_parses`. Safe to call from any thread, and from Ray or bus workers.
    With ``limits.in_process`` it calls ``parse`` directly (tests and benchmarks).
    """
    outcome = run_parse(data, name, limits)
    if outcome.error is not None:
        raise outcome.error
    assert outcome.document is not None
    return outcome.document


def run_parse(data: bytes, name: str, limits: ParseLimits | None = None) -> ParseOutcome:
    """Like :func:`parse_bounded`, but returns the outcome with its time and peak memory."""
    limits = limits or ParseLimits()
    started = time.perf_counter()
    if limits.in_process:
        try:
            document = parse(data, name, limits)
        except IngestError as exc:
            return ParseOutcome(None, exc, time.perf_counter() - started, None)
        return ParseOutcome(document, None, time.perf_counter() - started, None)
    return _CHILDREN.run(data, name, limits, started)


def stop_parses(*, refuse_new: bool = True) -> int:
    """Kill every parse this process has in flight; each raises :class:`ParseStopped`.

    For shutdown (call it from the SIGTERM handler, before joining the ingestion thread):
    with ``refuse_new`` (the default) later parses raise ``ParseStopped`` at once, until
    :func:`resume_parses`. Returns how many children were killed. Safe from any thread
    and from a signal handler.
    """
    return _CHILDREN.stop(refuse_new)


def resume_parses() -> None:
    """Accept parses again after :func:`stop_parses`."""
    _CHILDREN.resume()


def running_parses() -> tuple[int, ...]:
    """The process ids of the parse children in flight (for monitoring and tests)."""
    return _CHILDREN.pids()


class _Popen(popen_forkserver.Popen):
    """The forkserver's launcher, less the re-import of the parent's ``__main__``.

    multiprocessing makes each child import the parent's main module (the ``strongroom``
    script, Ray's worker, pytest), in case the target was defined there; ours is defined
    here, and that import would cost more than the parse. ``_launch`` is CPython's
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
        # Reentrant: stop_parses() may run in a signal handler on a thread that holds it.
        self._lock = threading.RLock()
        self._running: dict[int, _Child] = {}
        self._refusing = False
        self._context: ForkServerContext | None = None

    def _ctx(self) -> ForkServerContext:
        if self._context is None:
            context = multiprocessing.get_context("forkserver")
            assert isinstance(context, ForkServerContext)
            # The forkserver imports the parsers once; every child is a fork of it. (A no-op
            # if this process already runs a forkserver: children then import on start.)
            context.set_forkserver_preload([__name__])
            self._context = context
        return self._context

    def run(self, data: bytes, name: str, limits: ParseLimits, started: float) -> ParseOutcome:
        ctx = self._ctx()
        ours, theirs = ctx.Pipe()
        try:
            with self._lock:  # start under the lock: stop() then sees every child that exists
                if self._refusing:
                    raise _stopped(name)
                process = _Process(target=_child_main, args=(theirs, name, limits), name="strongroom-parse")
                process.daemon = True  # killed by multiprocessing's exit handler too
                try:
                    process.start()
                except OSError as exc:  # the host, not the file: out of processes, memory or fds
                    raise IngestError(
                        f"{name}: could not start a parser process ({exc.strerror or exc}); "
                        "check the host's process, memory and open-file limits, then ingest again"
                    ) from exc
                child = _Child(process)
                self._running[id(child)] = child
                if self._refusing:  # stop_parses() ran meanwhile, in a signal handler on this thread
                    child.stopped = True
                    process.kill()
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        reply: bytes | None = None
        timed_out = False
        peak: float | None = None
        try:
            deadline = time.monotonic() + limits.timeout_s
            try:
                ours.send_bytes(data)
            except OSError:
                pass  # the child is gone; its exit code says why
            if ours.poll(max(0.0, deadline - time.monotonic())):
                try:
                    reply = ours.recv_bytes(max(256, 4 * limits.memory_mb) * MB)
                except (EOFError, OSError):
                    reply = None
            else:
                timed_out = True
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
            return ParseOutcome(None, _stopped(name), seconds, peak)
        if reply is not None:
            return _decode(reply, name, limits, seconds)
        if timed_out:
            return ParseOutcome(None, _timeout(name, limits), seconds, peak)
        return ParseOutcome(None, _died(name, exitcode, limits), seconds, peak)

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


def _child_main(conn: Connection, name: str, limits: ParseLimits) -> None:
    """Runs in the child: bound itself, read the bytes, parse, answer in JSON, exit at once."""
    _bound(limits)
    warnings.simplefilter("ignore")  # library warnings would print once per file: each child is new
    reply: dict[str, Any]
    try:
        reply = {"document": _encode(parse(conn.recv_bytes(), name, limits))}
    except EOFError:  # the parent is gone
        os._exit(0)
    except BaseException as exc:  # anything a parser does on hostile input is this file's failure
        reply = _error_reply(exc, name)
    reply["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:
        conn.send_bytes(json.dumps(reply, ensure_ascii=False).encode("utf-8", "surrogatepass"))
        conn.close()
    finally:
        os._exit(0)  # skip freeing a huge tree object by object, and every exit handler


def _bound(limits: ParseLimits) -> None:
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # die with the forkserver
    _release_the_forkserver()
    cpu = math.ceil(limits.timeout_s) + 1  # a backstop: the parent kills at timeout_s wall time
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 2))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # SIGXCPU and crashes leave no core file
    limit = _address_space() + limits.memory_mb * MB
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _release_the_forkserver() -> None:
    """Close this child's copy of the pipe that keeps the forkserver alive.

    The forkserver exits when the process that started it dies, that is when every copy of
    that pipe's write end is closed; multiprocessing hands one to each child, so a child
    still parsing would keep the forkserver alive, and with it itself (PR_SET_PDEATHSIG).
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


def _error_reply(exc: BaseException, name: str) -> dict[str, Any]:
    if is_memory_error(exc):
        return {"error": "memory"}
    if isinstance(exc, IngestError):
        kind = type(exc).__name__ if type(exc).__name__ in _ERRORS else "IngestError"
        return {"error": kind, "message": str(exc)}
    if isinstance(exc, RecursionError):
        message = f"{name}: nested too deeply to read; save it as PDF and ingest that"
        return {"error": "CorruptDocument", "message": message}
    return {
        "error": "CorruptDocument",
        "message": f"{name}: the parser failed on this file ({type(exc).__name__}); it is damaged or "
        "unusual: open it in its application, save it again (or as PDF) and ingest that",
    }


def _encode(document: ParsedDocument) -> dict[str, Any]:
    return {
        "pages": [[page.number, page.text] for page in document.pages],
        "media_type": document.media_type,
        "title": document.title,
        "published_at": document.published_at.isoformat() if document.published_at else None,
        "metadata": dict(document.metadata),
    }


# -- back in the parent -----------------------------------------------------------------------


def _decode(reply: bytes, name: str, limits: ParseLimits, seconds: float) -> ParseOutcome:
    """Rebuild the child's answer from plain JSON: a parse that went wrong in the child can
    at worst send wrong text, never objects for this process to construct."""
    try:
        body = json.loads(reply.decode("utf-8", "surrogatepass"))
        peak = float(body["peak_rss_mb"])
        if "document" in body:
            raw = body["document"]
            published = raw["published_at"]
            document = ParsedDocument(
                pages=tuple(Page(int(number), str(text)) for number, text in raw["pages"]),
                media_type=str(raw["media_type"]),
                title=None if raw["title"] is None else str(raw["title"]),
                published_at=None if published is None else datetime.fromisoformat(published),
                metadata=frozen_meta({str(k): str(v) for k, v in raw["metadata"].items()}),
            )
            return ParseOutcome(document, None, seconds, peak)
        if body["error"] == "memory":
            return ParseOutcome(None, _memory(name, limits), seconds, peak)
        return ParseOutcome(None, _ERRORS[body["error"]](str(body["message"])), seconds, peak)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        error = CorruptDocument(f"{name}: the parser gave an unreadable answer ({type(exc).__name__})")
        return ParseOutcome(None, error, seconds, None)


def _stopped(name: str) -> ParseStopped:
    return ParseStopped(f"{name}: parsing was stopped because strongroom is shutting down; ingest the file again")


def _timeout(name: str, limits: ParseLimits) -> TooLarge:
    return TooLarge(
        f"{name}: parsing took over {limits.timeout_s:g} s; the file is too large or too complex (or built to "
        "stall a parser). Split it, or save it as PDF, or raise STRONGROOM_PARSE_TIMEOUT_S"
    )


def _memory(name: str, limits: ParseLimits) -> TooLarge:
    return TooLarge(
        f"{name}: parsing needed over {limits.memory_mb} MB of memory; the file is too large or too complex "
        "(or built to exhaust memory). Split it, or save it as PDF, or raise STRONGROOM_PARSE_MEMORY_MB"
    )


def _died(name: str, exitcode: int | None, limits: ParseLimits) -> IngestError:
    if exitcode == -signal.SIGXCPU:
        return _timeout(name, limits)
    if exitcode == -signal.SIGKILL:  # not by us: the kernel's OOM killer, or an operator
        return TooLarge(
            f"{name}: the parser was killed (SIGKILL), most likely by the system for lack of memory; "
            "split the file or save it as PDF, or lower STRONGROOM_PARSE_MEMORY_MB below what the host can give"
        )
    how = f"exit {exitcode}"
    if exitcode is not None and exitcode < 0:
        try:
            how = f"signal {signal.Signals(-exitcode).name}"
        except ValueError:
            how = f"signal {-exitcode}"
    return CorruptDocument(
        f"{name}: the parser crashed on this file ({how}); it is damaged, hostile or needs over "
        f"{limits.memory_mb} MB: open it in its application, save it again (or as PDF) and ingest that"
    )
