"""The Generator protocol: what writes an answer from retrieved hits, and what every
generator shares (the not-found answer, citations to exact characters of a page).

Backends: :class:`~strongroom.rag.extractive.ExtractiveGenerator` (no model) and
:class:`~strongroom.rag.llm.LLMGenerator` (a model behind the gateway); both pass
:class:`strongroom.testing.generator_contract.GeneratorContract`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from strongroom.types import Answer, Citation, Hit

__all__ = ["NOT_FOUND", "Generator", "cite"]

NOT_FOUND = "No passage in the documents you may read answers this question."


class Generator(Protocol):
    """Writes an answer from retrieved hits only. ``name`` goes into the audit record, and
    ``Answer.metadata`` says what produced the answer (at least ``generator`` and
    ``prompt_template_version``)."""

    name: str

    def generate(self, question: str, hits: Sequence[Hit]) -> Answer: ...


def cite(hit: Hit, start: int, end: int) -> Citation:
    """A citation for characters ``[start:end]`` of a hit's chunk text (page offsets)."""
    c, v = hit.chunk, hit.version
    return Citation(
        document_id=v.document_id,
        version_id=v.id,
        source=v.source,
        title=v.title,
        page=c.page,
        char_start=c.char_start + start,
        char_end=c.char_start + end,
        quote=c.text[start:end],
    )
