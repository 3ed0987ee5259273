from __future__ import annotations

import json
import threading
import typing
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from strongroom.config import Settings
from strongroom.embed import (
    CachedEmbedder,
    LazyEmbedder,
    OpenAIEmbedder,
    SentenceTransformerEmbedder,
    cache_key,
    create_embedder,
)
from strongroom.errors import ConfigError, EmbeddingError
from strongroom.testing import HashEmbedder
from strongroom.testing.embedder_contract import (
    NOTHING_TO_EMBED,
    TEXTS,
    LexicalEmbedderContract,
    SemanticEmbedderContract,
)


class _Embeddings(BaseHTTPRequestHandler):
    """A tiny OpenAI-compatible /v1/embeddings server: vector i = [len(text), i, 1], or for a
    model named ``hash-<dim>`` the HashEmbedder's vector (un-normalised: the client scales it)."""

    seen_auth: typing.ClassVar[list[str]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen_auth.append(self.headers.get("Authorization", ""))
        if body["model"] == "broken":
            self.send_response(500)
            self.end_headers()
            return
        if body["model"].startswith("hash-"):
            vectors = 3.0 * HashEmbedder(dim=int(body["model"].removeprefix("hash-"))).embed(body["input"])
            data = [{"index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)]
        else:
            data = [{"index": i, "embedding": [float(len(t)), float(i), 1.0]} for i, t in enumerate(body["input"])]
        payload = json.dumps({"data": list(reversed(data)), "model": body["model"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Embeddings)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_openai_compatible_embeddings_over_http(server: str) -> None:
    embedder = OpenAIEmbedder(server, "tei-minilm", api_key="s3cret", dim=3)
    vectors = embedder.embed(["ab", "abcd"])
    assert vectors.shape == (2, 3)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    assert vectors[1, 0] > vectors[0, 0]  # order restored from "index", not response order
    assert _Embeddings.seen_auth[-1] == "Bearer s3cret"
    assert embedder.model_id == "openai:tei-minilm"


def test_openai_errors_are_clear(server: str) -> None:
    with pytest.raises(EmbeddingError, match="embedding endpoint failed"):
        OpenAIEmbedder(server, "broken", dim=3).embed(["x"])
    with pytest.raises(EmbeddingError, match="shape"):
        OpenAIEmbedder(server, "tei", dim=8).embed(["x"])
    with pytest.raises(EmbeddingError, match="failed"):
        OpenAIEmbedder("http://127.0.0.1:9", "tei", dim=3, timeout=2).embed(["x"])
    with pytest.raises(ConfigError):
        create_embedder(Settings(embedder="openai"))


class _DictCache:
    def __init__(self) -> None:
        self.vectors: dict[str, np.ndarray] = {}

    def get_vectors(self, keys: list[str]) -> dict[str, np.ndarray]:  # type: ignore[override]
        return {k: self.vectors[k] for k in keys if k in self.vectors}


def test_the_same_text_is_never_embedded_twice() -> None:
    inner = HashEmbedder(dim=16)
    cache = _DictCache()
    cached = CachedEmbedder(inner, cache)
    first = cached.embed(["alpha", "beta", "alpha"])
    assert cached.misses == 2 and cached.hits == 1
    cache.vectors.update({cache_key(inner.model_id, t): v for t, v in zip(["alpha", "beta"], first, strict=False)})
    again = cached.embed(["beta", "alpha"])
    assert cached.misses == 2 and cached.hits == 3
    np.testing.assert_array_equal(again, first[[1, 0]])


def test_bundled_model_id_records_its_window() -> None:
    assert Settings().embed_max_seq_length == 512
    with pytest.raises(ConfigError, match="embedder_model"):
        create_embedder(Settings(embedder="sentence-transformers"))


class TestHashEmbedder(LexicalEmbedderContract):
    @pytest.fixture
    def embedder(self) -> HashEmbedder:
        return HashEmbedder(dim=64)


class TestLazyEmbedder(LexicalEmbedderContract):
    @pytest.fixture
    def embedder(self) -> LazyEmbedder:
        return LazyEmbedder(Settings(embedder="hash"))


class TestCachedEmbedder(LexicalEmbedderContract):
    """Over a cache that holds half the texts the contract embeds: hits and misses mix in a batch."""

    @pytest.fixture
    def embedder(self) -> CachedEmbedder:
        inner = HashEmbedder(dim=32)
        cache = _DictCache()
        held = [*TEXTS[::2], *NOTHING_TO_EMBED[::2]]
        cache.vectors.update({cache_key(inner.model_id, t): v for t, v in zip(held, inner.embed(held), strict=True)})
        return CachedEmbedder(inner, cache)


@pytest.mark.integration
class TestOpenAIEmbedder(LexicalEmbedderContract):
    """Over real HTTP, against the test server serving HashEmbedder vectors (so they mean words)."""

    @pytest.fixture
    def embedder(self, server: str) -> OpenAIEmbedder:
        return OpenAIEmbedder(server, "hash-64", dim=64)


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerEmbedder:
    embedder = create_embedder(Settings(embedder="minilm"))
    assert isinstance(embedder, SentenceTransformerEmbedder)
    return embedder


@pytest.mark.slow
class TestSentenceTransformerEmbedder(SemanticEmbedderContract):
    """The bundled all-MiniLM-L6-v2, loaded offline."""

    @pytest.fixture
    def embedder(self, minilm: SentenceTransformerEmbedder) -> SentenceTransformerEmbedder:
        return minilm


@pytest.mark.slow
def test_a_lazy_bundled_embedder_knows_the_loaded_models_id_and_dim_before_loading_it(
    minilm: SentenceTransformerEmbedder,
) -> None:
    lazy = LazyEmbedder(Settings(embedder="minilm"))
    described = lazy.model_id, lazy.dim
    assert not lazy.loaded
    assert lazy.embed(["net sales"]).shape == (1, minilm.dim)
    assert lazy.loaded and described == (lazy.model_id, lazy.dim) == (minilm.model_id, minilm.dim)
