"""A deterministic embedder with no weights: ``embedder = "hash"`` in the settings.

Feature hashing of words, so texts sharing words get similar vectors. It runs anywhere in
microseconds, which makes it the embedder of tests and of smoke runs; it is no model of
meaning, and searches with it are keyword searches in disguise.

>>> e = HashEmbedder(dim=16)
>>> bool((e.embed(["revenue"]) == e.embed(["revenue"])).all())
True
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from strongroom.embed.base import Vectors, normalise

__all__ = ["HashEmbedder"]

_WORD = re.compile(r"\w+")


class HashEmbedder:
    """Feature-hashing bag of words: texts sharing words get similar vectors. No weights."""

    def __init__(self, dim: int = 64) -> None:
        self.dim = dim
        self.model_id = f"hash-{dim}"
        self.calls = 0

    def embed(self, texts: Sequence[str]) -> Vectors:
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
                h = int.from_bytes(digest, "little")
                out[i, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
        return normalise(out)
