"""Parse untrusted files, and draw their PDF pages, in bounded child processes.

Three jobs run in a child process under a time and a memory limit (the machinery, and
what it guarantees, is :mod:`strongroom.ingest.bounded`); each answers in JSON, never a
pickle, so a child that went wrong can at worst send a wrong answer:

    job       in the child                        answer                         limits
    parse     parsers.parse(data, name)           the ParsedDocument, as JSON    ParseLimits  (60 s, 384 MB)
    render    pdf_pages.render_page(data, n)      width and height, then the PNG RenderLimits (20 s, 384 MB)
    locate    pdf_pages.locate_span(data, n, ...) the line boxes                 RenderLimits

A refusal raises an :class:`~strongroom.errors.IngestError` with a reason the user can act
on, so a batch goes on and the server stays up: ``TooLarge`` for a decompression bomb,
"parsing took over 60 s" or "drawing page 4 needed over 384 MB", ``CorruptDocument`` for a
crash, ``ParseStopped`` after :func:`stop_parses`. Drawing runs here, not in the server,
because rendering reaches pdfium code that parsing never does (the image decoders: JPEG2000,
JBIG2, CCITT), so a file that parsed cleanly can still crash or stall when drawn.

    >>> parse_bounded(data, "q3.docx", ParseLimits(timeout_s=30))  # doctest: +SKIP
    ParsedDocument(...)
    >>> render_bounded(pdf, 4, RenderLimits()).png[:4]  # doctest: +SKIP
    b'\\x89PNG'
    >>> stop_parses()  # doctest: +SKIP  (on SIGTERM: kill the parses and drawings in flight, refuse new ones)
    1
"""

from __future__ import annotations

import math
import signal
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from strongroom.errors import CorruptDocument, IngestError, ParseStopped, StrongroomError, TooLarge
from strongroom.ingest.bounded import ERRORS, Bounds, Job, Reply, resume_children, run_bounded, running_children
from strongroom.ingest.bounded import stop_children as _stop_children
from strongroom.ingest.parsers import parse
from strongroom.ingest.parsers.limits import ParseLimits
from strongroom.ingest.parsers.pdf_pages import PNG_SIGNATURE, Box, RenderedPage, locate_span, render_page
from strongroom.types import Page, ParsedDocument, frozen_meta

if TYPE_CHECKING:
    from strongroom.config import Settings

__all__ = [
    "ParseLimits",
    "ParseOutcome",
    "RenderLimits",
    "locate_bounded",
    "parse_bounded",
    "render_bounded",
    "resume_parses",
    "run_parse",
    "running_parses",
    "stop_parses",
]


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


@dataclass(frozen=True)
class RenderLimits:
    """How much drawing one page (or locating a span on it) may cost: wall-clock seconds
    and memory (address space above the child's start). ``in_process`` skips the child
    (tests and benchmarks only: a hostile page can then take the whole process down)."""

    timeout_s: float = 20.0
    memory_mb: int = 384
    in_process: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> RenderLimits:
        """``STRONGROOM_RENDER_TIMEOUT_S``, and the parser's ``STRONGROOM_PARSE_MEMORY_MB``."""
        return cls(timeout_s=settings.render_timeout_s, memory_mb=settings.parse_memory_mb)


# -- parse -----------------------------------------------------------------------------------


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
    if limits.in_process:
        started = time.perf_counter()
        try:
            document = parse(data, name, limits)
        except IngestError as exc:
            return ParseOutcome(None, exc, time.perf_counter() - started, None)
        return ParseOutcome(document, None, time.perf_counter() - started, None)
    reply = run_bounded(_PARSE, (name, limits), data, Bounds(limits.timeout_s, limits.memory_mb))
    words = _Words.parsing(name, limits.timeout_s, limits.memory_mb)
    try:
        answer, _ = _answer(reply, words)
        return ParseOutcome(_document(answer["document"]), None, reply.seconds, reply.peak_rss_mb)
    except StrongroomError as exc:
        error = exc if isinstance(exc, IngestError) else words.unreadable(type(exc).__name__)
        return ParseOutcome(None, error, reply.seconds, reply.peak_rss_mb)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return ParseOutcome(None, words.unreadable(type(exc).__name__), reply.seconds, None)


def stop_parses(*, refuse_new: bool = True) -> int:
    """Kill every parse and drawing this process has in flight; each raises :class:`ParseStopped`.

    For shutdown (call it from the SIGTERM handler, before joining the ingestion thread):
    with ``refuse_new`` (the default) later ones raise ``ParseStopped`` at once, until
    :func:`resume_parses`. Returns how many children were killed. Safe from any thread
    and from a signal handler.
    """
    return _stop_children(refuse_new=refuse_new)


