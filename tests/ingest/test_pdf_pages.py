"""A cited PDF page as an image, and where a span of its stored text lies on it."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from strongroom.errors import NotFound
from strongroom.ingest.parsers._common import normalize_text
from strongroom.ingest.parsers.pdf import parse_pdf
from strongroom.ingest.parsers.pdf_pages import (
    align_span,
    line_boxes,
    locate_span,
    normalized_with_sources,
    render_page,
)
from tests.ingest.pdf_fixtures import make_pdf


def decode_png(png: bytes) -> npt.NDArray[np.uint8]:
    """The pixels of a PNG as :func:`encode_png` writes it (8-bit, filter 0), height x width x 3."""
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    at, idat, size = 8, b"", (0, 0)
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        kind, body = png[at + 4 : at + 8], png[at + 8 : at + 8 + length]
        if kind == b"IHDR":
            size = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        at += 12 + length
    width, height = size
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, -1)
    assert (rows[:, 0] == 0).all()
    return rows[:, 1:].reshape(height, width, 3)


@pytest.fixture(scope="module")
def aapl(request: pytest.FixtureRequest) -> tuple[bytes, str]:
    path = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "sec10q" / "docs" / "2023 Q3 AAPL.pdf"
    if not path.is_file():
        pytest.skip(f"the sec10q corpus is not at {path.parent}")
    data = path.read_bytes()
    return data, parse_pdf(data, path.name).pages[3].text


def test_a_cited_figure_lies_on_its_line_right_of_the_label_over_ink(aapl: tuple[bytes, str]) -> None:
    data, text = aapl
    label = text.index("Total net sales 81,797 82,959 293,787 304,182")
    figure = label + len("Total net sales ")
    (label_box,) = locate_span(data, 4, text, label, label + len("Total net sales"))
    (figure_box,) = locate_span(data, 4, text, figure, figure + len("81,797"))
    middle = (figure_box[1] + figure_box[3]) / 2
    assert label_box[1] < middle < label_box[3]  # the same line
    assert figure_box[0] > label_box[2]  # to its right
    assert 0 <= figure_box[0] < figure_box[2] <= 1 and 0 <= figure_box[1] < figure_box[3] <= 1
    # the page as an image: under the figure's box there is ink, and around it paper
    page = render_page(data, 4)
    pixels = decode_png(page.png)
    assert pixels.shape == (page.height, page.width, 3) and page.width == 1200
    x0, y0, x1, y1 = figure_box
    under = pixels[int(y0 * page.height) : int(y1 * page.height) + 1, int(x0 * page.width) : int(x1 * page.width) + 1]
    assert under.min() < 80  # dark text pixels under the highlight
    blank = pixels[int(y0 * page.height) : int(y1 * page.height) + 1, : int(label_box[0] * page.width) - 2]
    assert blank.min() > 200  # left of the label, on the same line: no ink


def test_the_same_words_are_found_when_the_stored_text_differs(aapl: tuple[bytes, str]) -> None:
    data, text = aapl
    joined = text.replace("\n", " ")  # another parser's line joins: the words are matched instead
    figure = joined.index("Total net sales 81,797") + len("Total net sales ")
    assert locate_span(data, 4, joined, figure, figure + 6) == locate_span(data, 4, text, figure, figure + 6)


def test_a_span_over_two_lines_gives_a_box_per_line() -> None:
    data = make_pdf(["Net sales rose.\nServices grew."])
    text = parse_pdf(data, "t.pdf").pages[0].text
    first, second = locate_span(data, 1, text, 0, len(text))
    assert first[3] <= second[1] + 1e-3  # the second line below the first


def test_words_that_are_not_on_the_page_give_no_boxes() -> None:
    data = make_pdf(["Net sales rose."])
    assert locate_span(data, 1, "[REDACTED:CARD] text", 0, 15) == []


def test_a_page_past_the_end_is_not_found() -> None:
    with pytest.raises(NotFound, match="no page 2"):
        render_page(make_pdf(["one page"]), 2)


def test_a_huge_page_is_drawn_within_the_pixel_budget(tmp_path: Path) -> None:
    data = make_pdf(["tall"]).replace(b"/MediaBox [0 0 612 792]", b"/MediaBox [0 0 612 14400]")
    page = render_page(data, 1, max_pixels=2_000_000)
    assert page.width * page.height <= 2_000_000
    assert page.height > page.width


_RAW = st.text(alphabet=st.sampled_from("ab 1,\r\n\t\ufffe\uffff\x02"), max_size=60)


@given(_RAW)
def test_replayed_normalisation_is_the_parsers_and_each_char_comes_from_its_source(raw: str) -> None:
    text, sources = normalized_with_sources(raw)
    assert text == normalize_text(raw)
    assert len(sources) == len(text) and sources == sorted(sources)
    for ch, at in zip(text, sources, strict=True):
        assert raw[at] == ch or (ch, raw[at]) in {("\n", "\r"), ("-", "\ufffe")}


@given(_RAW, st.data())
def test_a_span_of_the_stored_text_maps_to_its_own_characters(raw: str, data: st.DataObject) -> None:
    text = normalize_text(raw)
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, len(text)))
    _, sources = normalized_with_sources(raw)
    assert align_span(raw, text, start, end) == sources[start:end]


def test_line_boxes_merge_a_line_and_split_on_a_wrap() -> None:
    boxes = [(0.1, 0.1, 0.2, 0.12), (0.2, 0.1, 0.3, 0.12), (0.05, 0.13, 0.1, 0.15)]
    assert line_boxes(boxes) == [(0.1, 0.1, 0.3, 0.12), (0.05, 0.13, 0.1, 0.15)]
