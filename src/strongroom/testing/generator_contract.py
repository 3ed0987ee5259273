"""The contract every answer :class:`~strongroom.rag.Generator` passes: answers come from
the hits given and cite them exactly, or say nothing was found.

A generator's test subclasses :class:`GeneratorContract` and supplies ``answering``: a
factory that takes the reply a scripted model should give (a generator without a model
ignores it) and returns the generator::

    class TestExtractive(GeneratorContract):
        @pytest.fixture
        def answering(self): return lambda reply: ExtractiveGenerator()
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from strongroom.rag import NOT_FOUND, Generator
from strongroom.types import Answer, Chunk, DocumentVersion, Hit

__all__ = ["REPLY", "Answering", "GeneratorContract", "hit"]

#: a generator given the reply its scripted model writes (``[n]`` cites the n-th hit)
Answering = Callable[[str], Generator]
QUESTION = "What was quarterly revenue?"
REPLY = "Quarterly revenue was 1,234 million [1]."


def hit(source: str, page: int, text: str, char_start: int) -> Hit:
    """A hit on ``text``, found at ``char_start`` of page ``page`` of ``source``."""
    at = datetime(2024, 1, 2, tzinfo=UTC)
    version = DocumentVersion(
        id=f"version-of-{source}", document_id=f"doc-{source}", source=f"/reports/{source}", title=source,
        media_type="text/plain", doc_type="note", acl=frozenset({"public"}), published_at=at, ingested_at=at,
        size=100, pages=5,
    )  # fmt: skip
    end = char_start + len(text)
    chunk = Chunk(Chunk.make_id(version.id, page, char_start, end), version.id, 0, page, char_start, end, text)
    return Hit(chunk, version, 1.0)


HITS = (
    hit("q1.txt", 2, "Quarterly revenue was 1,234 million, up 5%. Costs were flat.", 40),
    hit("desk.md", 3, "The Example Bank notes pay a coupon of 4.25% semi-annually.", 7),
)


def _assert_cites_only_the_hits(answer: Answer, hits: tuple[Hit, ...]) -> None:
    by_version = {h.version.id: h for h in hits}
    for citation in answer.citations:
        source = by_version[citation.version_id]  # a citation of anything else is a KeyError
        chunk = source.chunk
        assert citation.page == chunk.page
        assert chunk.char_start <= citation.char_start < citation.char_end <= chunk.char_end
        assert chunk.text[citation.char_start - chunk.char_start : citation.char_end - chunk.char_start] == (
            citation.quote
        )


class GeneratorContract:
    """What every generator must do."""

    def test_an_answer_cites_the_passages_it_rests_on_exactly(self, answering: Answering) -> None:
        answer = answering(REPLY).generate(QUESTION, HITS)
        assert answer.found and answer.citations and "1,234" in answer.text
        assert answer.question == QUESTION and answer.hits == HITS
        _assert_cites_only_the_hits(answer, HITS)
        assert {c.version_id for c in answer.citations} == {HITS[0].version.id}

    def test_with_nothing_retrieved_it_says_so_and_cites_nothing(self, answering: Answering) -> None:
        answer = answering(REPLY).generate(QUESTION, ())
        assert not answer.found and answer.citations == () and answer.text == NOT_FOUND

    def test_an_answer_says_what_produced_it(self, answering: Answering) -> None:
        generator = answering(REPLY)
        answer = generator.generate(QUESTION, HITS)
        assert generator.name and answer.generator
        assert answer.metadata["generator"] and answer.metadata["prompt_template_version"]