def resume_parses() -> None:
    """Accept parses and drawings again after :func:`stop_parses`."""
    resume_children()


def running_parses() -> tuple[int, ...]:
    """The process ids of the children in flight, parses and drawings (for monitoring and tests)."""
    return running_children()


def _parse_in_child(request: tuple[str, ParseLimits], data: bytes) -> tuple[dict[str, Any], bytes]:
    name, limits = request
    document = parse(data, name, limits)
    published = document.published_at.isoformat() if document.published_at else None
    encoded = {
        "pages": [[page.number, page.text] for page in document.pages],
        "media_type": document.media_type,
        "title": document.title,
        "published_at": published,
        "metadata": dict(document.metadata),
    }
    return {"document": encoded}, b""


def _document(raw: Any) -> ParsedDocument:
    """Rebuild the child's document from plain JSON, field by field."""
    published = raw["published_at"]
    return ParsedDocument(
        pages=tuple(Page(int(number), str(text)) for number, text in raw["pages"]),
        media_type=str(raw["media_type"]),
        title=None if raw["title"] is None else str(raw["title"]),
        published_at=None if published is None else datetime.fromisoformat(published),
        metadata=frozen_meta({str(k): str(v) for k, v in raw["metadata"].items()}),
    )


# -- render and locate -----------------------------------------------------------------------


def render_bounded(data: bytes, number: int, limits: RenderLimits | None = None) -> RenderedPage:
    """:func:`~strongroom.ingest.parsers.pdf_pages.render_page` in a child process under ``limits``.

    Raises what ``render_page`` raises (:class:`~strongroom.errors.NotFound` for a page past
    the end, :class:`CorruptDocument`), plus :class:`TooLarge` when drawing runs out of time
    or memory, :class:`CorruptDocument` when the child crashes, and :class:`ParseStopped`
    after :func:`stop_parses`.
    """
    limits = limits or RenderLimits()
    if limits.in_process:
        return render_page(data, number)
    words = _Words.drawing(number, limits)
    answer, png = _answer(run_bounded(_RENDER, number, data, Bounds(limits.timeout_s, limits.memory_mb)), words)
    try:
        width, height = int(answer["width"]), int(answer["height"])
    except (KeyError, TypeError, ValueError) as exc:
        raise words.unreadable(type(exc).__name__) from exc
    if not png.startswith(PNG_SIGNATURE) or width <= 0 or height <= 0:
        raise words.unreadable("not a PNG")
    return RenderedPage(png, width, height)


