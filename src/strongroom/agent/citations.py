"""Checking an answer's numbers against the evidence it cites (pure functions).

The evidence of a run is numbered 1, 2, ... in the order the run gathered it, and an answer
cites it with markers: ``[1]``, ``[1, 3]``, ``[1][3]``, ``[Source 2]``. Every number the
answer states (:func:`~strongroom.agent.numbers.find_figures`: not dates, years, markers or
references) must be stated by an evidence item its sentence cites, in any format: "81,797",
"81797", "$81.8 billion" where the evidence says "(In millions) ... 81,797", "4.25%" where a
rate column holds 4.25 or 0.0425. A derived number (a change, a ratio) is supported by the
``calculation`` evidence the calculator tool added, whose numbers are its result.

A number is cited by the first markers after it in its sentence ("81,797 [1], down 1.4%
[3]": [1] for 81,797, [3] for 1.4%), or, with none after it, by all of its sentence's. A
sentence without a marker takes the markers of the next cited sentence of its paragraph
(models often cite once, at the end of a thought); a number with no marker at all is
unsupported.

>>> report = check_answer("Net sales were $81.8 billion [1].", [page_evidence])  # doctest: +SKIP
>>> [n.text for n in report.supported], report.unsupported
(['$81.8 billion'], ())
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from strongroom.agent.base import Evidence
from strongroom.agent.numbers import SCALES, Figure, find_figures, parse_figure, same_figure
from strongroom.finance import scale_of

__all__ = ["CitationReport", "NumberCheck", "check_answer", "cited_markers", "states", "unsupported_note"]

_SOURCE = r"(?:(?:sources?|src|refs?|evidence)\s*)?"
_MARKER = re.compile(rf"\[\s*{_SOURCE}(\d+(?:\s*[,;]\s*{_SOURCE}\d+)*)\s*\]", re.IGNORECASE)
# A sentence ends at . ! or ? followed by space (so not at a decimal point); markers right
# after the stop ("... million. [1]") still belong to it.
_SENTENCE_END = re.compile(rf"[.!?](?:\s*{_MARKER.pattern})*(?=\s|$)", re.IGNORECASE)


@dataclass(frozen=True)
class NumberCheck:
    """One number of an answer: its text and span, the evidence its sentence cites, and
    those of them that state it (empty: unsupported)."""

    text: str
    start: int
    end: int
    cited: tuple[int, ...]
    supported_by: tuple[int, ...]

    @property
    def supported(self) -> bool:
        return bool(self.supported_by)


@dataclass(frozen=True)
class CitationReport:
    """Every number an answer states, checked; ``cited``: the evidence numbers the answer
    cites, in order of first citation; ``unknown``: markers that name no evidence."""

    numbers: tuple[NumberCheck, ...]
    cited: tuple[int, ...]
    unknown: tuple[int, ...]

    @property
    def supported(self) -> tuple[NumberCheck, ...]:
        return tuple(n for n in self.numbers if n.supported)

    @property
    def unsupported(self) -> tuple[NumberCheck, ...]:
        return tuple(n for n in self.numbers if not n.supported)


def _marker_numbers(text: str) -> list[int]:
    return [int(n) for m in _MARKER.finditer(text) for n in re.findall(r"\d+", m.group(1))]


def cited_markers(text: str) -> list[int]:
    """The evidence numbers ``text`` cites, in order of first citation."""
    return list(dict.fromkeys(_marker_numbers(text)))


def _sentences(text: str) -> list[tuple[int, int, tuple[int, ...]]]:
    """``(start, end, cited)`` for each sentence of ``text``; a sentence with no marker
    takes those of the next cited sentence of its paragraph (a line)."""
    out: list[tuple[int, int, tuple[int, ...]]] = []
    offset = 0
    for line in text.splitlines(keepends=True):
        spans: list[tuple[int, int]] = []
        start = 0
        for m in _SENTENCE_END.finditer(line):
            spans.append((start, m.end()))
            start = m.end()
        if start < len(line):
            spans.append((start, len(line)))
        pending: list[tuple[int, int]] = []
        for s, e in spans:
            cited = tuple(dict.fromkeys(_marker_numbers(line[s:e])))
            if not cited:
                pending.append((s, e))
                continue
            out.extend((offset + ps, offset + pe, cited) for ps, pe in pending)
            out.append((offset + s, offset + e, cited))
            pending = []
        out.extend((offset + ps, offset + pe, ()) for ps, pe in pending)
        offset += len(line)
    return out


def _marker_groups(text: str) -> list[tuple[int, tuple[int, ...]]]:
    """``(start, cited)`` of each run of adjacent markers ("[1][2]", "[1], [3]")."""
    groups: list[tuple[int, int, list[int]]] = []
    for m in _MARKER.finditer(text):
        numbers = [int(n) for n in re.findall(r"\d+", m.group(1))]
        if groups and not text[groups[-1][1] : m.start()].strip(" ,;"):
            start, _, cited = groups[-1]
            groups[-1] = (start, m.end(), cited + numbers)
        else:
            groups.append((m.start(), m.end(), numbers))
    return [(start, tuple(dict.fromkeys(cited))) for start, _, cited in groups]


def _figures_of(item: Evidence) -> tuple[list[Figure], int]:
    """The figures an evidence item states, and the scale its plain figures are in."""
    figures: list[Figure] = []
    for written in item.numbers:
        one = parse_figure(written)
        figures.extend([one] if one is not None else find_figures(written, every=True))
    figures.extend(find_figures(item.text, every=True))
    return figures, SCALES.get(scale_of(item.text) or "", 1)


def states(item: Evidence, figure: Figure) -> bool:
    """Whether evidence ``item`` states ``figure`` (in any format; see :func:`same_figure`)."""
    figures, scale = _figures_of(item)
    return any(same_figure(figure, source, scale) for source in figures)


def check_answer(text: str, evidence: Sequence[Evidence]) -> CitationReport:
    """Check every number ``text`` states against the evidence its sentence cites
    (``evidence[n - 1]`` for marker ``[n]``); see the module's docstring."""
    sentences = _sentences(text)
    groups = _marker_groups(text)
    known: dict[int, tuple[list[Figure], int]] = {}
    checks: list[NumberCheck] = []
    for figure in find_figures(text):
        _, end, cited = next(((s, e, c) for s, e, c in sentences if s <= figure.start < e), (0, 0, ()))
        after = next((c for g, c in groups if figure.end <= g < end), None)
        if after is not None:
            cited = after
        supported: list[int] = []
        for n in cited:
            if not 1 <= n <= len(evidence):
                continue
            if n not in known:
                known[n] = _figures_of(evidence[n - 1])
            figures, scale = known[n]
            if any(same_figure(figure, source, scale) for source in figures):
                supported.append(n)
        checks.append(NumberCheck(figure.text, figure.start, figure.end, cited, tuple(supported)))
    markers = cited_markers(text)
    return CitationReport(
        tuple(checks),
        tuple(n for n in markers if 1 <= n <= len(evidence)),
        tuple(n for n in markers if not 1 <= n <= len(evidence)),
    )


def unsupported_note(report: CitationReport) -> str:
    """The line an answer ends with when some of its numbers are unsupported ("" when none)."""
    if not report.unsupported:
        return ""
    listed = ", ".join(dict.fromkeys(n.text for n in report.unsupported))
    return f"Not supported by the cited evidence (unverified): {listed}."
