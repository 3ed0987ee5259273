"""The int8 ONNX query encoder: built once from the bundled MiniLM, checked, and compatible."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from strongroom.config import Settings
from strongroom.embed import CachedEmbedder, SentenceTransformerEmbedder, create_embedder
from strongroom.embed.query_encoder import MIN_AGREEMENT, OnnxQueryEncoder, create_query_encoder
from strongroom.errors import ConfigError
from strongroom.testing import HashEmbedder
from strongroom.testing.embedder_contract import SemanticEmbedderContract

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerEmbedder:
    embedder = create_embedder(Settings(embedder="minilm"))
    assert isinstance(embedder, SentenceTransformerEmbedder)
    return embedder


@pytest.fixture(scope="module")
def built(
    minilm: SentenceTransformerEmbedder, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, OnnxQueryEncoder]:
    cache = tmp_path_factory.mktemp("models")
    return cache, OnnxQueryEncoder(minilm, cache)


@pytest.mark.slow
class TestOnnxQueryEncoder(SemanticEmbedderContract):
    """Its activations are quantized per batch, so a text's vector moves a little with the
    other texts of its batch (cosine distance about 0.01 on the contract's texts)."""

    tolerance = 0.03

    @pytest.fixture
    def embedder(self, built: tuple[Path, OnnxQueryEncoder]) -> OnnxQueryEncoder:
        return built[1]


def test_query_vectors_agree_with_the_full_model_and_rank_the_same(
    minilm: SentenceTransformerEmbedder, built: tuple[Path, OnnxQueryEncoder]
) -> None:
    _, encoder = built
    assert encoder.model_id == minilm.model_id and encoder.dim == minilm.dim
    assert encoder.agreement >= MIN_AGREEMENT
    passages = [
        "Total net sales were $81.8 billion for the quarter, down 1% year over year.",
        "The Company repurchased $15 billion of its common stock during the period.",
        "Research and development expense increased due to headcount-related costs.",
        "Cash, cash equivalents and marketable securities totalled $162 billion.",
    ]
    queries = ["net sales for the quarter", "stock buybacks", "R&D spending growth", "how much cash does it hold"]
    docs = minilm.embed(passages)
    full, int8 = minilm.embed(queries), encoder.embed(queries)
    assert int8.dtype == np.float32 and int8.shape == full.shape
    np.testing.assert_allclose(np.linalg.norm(int8, axis=1), 1.0, rtol=1e-5)
    assert np.min(np.sum(full * int8, axis=1)) >= MIN_AGREEMENT
    assert list(np.argmax(int8 @ docs.T, axis=1)) == list(np.argmax(full @ docs.T, axis=1)) == [0, 1, 2, 3]
    assert encoder.embed([]).shape == (0, minilm.dim)


def test_the_fast_tokenizer_feeds_the_model_exactly_what_its_own_tokenizer_would(
    minilm: SentenceTransformerEmbedder, built: tuple[Path, OnnxQueryEncoder]
) -> None:
    _, encoder = built
    assert encoder._tokenizer is not None  # the bundled MiniLM takes the fast path
    texts = ["  What was Apple's revenue in Q3 2023?  ", "CET1", "net " * 600, "ÉLAN s.a. — coupon 4.25%"]
    via_model = minilm.model.tokenize([t.strip() for t in texts])
    fast = encoder._tokenizer.encode_batch([t.strip() for t in texts])
    for name, column in (("input_ids", "ids"), ("attention_mask", "attention_mask"), ("token_type_ids", "type_ids")):
        assert [getattr(e, column) for e in fast] == via_model[name].tolist()
    slow = OnnxQueryEncoder.__new__(OnnxQueryEncoder)
    slow.__dict__.update(encoder.__dict__, _tokenizer=None)  # the fallback path, same session
    np.testing.assert_array_equal(slow.embed(texts), encoder.embed(texts))


def test_the_build_is_kept_and_a_damaged_one_is_rebuilt(
    minilm: SentenceTransformerEmbedder, built: tuple[Path, OnnxQueryEncoder]
) -> None:
    cache, _ = built
    (model,) = cache.glob("*-int8.onnx")
    assert not list(cache.glob("*.tmp"))
    stamp = model.stat().st_mtime_ns
    OnnxQueryEncoder(minilm, cache)
    assert model.stat().st_mtime_ns == stamp  # reused, not rebuilt
    model.write_bytes(b"not an onnx model")
    again = OnnxQueryEncoder(minilm, cache)
    assert model.stat().st_size > 1_000_000 and again.agreement >= MIN_AGREEMENT


def test_the_service_factory_keeps_the_model_by_default_and_refuses_what_it_cannot_quantize(
    minilm: SentenceTransformerEmbedder, tmp_path: Path
) -> None:
    hashed = HashEmbedder()
    assert create_query_encoder("model", hashed, tmp_path) is hashed
    with pytest.raises(ConfigError, match="local sentence-transformers"):
        create_query_encoder("onnx-int8", hashed, tmp_path)


def test_a_cached_embedder_is_unwrapped(
    minilm: SentenceTransformerEmbedder, built: tuple[Path, OnnxQueryEncoder]
) -> None:
    class _Cache:
        def get_vectors(self, keys: object) -> dict[str, np.ndarray]:
            return {}

    cache, _ = built
    encoder = create_query_encoder("onnx-int8", CachedEmbedder(minilm, _Cache()), cache)
    assert isinstance(encoder, OnnxQueryEncoder)
