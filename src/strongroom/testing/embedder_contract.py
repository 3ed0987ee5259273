"""The Embedder contract: every embedder's test subclasses :class:`EmbedderContract`.

A backend test supplies one fixture, ``embedder`` (ready to embed), and subclasses the
contract that says how much its vectors know: :class:`EmbedderContract` (nothing about
closeness: a test server's made-up vectors), :class:`LexicalEmbedderContract` (texts
sharing words are closer: feature hashing) or :class:`SemanticEmbedderContract` (that, and
paraphrases with no word in common are closer than unrelated texts: a real model)::

    class TestHashEmbedder(LexicalEmbedderContract):
        @pytest.fixture
        def embedder(self) -> HashEmbedder:
            return HashEmbedder(dim=64)

The contract only uses the protocol: ``model_id``, ``dim`` and ``embed``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from strongroom.embed.base import Embedder, Vectors

__all__ = ["EmbedderContract", "LexicalEmbedderContract", "SemanticEmbedderContract"]

#: passages of a filing; the first and the last share most of their words
TEXTS = (
    "Total net sales rose to 82,959 million in the quarter.",
    "The board approved a quarterly dividend of 0.24 per share.",
    "Rain is expected over the mountains tomorrow.",
    "Net sales for the quarter increased to 82,959 million.",
)

#: texts without a word in them: the only ones whose vector may be all zeros
NOTHING_TO_EMBED = ("", "   ", "?!")

_LONG = " ".join(["Common Equity Tier 1 capital ratio of 14.2% at the end of the period;"] * 1500)


def _cosine(a: Vectors, b: Vectors) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def _assert_same(got: Vectors, expected: Vectors, tolerance: float) -> None:
    """Row by row, ``got`` points where ``expected`` does, to ``tolerance`` in cosine distance."""
    assert got.shape == expected.shape
    for i, (a, b) in enumerate(zip(got, expected, strict=True)):
        if not a.any() and not b.any():
            continue  # both zero: the same text with nothing to embed
        distance = 1.0 - _cosine(a, b)
        assert distance <= tolerance, f"row {i}: cosine distance {distance:.2e} > {tolerance:.0e}"


class EmbedderContract:
    """Behaviour every Embedder must have.

    ``tolerance`` is the largest cosine distance allowed between two vectors of one text
    (from separate calls, alone or in a batch): float rounding, or more for an int8 model
    whose activations are quantized per batch.
    """

    tolerance: ClassVar[float] = 1e-5

    def test_vectors_are_one_float32_row_of_dim_per_text(self, embedder: Embedder) -> None:
        vectors = embedder.embed(list(TEXTS))
        assert isinstance(embedder.dim, int) and embedder.dim > 0
        assert isinstance(vectors, np.ndarray)
        assert vectors.shape == (len(TEXTS), embedder.dim)
        assert vectors.dtype == np.float32
        assert np.isfinite(vectors).all()

    def test_rows_are_unit_vectors_and_only_wordless_text_may_be_zero(self, embedder: Embedder) -> None:
        norms = np.linalg.norm(embedder.embed(list(TEXTS)), axis=1)
        np.testing.assert_allclose(norms, 1.0, atol=1e-5)
        blank = embedder.embed(list(NOTHING_TO_EMBED))
        assert blank.shape == (len(NOTHING_TO_EMBED), embedder.dim) and np.isfinite(blank).all()
        for text, norm in zip(NOTHING_TO_EMBED, np.linalg.norm(blank, axis=1), strict=True):
            assert abs(norm - 1.0) < 1e-5 or norm == 0.0, f"{text!r} has a vector of length {norm}"

    def test_an_empty_batch_gives_zero_rows(self, embedder: Embedder) -> None:
        vectors = embedder.embed([])
        assert vectors.shape == (0, embedder.dim)
        assert vectors.dtype == np.float32

    def test_the_same_text_gives_the_same_vector(self, embedder: Embedder) -> None:
        first, again = embedder.embed(list(TEXTS)), embedder.embed(list(TEXTS))
        _assert_same(again, first, self.tolerance)
        twice = embedder.embed([TEXTS[0], TEXTS[1], TEXTS[0]])
        _assert_same(twice[2:], twice[:1], self.tolerance)

    def test_a_batch_gives_what_one_text_at_a_time_gives(self, embedder: Embedder) -> None:
        batch = embedder.embed(list(TEXTS))
        for i, text in enumerate(TEXTS):
            _assert_same(embedder.embed([text]), batch[i : i + 1], self.tolerance)

    def test_rows_follow_the_order_of_the_texts(self, embedder: Embedder) -> None:
        forward = embedder.embed(list(TEXTS))
        backward = embedder.embed(list(reversed(TEXTS)))
        _assert_same(backward[::-1], forward, self.tolerance)
        # different texts get different vectors, so a shuffle could not pass unseen
        assert 1.0 - _cosine(forward[0], forward[2]) > 10 * self.tolerance

    def test_model_id_and_dim_are_stable(self, embedder: Embedder) -> None:
        model_id, dim = embedder.model_id, embedder.dim
        assert isinstance(model_id, str) and model_id.strip()
        embedder.embed(list(TEXTS))
        assert (embedder.model_id, embedder.dim) == (model_id, dim)  # loading the model changes neither

    def test_a_long_text_is_embedded_not_refused(self, embedder: Embedder) -> None:
        vectors = embedder.embed([_LONG, TEXTS[0]])
        assert vectors.shape == (2, embedder.dim)
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


class LexicalEmbedderContract(EmbedderContract):
    """An embedder whose vectors of texts sharing words are closer than of texts sharing none."""

    def test_texts_sharing_words_are_closer_than_texts_sharing_none(self, embedder: Embedder) -> None:
        sales, _, rain, paraphrase = embedder.embed(list(TEXTS))
        assert _cosine(sales, paraphrase) > _cosine(sales, rain) + 0.2


class SemanticEmbedderContract(LexicalEmbedderContract):
    """An embedder that knows meaning: paraphrases sharing no word are closer than unrelated texts."""

    def test_paraphrases_are_closer_than_unrelated_texts(self, embedder: Embedder) -> None:
        revenue, sales, rain = embedder.embed(
            ["The company's revenue increased", "Sales grew strongly", "It will rain in the mountains tomorrow"]
        )
        assert _cosine(revenue, sales) > _cosine(revenue, rain) + 0.2
