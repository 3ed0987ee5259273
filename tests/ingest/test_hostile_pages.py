"""Hostile PDF pages are refused when drawn, in a child process, and take nothing else down.

A page preview draws the kept original with pdfium (render_page) and maps a citation onto
it (locate_span). Drawing reaches pdfium code that parsing never does, so a file that
parsed cleanly can still stall or crash the renderer: both run in a child under
RenderLimits (strongroom.ingest.sandbox), and answer what they answer in-process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from strongroom.config import Settings
from strongroom.errors import CorruptDocument, IngestError, NotFound, ParseStopped, StrongroomError, TooLarge
from strongroom.ingest.parsers.pdf import parse_pdf
from strongroom.ingest.parsers.pdf_pages import locate_span, render_page
from strongroom.ingest.sandbox import (
    RenderLimits,
    locate_bounded,
    parse_bounded,
    render_bounded,
    resume_parses,
    running_parses,
    stop_parses,
)
from tests.conftest import SEC10Q
from tests.ingest import hostile_files as hostile
from tests.ingest.test_bounded import _gone

QUICK = RenderLimits(timeout_s=1)  # the stalling page takes minutes to draw: well past this


@pytest.fixture(scope="module")
def stall() -> bytes:
    return hostile.pdf_render_stall()  # 9 KB; parses in milliseconds, minutes to draw in-process


@pytest.fixture(scope="module")
def aapl() -> tuple[bytes, str]:
    path = SEC10Q / "docs" / "2023 Q3 AAPL.pdf"
    if not path.is_file():
        pytest.skip(f"the sec10q corpus is not at {path.parent}")
    data = path.read_bytes()
    return data, parse_pdf(data, path.name).pages[3].text


def _refusal(call: Callable[..., object], *args: object) -> StrongroomError:
    with pytest.raises(StrongroomError) as caught:
        call(*args)
    return caught.value


# -- refused, and nothing else taken down -----------------------------------------------------


def test_a_page_that_stalls_the_renderer_is_killed_at_the_timeout(stall: bytes, aapl: tuple[bytes, str]) -> None:
    assert parse_bounded(stall, "stall.pdf").pages[0].text == "Quarterly figures"  # parsing is no help
    box: list[object] = []

    def draw() -> None:
        try:
            box.append(render_bounded(stall, 1, QUICK))
        except StrongroomError as exc:
            box.append(exc)

    thread = threading.Thread(target=draw)
    thread.start()
    while not (pids := running_parses()) and thread.is_alive():
        time.sleep(0.01)
    thread.join(60)
    (error,) = box
    assert isinstance(error, TooLarge)
    assert str(error) == (
        "page 1: drawing it took over 1 s; the page is too large or too complex (or built to stall a renderer). "
        "Read the page's text instead, or raise STRONGROOM_RENDER_TIMEOUT_S"
    )
    assert pids and _gone(pids[0]), "the drawing child is still there"
    # the caller goes on: the next page is drawn, and the stalling page's text is still located
    assert render_bounded(aapl[0], 4).width == 1200
    assert locate_bounded(stall, 1, "Quarterly figures", 0, 9, QUICK)


def test_a_page_that_exhausts_memory_when_drawn_is_refused_with_the_limit() -> None:
    # pdfium aborts when an allocation fails: a crash, reported with the limit it likely hit
    error = _refusal(lambda: render_bounded(hostile.pdf_content_bomb(100), 1, RenderLimits(memory_mb=300)))
    assert isinstance(error, CorruptDocument | TooLarge)
    assert str(error).startswith("page 1: ") and "300 MB" in str(error)
    assert "read the page's text instead" in str(error).lower()


def test_a_renderer_crash_is_a_clear_refusal() -> None:
    # the same bomb under a lower cap: the abort is reported by its signal, never raised as-is
    error = _refusal(lambda: locate_bounded(hostile.pdf_content_bomb(100), 1, "x", 0, 1, RenderLimits(memory_mb=200)))
    assert isinstance(error, IngestError)
    assert str(error).startswith("page 1: the renderer crashed on this page (signal SIGABRT)")


def test_stop_parses_stops_a_drawing_in_flight(stall: bytes) -> None:
    box: list[object] = []

    def draw() -> None:
        try:
            box.append(render_bounded(stall, 1, RenderLimits(timeout_s=600)))
        except StrongroomError as exc:
            box.append(exc)

    thread = threading.Thread(target=draw)
    thread.start()
    try:
        while not running_parses() and thread.is_alive():
            time.sleep(0.01)
        assert stop_parses(refuse_new=False) == 1
        thread.join(60)
    finally:
        resume_parses()
    (error,) = box
    assert isinstance(error, ParseStopped)
    assert str(error) == "page 1: drawing was stopped because strongroom is shutting down; ask again"


# -- the same answers as in-process ------------------------------------------------------------


def test_a_real_filing_is_drawn_and_located_exactly_as_in_process(aapl: tuple[bytes, str]) -> None:
    data, text = aapl
    assert render_bounded(data, 4) == render_page(data, 4)
    label = text.index("Total net sales 81,797 82,959 293,787 304,182")
    spans = [
        (label, label + len("Total net sales")),
        (label + len("Total net sales "), label + len("Total net sales 81,797")),
        (label, text.index("\n", text.index("\n", label) + 1)),  # two lines: a box each
        (0, len(text)),
    ]
    for start, end in spans:
        assert locate_bounded(data, 4, text, start, end) == locate_span(data, 4, text, start, end)
    assert locate_bounded(data, 4, "words that are not there", 0, 5) == []


def test_errors_keep_their_type_and_message(aapl: tuple[bytes, str]) -> None:
    calls: list[Callable[[RenderLimits | None], object]] = [
        lambda limits: render_bounded(aapl[0], 400, limits),  # past the end
        lambda limits: render_bounded(b"%PDF-1.7 not really", 1, limits),
        lambda limits: locate_bounded(b"", 1, "x", 0, 1, limits),
    ]
    for call in calls:
        bounded, in_process = _refusal(call, None), _refusal(call, RenderLimits(in_process=True))
        assert (type(bounded), str(bounded)) == (type(in_process), str(in_process))
    assert isinstance(_refusal(lambda: render_bounded(aapl[0], 400)), NotFound)


def test_pages_drawn_from_many_threads_each_get_their_own(aapl: tuple[bytes, str]) -> None:
    data = aapl[0]
    with ThreadPoolExecutor(4) as pool:
        drawn = list(pool.map(lambda n: render_bounded(data, n), [1, 2, 3, 4, 1, 2, 3, 4]))
    assert drawn == [render_page(data, n) for n in [1, 2, 3, 4, 1, 2, 3, 4]]
    assert not running_parses()


def test_limits_come_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert RenderLimits.from_settings(Settings()) == RenderLimits()
    monkeypatch.setenv("STRONGROOM_RENDER_TIMEOUT_S", "5")
    limits = RenderLimits.from_settings(Settings(parse_memory_mb=512))
    assert (limits.timeout_s, limits.memory_mb, limits.in_process) == (5, 512, False)


@pytest.fixture(autouse=True)
def _no_children_left() -> Iterator[None]:
    yield
    assert not running_parses()