def locate_bounded(
    data: bytes, number: int, stored: str, start: int, end: int, limits: RenderLimits | None = None
) -> list[Box]:
    """:func:`~strongroom.ingest.parsers.pdf_pages.locate_span` in a child process under
    ``limits``; refusals as :func:`render_bounded`'s."""
    limits = limits or RenderLimits()
    if limits.in_process:
        return locate_span(data, number, stored, start, end)
    request = (number, stored, start, end)
    words = _Words.drawing(number, limits)
    answer, _ = _answer(run_bounded(_LOCATE, request, data, Bounds(limits.timeout_s, limits.memory_mb)), words)
    try:
        boxes = [_box(box) for box in answer["boxes"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise words.unreadable(type(exc).__name__) from exc
    return boxes


def _render_in_child(number: int, data: bytes) -> tuple[dict[str, Any], bytes]:
    page = render_page(data, number)
    return {"width": page.width, "height": page.height}, page.png


def _locate_in_child(request: tuple[int, str, int, int], data: bytes) -> tuple[dict[str, Any], bytes]:
    number, stored, start, end = request
    return {"boxes": locate_span(data, number, stored, start, end)}, b""


def _box(raw: Any) -> Box:
    x0, y0, x1, y1 = (float(v) for v in raw)
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise ValueError("a box that is not finite")
    return (x0, y0, x1, y1)


_PARSE = Job("parse", _parse_in_child)
_RENDER = Job("render", _render_in_child)
_LOCATE = Job("locate", _locate_in_child)


# -- answers and refusals --------------------------------------------------------------------


@dataclass(frozen=True)
class _Words:
    """How one job's refusals read: "<subject>: <doing> took over 20 s; <what> is too large ...".

    ``timeout_env`` and ``memory_env`` name the settings that raise the limits.
    """

    subject: str
    doing: str  # "parsing", "drawing it"
    tool: str  # "parser", "renderer"
    what: str  # "the file", "the page"
    this: str  # "this file", "this page"
    advice: str  # what to do instead, for a file too large or too complex
    crash_advice: str
    stopped_advice: str
    timeout_s: float
    memory_mb: int
    timeout_env: str

    @classmethod
    def parsing(cls, name: str, timeout_s: float, memory_mb: int) -> _Words:
        return cls(
            subject=name,
            doing="parsing",
            tool="parser",
            what="the file",
            this="this file",
            advice="Split it, or save it as PDF",
            crash_advice="open it in its application, save it again (or as PDF) and ingest that",
            stopped_advice="ingest the file again",
            timeout_s=timeout_s,
            memory_mb=memory_mb,
            timeout_env="STRONGROOM_PARSE_TIMEOUT_S",
        )

    @classmethod
    def drawing(cls, number: int, limits: RenderLimits) -> _Words:
        return cls(
            subject=f"page {number}",
            doing="drawing it",
            tool="renderer",
            what="the page",
            this="this page",
            advice="Read the page's text instead",
            crash_advice="read the page's text instead",
            stopped_advice="ask again",
            timeout_s=limits.timeout_s,
            memory_mb=limits.memory_mb,
            timeout_env="STRONGROOM_RENDER_TIMEOUT_S",
        )

    def stopped(self) -> ParseStopped:
        return ParseStopped(
            f"{self.subject}: {self.doing.split()[0]} was stopped because strongroom is shutting down; "
            f"{self.stopped_advice}"
        )

    def timeout(self) -> TooLarge:
        return TooLarge(
            f"{self.subject}: {self.doing} took over {self.timeout_s:g} s; {self.what} is too large or too complex "
            f"(or built to stall a {self.tool}). {self.advice}, or raise {self.timeout_env}"
        )

    def memory(self) -> TooLarge:
        return TooLarge(
            f"{self.subject}: {self.doing} needed over {self.memory_mb} MB of memory; {self.what} is too large or too "
            f"complex (or built to exhaust memory). {self.advice}, or raise STRONGROOM_PARSE_MEMORY_MB"
        )

    def killed(self) -> TooLarge:  # not by us: the kernel's OOM killer, or an operator
        return TooLarge(
            f"{self.subject}: the {self.tool} was killed (SIGKILL), most likely by the system for lack of memory; "
            f"{self.advice[0].lower()}{self.advice[1:]}, "
            "or lower STRONGROOM_PARSE_MEMORY_MB below what the host can give"
        )

    def crashed(self, exitcode: int | None) -> CorruptDocument:
        how = f"exit {exitcode}"
        if exitcode is not None and exitcode < 0:
            try:
                how = f"signal {signal.Signals(-exitcode).name}"
            except ValueError:
                how = f"signal {-exitcode}"
        return CorruptDocument(
            f"{self.subject}: the {self.tool} crashed on {self.this} ({how}); it is damaged, hostile or needs over "
            f"{self.memory_mb} MB: {self.crash_advice}"
        )

    def failed(self, kind: str) -> CorruptDocument:
        return CorruptDocument(
            f"{self.subject}: the {self.tool} failed on {self.this} ({kind}); it is damaged or unusual: "
            f"{self.crash_advice}"
        )

    def nested(self) -> CorruptDocument:
        if self.tool != "parser":
            return self.failed("RecursionError")
        return CorruptDocument(f"{self.subject}: nested too deeply to read; save it as PDF and ingest that")

    def unreadable(self, why: str) -> CorruptDocument:
        return CorruptDocument(f"{self.subject}: the {self.tool} gave an unreadable answer ({why})")


def _answer(reply: Reply, words: _Words) -> tuple[dict[str, Any], bytes]:
    """The child's answer (header, bytes), or the refusal it amounts to, raised."""
    if reply.failure == "stopped":
        raise words.stopped()
    if reply.failure == "timeout":
        raise words.timeout()
    if reply.failure == "killed":
        raise words.killed()
    if reply.failure == "crashed":
        raise words.crashed(reply.exitcode)
    header = reply.header
    if reply.failure == "unreadable" or header is None:
        raise words.unreadable(str((header or {}).get("unreadable", "no answer")))
    error = header.get("error")
    if error is None:
        return header, reply.body
    if error == "memory":
        raise words.memory()
    if error == "recursion":
        raise words.nested()
    if error in ERRORS:
        exc: StrongroomError = ERRORS[error](str(header.get("message", "")))
        raise exc
    raise words.failed(str(header.get("type", error)))
