"""The Embedder protocol and what every embedder shares: vectors, normalising, cache keys."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

__all__ = ["Embedder", "EmbeddingCache", "Vectors", "cache_key", "normalise"]

Vectors = npt.NDArray[np.float32]


@runtime_checkable
class Embedder(Protocol):
    """Maps texts to an ``(n, dim)`` float32 array of unit vectors.

    ``model_id`` names the model and its version; vectors of different ids never mix.
    """

    @property
    def model_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> Vectors: ...


class EmbeddingCache(Protocol):
    """Where vectors are remembered by ``cache_key`` (the store implements it)."""

    def get_vectors(self, keys: Sequence[str]) -> dict[str, Vectors]: ...


def cache_key(model_id: str, text: str) -> str:
    """The key under which ``model_id``'s vector of ``text`` is cached."""
    return hashlib.sha256(f"{model_id}\x00{text}".encode()).hexdigest()


def normalise(vectors: npt.NDArray[np.floating]) -> Vectors:
    """Rows scaled to unit length, as float32 (a zero row stays zero)."""
    out = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    result: Vectors = np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)
    return result
