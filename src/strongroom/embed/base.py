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
    """Maps texts to an ``(n, dim)`` float32 array of unit vectors, one row per text, in order.

    ``model_id`` names the model and its version; vectors of different ids never mix. A row
    may be all zeros only for a text with nothing to embed (``""``, punctuation), where a
    model without a vocabulary for it has no direction to give. The same text gets the same
    vector whatever else is in the batch (to rounding; an int8 model's to about 1%), an
    empty batch gives ``(0, dim)``, and text over the model's window is truncated, not refused.
    :class:`strongroom.testing.embedder_contract.EmbedderContract` checks all of this::

        vectors = embedder.embed(["net sales", "dividend per share"])
        vectors.shape == (2, embedder.dim)
    """

    @property
    def model_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> Vectors: ...


class EmbeddingCache(Protocol):
    """Where vectors are remembered by ``cache_key`` (the store implements it, as part of
    its ``Writable``; :class:`strongroom.testing.store_contract.StoreContract` checks it)::

        known = cache.get_vectors([cache_key(embedder.model_id, t) for t in texts])
    """

    def get_vectors(self, keys: Sequence[str]) -> dict[str, Vectors]:
        """The vectors held for ``keys`` (keys without one are left out); a deleted
        document's vectors are no longer held."""
        ...


def cache_key(model_id: str, text: str) -> str:
    """The key under which ``model_id``'s vector of ``text`` is cached."""
    return hashlib.sha256(f"{model_id}\x00{text}".encode()).hexdigest()


def normalise(vectors: npt.NDArray[np.floating]) -> Vectors:
    """Rows scaled to unit length, as float32 (a zero row stays zero)."""
    out = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    result: Vectors = np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)
    return result
