"""A PDF page as an image, and where a span of its stored text lies on it.

A citation points into the page text the PDF parser stored (:mod:`.pdf`: pdfium's text,
normalised by :func:`~strongroom.ingest.parsers._common.normalize_text`). To highlight it,
the same normalisation is replayed over pdfium's characters while remembering where each
one came from; when the result is the stored text (the usual case) a stored offset maps
straight to a pdfium character, and otherwise the span's words are looked up in pdfium's
text (whitespace ignored), taking the occurrence nearest the span's relative position.
The matched characters' boxes are merged into one box per line, as fractions of the page
(origin top-left, as the image is drawn), so a client scales them to any image size.

    >>> png = render_page(pdf_bytes, 4).png                                      # doctest: +SKIP
    >>> locate_span(pdf_bytes, 4, page_text, 210, 216)                           # doctest: +SKIP
    [(0.5141, 0.3209, 0.5682, 0.3321)]

pdfium is not thread-safe, so every call here holds :data:`~.pdf.PDFIUM_LOCK`. The server
does not call these: it draws in a child process (:func:`strongroom.ingest.sandbox.render_bounded`),
since drawing reaches pdfium's image decoders, which parsing never does.
"""

from __future__ import annotations

import ctypes
import math
import re
import struct
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from strongroom.errors import CorruptDocument, NotFound
from strongroom.ingest.parsers.pdf import PDFIUM_LOCK

__all__ = [
    "PNG_SIGNATURE",
    "Box",
    "RenderedPage",
    "align_span",
    "line_boxes",
    "locate_span",
    "normalized_with_sources",
    "render_page",
]

Box = tuple[float, float, float, float]  # x0, y0, x1, y1: fractions of the page, origin top-left

WIDTH_PX = 1200  # a page fits this width: readable on a screen beside its text
MAX_PIXELS = 6_000_000  # a hostile page size (PDF allows 200 by 200 inches) cannot exhaust memory
_DEVICE = 1_000_000  # the virtual device that page points are mapped onto: fractions to 1e-6
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class RenderedPage:
    """A page as a PNG image, with its size in pixels."""

    png: bytes
    width: int
    height: int


@contextmanager
def _page(data: bytes, number: int) -> Iterator[pdfium.PdfPage]:
    """Page ``number`` (1-based) of a PDF, under the pdfium lock."""
    with PDFIUM_LOCK:
        try:
            doc = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            raise CorruptDocument(f"pdfium cannot open this PDF ({exc}); ingest the file again") from exc
        try:
            if not 1 <= number <= len(doc):
                raise NotFound(f"no page {number}: the PDF has {len(doc)} pages")
            page = doc[number - 1]
            try:
                yield page
            finally:
                page.close()
        finally:
            doc.close()


def render_page(data: bytes, number: int, *, width: int = WIDTH_PX, max_pixels: int = MAX_PIXELS) -> RenderedPage:
    """Page ``number`` (1-based) drawn ``width`` pixels wide (smaller when that would pass
    ``max_pixels``), as an RGB PNG."""
    with _page(data, number) as page:
        w, h = page.get_size()
        if not (w > 0 and h > 0 and math.isfinite(w * h)):
            raise CorruptDocument(f"page {number} has no drawable size ({w} x {h} points)")
        scale = min(width / w, math.sqrt(max_pixels / (w * h)))
        while math.ceil(w * scale) * math.ceil(h * scale) > max_pixels:  # sizes round up: a pixel row more
            scale *= 0.995
        pixels = page.render(scale=scale, rev_byteorder=True).to_numpy()  # RGB, rows top to bottom
    return RenderedPage(encode_png(pixels), pixels.shape[1], pixels.shape[0])


def encode_png(pixels: npt.NDArray[np.uint8]) -> bytes:
    """An RGB (height x width x 3) or grey (height x width) uint8 array as a PNG file."""
    height, width = pixels.shape[:2]
    colour = 2 if pixels.ndim == 3 else 0
    rows = np.ascontiguousarray(pixels, dtype=np.uint8).reshape(height, -1)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1)  # filter byte 0 per row

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    idat = zlib.compress(raw.tobytes(), 1)  # level 1: a third of the time of level 6, a tenth larger
    return PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# -- locating a span ---------------------------------------------------------------------------


