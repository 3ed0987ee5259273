"""A trainable document-type classifier: multinomial logistic regression over embeddings.

Users fit it on their own labelled documents (``strongroom classify train``); it is plain
numpy (no new dependency), deterministic for a seed, and saved as a self-describing
``.npz`` (labels, weights, the embedding model id it was trained with) written to a
temporary name and moved into place. A model only classifies vectors from the same
embedding model.

    >>> import numpy as np
    >>> x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]], dtype=np.float32)
    >>> model = LogisticClassifier.fit(x, ["a", "a", "b", "b"], model_id="toy")
    >>> model.predict(x)[0][0]
    'a'
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from strongroom.errors import ConfigError
from strongroom.types import ParsedDocument

__all__ = ["LogisticClassifier", "document_text"]

Matrix = npt.NDArray[np.float64]


def document_text(parsed: ParsedDocument, limit: int = 2000) -> str:
    """The text a document is embedded by for classification: its title and first characters."""
    text = " ".join(p.text for p in parsed.pages)[:limit]
    return f"{parsed.title}\n{text}" if parsed.title else text


def _softmax(z: Matrix) -> Matrix:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: Matrix = e / e.sum(axis=1, keepdims=True)
    return out


@dataclass(frozen=True)
class LogisticClassifier:
    """Weights ``(dim + 1, classes)`` (last row the bias), class labels and the embedding model id."""

    labels: tuple[str, ...]
    weights: Matrix
    model_id: str

    @classmethod
    def fit(
        cls,
        vectors: npt.NDArray[np.floating],
        labels: Sequence[str],
        model_id: str,
        *,
        l2: float = 1e-3,
        epochs: int = 500,
        learning_rate: float = 0.5,
    ) -> LogisticClassifier:
        """Fit by full-batch gradient descent on L2-regularised cross-entropy."""
        if len(vectors) != len(labels) or not len(labels):
            raise ConfigError("training needs as many labels as documents, and at least one document")
        classes = tuple(sorted(set(labels)))
        index = {c: i for i, c in enumerate(classes)}
        x = np.hstack([np.asarray(vectors, dtype=np.float64), np.ones((len(labels), 1))])
        y = np.zeros((len(labels), len(classes)))
        y[np.arange(len(labels)), [index[label] for label in labels]] = 1.0
        w = np.zeros((x.shape[1], len(classes)))
        for _ in range(epochs):
            grad = x.T @ (_softmax(x @ w) - y) / len(labels) + l2 * w
            w -= learning_rate * grad
        return cls(classes, w, model_id)

    def probabilities(self, vectors: npt.NDArray[np.floating]) -> Matrix:
        """Class probabilities ``(n, classes)`` in :attr:`labels` order."""
        x = np.hstack([np.asarray(vectors, dtype=np.float64), np.ones((len(vectors), 1))])
        if x.shape[1] != self.weights.shape[0]:
            raise ConfigError(
                f"vectors have {x.shape[1] - 1} dimensions but the classifier was trained on "
                f"{self.weights.shape[0] - 1}; use the embedder it was trained with ({self.model_id})"
            )
        return _softmax(x @ self.weights)

    def predict(self, vectors: npt.NDArray[np.floating]) -> list[tuple[str, float]]:
        """``(label, probability)`` per vector."""
        probs = self.probabilities(vectors)
        best = probs.argmax(axis=1)
        return [(self.labels[int(i)], float(probs[row, i])) for row, i in enumerate(best)]

    def save(self, path: Path) -> None:
        """Write atomically: a temporary file, then ``os.replace``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("wb") as fh:
            np.savez(
                fh,
                labels=np.array(self.labels),
                weights=self.weights,
                model_id=np.array(self.model_id),
                complete=np.array(True),
            )
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> LogisticClassifier:
        """Read a classifier written by :meth:`save`."""
        try:
            with np.load(path, allow_pickle=False) as data:
                if not bool(data["complete"]):
                    raise ConfigError(f"{path}: classifier file is incomplete; train it again")
                return cls(
                    tuple(str(x) for x in data["labels"]),
                    np.asarray(data["weights"], dtype=np.float64),
                    str(data["model_id"]),
                )
        except (OSError, KeyError, ValueError) as exc:
            raise ConfigError(f"{path}: not a strongroom classifier ({exc}); train one with 'classify train'") from exc
