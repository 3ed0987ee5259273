"""A cited page as an image, and where a citation's span lies on it: reading content.

Two steps, like an ask. The check (role, clocks, entitlements) is the page read itself
(:meth:`~strongroom.service.operations.Operations.page`, under its own action), so a page
the principal may not read is :class:`~strongroom.errors.NotFound` exactly as one that does
not exist; it runs where the store may be used. The drawing then reads the version's kept
original (``HOME/originals``, refused if its bytes no longer match its name) and runs pdfium
in a child process under ``limits`` (:mod:`strongroom.ingest.sandbox`: a page that stalls or
crashes the renderer is refused, and takes nothing else down), tens of milliseconds that need
no store, so a driver may run it on another thread. The check's audit record is written with
the drawing's outcome: a refused original or page is recorded as an error, not as a read.

    checked = ops.page(ana, doc_id, version_id, 4, View(), action=IMAGE_ACTION)
    image = draw_page(checked, originals_folder(settings.home), RenderLimits.from_settings(settings)).result().png
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from strongroom.errors import NotFound, QueryError, StrongroomError
from strongroom.ingest.originals import read_original
from strongroom.ingest.parsers.pdf import MEDIA_TYPE as PDF
from strongroom.ingest.parsers.pdf_pages import Box, RenderedPage
from strongroom.ingest.sandbox import RenderLimits, locate_bounded, render_bounded
from strongroom.service.operations import Outcome
from strongroom.service.requests import PageView

__all__ = ["HIGHLIGHT_ACTION", "IMAGE_ACTION", "draw_page", "highlight_span"]

IMAGE_ACTION = "documents.page.image"
HIGHLIGHT_ACTION = "documents.page.highlight"

T = TypeVar("T")
log = logging.getLogger(__name__)


def draw_page(checked: Outcome[PageView], originals: Path, limits: RenderLimits) -> Outcome[RenderedPage]:
    """The checked page drawn as a PNG (or the check's refusal, as it was)."""
    return _drawn(checked, originals, lambda shown, data: render_bounded(data, shown.page, limits))


def highlight_span(
    checked: Outcome[PageView], originals: Path, start: int, end: int, limits: RenderLimits
) -> Outcome[list[Box]]:
    """Where ``[start, end)`` of the checked page's text lies on the drawn page: one box per
    line, as fractions of the page (origin top-left); a span outside the text is a QueryError."""

    def locate(shown: PageView, data: bytes) -> list[Box]:
        if not 0 <= start < end <= len(shown.text):
            raise QueryError(f"the span must satisfy 0 <= start < end <= {len(shown.text)} (the page's text length)")
        return locate_bounded(data, shown.page, shown.text, start, end, limits)

    return _drawn(checked, originals, locate)


def _drawn(checked: Outcome[PageView], originals: Path, draw: Callable[[PageView, bytes], T]) -> Outcome[T]:
    if checked.error is not None or checked.value is None:
        return Outcome(None, checked.error, checked.events)
    shown = checked.value
    try:
        value = draw(shown, _original_pdf(shown, originals))
    except StrongroomError as exc:
        if not isinstance(exc, NotFound | QueryError):
            log.error("page %s/%s/%s not drawn: %s", shown.document_id, shown.version.id, shown.page, exc)
        word = "not_found" if isinstance(exc, NotFound) else "error"
        events = tuple(replace(e, outcome=word, detail=str(exc)[:500]) for e in checked.events)
        return Outcome(None, exc, events)
    return Outcome(value, None, checked.events)


def _original_pdf(shown: PageView, originals: Path) -> bytes:
    version = shown.version
    text_at = f"/v1/documents/{shown.document_id}/versions/{version.id}/pages/{shown.page}"
    if version.media_type != PDF:
        raise NotFound(f"page images are drawn for PDFs only; this version is {version.media_type}: read {text_at}")
    data = read_original(originals, version.id)  # StoreError when the file was changed on disk
    if data is None:
        raise NotFound(
            "the original file of this version was not kept (it was ingested before strongroom kept "
            f"originals, or sensitive data was redacted from its text), so there is no page image: read {text_at}"
        )
    return data