def normalized_with_sources(raw: str) -> tuple[str, list[int]]:
    """:func:`normalize_text` of ``raw``, with the index in ``raw`` each output character came from.

    The same steps in the same order: ``\\r\\n`` and ``\\r`` to ``\\n``, U+FFFE to ``-``,
    U+FFFF and control characters dropped, trailing whitespace of each line dropped, runs
    of four or more line ends cut to three, line ends at either end dropped.
    """
    out: list[tuple[str, int]] = []
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == "\r":
            if i + 1 < len(raw) and raw[i + 1] == "\n":
                i += 1
            out.append(("\n", i))
        elif ch == "\ufffe":
            out.append(("-", i))
        elif ch != "\uffff" and not _CONTROL.match(ch):
            out.append((ch, i))
        i += 1
    lines: list[list[tuple[str, int]]] = [[]]
    for ch, at in out:
        if ch == "\n":
            lines.append([])
        else:
            lines[-1].append((ch, at))
    ends = [at for ch, at in out if ch == "\n"]
    joined: list[tuple[str, int]] = []
    for n, line in enumerate(lines):
        while line and line[-1][0].isspace():
            line.pop()
        joined.extend(line)
        if n < len(ends):
            joined.append(("\n", ends[n]))
    squeezed: list[tuple[str, int]] = []
    for item in joined:  # "\n{4,}" -> "\n\n\n"
        if item[0] == "\n" and len(squeezed) >= 3 and all(c == "\n" for c, _ in squeezed[-3:]):
            continue
        squeezed.append(item)
    first = next((k for k, (c, _) in enumerate(squeezed) if c != "\n"), len(squeezed))
    last = next((k for k in range(len(squeezed) - 1, -1, -1) if squeezed[k][0] != "\n"), -1)
    kept = squeezed[first : last + 1]
    return "".join(c for c, _ in kept), [at for _, at in kept]


def align_span(raw: str, stored: str, start: int, end: int) -> list[int]:
    """The indices in ``raw`` (pdfium's page text) of the characters of ``stored[start:end]``.

    ``stored`` is the page text as the parser stored it. Empty when the span's words are not
    in ``raw`` at all (a page whose stored text was changed, e.g. redacted).
    """
    text, sources = normalized_with_sources(raw)
    if text == stored:
        return sources[start:end]
    needle = " ".join(stored[start:end].split())
    if not needle:
        return []
    collapsed: list[str] = []
    origin: list[int] = []
    for ch, at in zip(text, sources, strict=True):
        if ch.isspace():
            if collapsed and collapsed[-1] != " ":
                collapsed.append(" ")
                origin.append(at)
            continue
        collapsed.append(ch)
        origin.append(at)
    haystack = "".join(collapsed)
    found = [m.start() for m in re.finditer(re.escape(needle), haystack)]
    if not found:
        return []
    expected = start / max(len(stored), 1) * len(haystack)
    best = min(found, key=lambda at: abs(at - expected))
    return origin[best : best + len(needle)]


def line_boxes(boxes: Sequence[Box]) -> list[Box]:
    """Character boxes in reading order merged into one box per line: a box joins the line
    before it when the two overlap vertically by half the smaller height and it does not
    start left of the line (a wrap)."""
    lines: list[list[float]] = []
    for x0, y0, x1, y1 in boxes:
        if lines:
            line = lines[-1]
            overlap = min(y1, line[3]) - max(y0, line[1])
            if overlap >= 0.5 * min(y1 - y0, line[3] - line[1]) and x0 >= line[0]:
                line[:] = [line[0], min(y0, line[1]), max(x1, line[2]), max(y1, line[3])]
                continue
        lines.append([x0, y0, x1, y1])
    return [(round(a, 6), round(b, 6), round(c, 6), round(d, 6)) for a, b, c, d in lines]


def locate_span(data: bytes, number: int, stored: str, start: int, end: int) -> list[Box]:
    """Where ``stored[start:end]`` of page ``number``'s stored text lies on the page: one box
    per line, as fractions of the page (origin top-left). Empty when it cannot be found."""
    with _page(data, number) as page:
        textpage = page.get_textpage()
        try:
            count = textpage.count_chars()
            raw = textpage.get_text_range(0, count)
            boxes = [
                box
                for i in align_span(raw, stored, start, end)
                if i < count and not raw[i].isspace() and (box := _char_box(page, textpage, i)) is not None
            ]
        finally:
            textpage.close()
    return line_boxes(boxes)


def _char_box(page: pdfium.PdfPage, textpage: pdfium.PdfTextPage, index: int) -> Box | None:
    """Character ``index``'s loose box (the font's full line height) mapped onto the page as
    it is drawn (its rotation and crop box applied), in fractions."""
    left, bottom, right, top = textpage.get_charbox(index, loose=True)
    if right <= left or top <= bottom:
        return None  # a character pdfium generated (a line break), which has no box
    (ax, ay), (bx, by) = _to_device(page, left, top), _to_device(page, right, bottom)
    return (min(ax, bx) / _DEVICE, min(ay, by) / _DEVICE, max(ax, bx) / _DEVICE, max(ay, by) / _DEVICE)


def _to_device(page: pdfium.PdfPage, x: float, y: float) -> tuple[int, int]:
    dx, dy = ctypes.c_int(), ctypes.c_int()
    ok = pdfium_c.FPDF_PageToDevice(page.raw, 0, 0, _DEVICE, _DEVICE, 0, x, y, ctypes.byref(dx), ctypes.byref(dy))
    if not ok:
        raise CorruptDocument("pdfium cannot map the page's coordinates; ingest the file again")
    return dx.value, dy.value
