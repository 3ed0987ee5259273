from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from strongroom.errors import ConfigError
from strongroom.ingest.parsers import parse
from strongroom.ingest.understand.synth import generate
from strongroom.ingest.understand.trainable import LogisticClassifier, document_text
from strongroom.testing import HashEmbedder

NOTES = [
    "Dear client, thank you for your letter about the account. Kind regards, the desk",
    "Dear Mr Jones, we confirm receipt of your instructions. Best regards, operations",
    "Dear Ms Lee, please find the statement attached. Sincerely, client services",
    "Dear team, the meeting moved to Tuesday. Regards, Ann",
]


def test_fits_separable_classes_and_round_trips(tmp_path: Path) -> None:
    embedder = HashEmbedder(dim=128)
    sheets = [document_text(parse(s.data, s.name)) for s in generate(8, seed=9)]
    texts = sheets + NOTES * 2
    labels = ["term_sheet"] * len(sheets) + ["correspondence"] * len(NOTES) * 2
    model = LogisticClassifier.fit(embedder.embed(texts), labels, model_id=embedder.model_id)
    held_out = [document_text(parse(s.data, s.name)) for s in generate(4, seed=10)] + [
        "Dear Sir, your card has been sent. Kind regards, the bank"
    ]
    predicted = [label for label, _ in model.predict(embedder.embed(held_out))]
    assert predicted == ["term_sheet"] * 4 + ["correspondence"]
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = LogisticClassifier.load(path)
    assert loaded.labels == model.labels and loaded.model_id == embedder.model_id
    np.testing.assert_allclose(
        loaded.probabilities(embedder.embed(held_out)), model.probabilities(embedder.embed(held_out))
    )


def test_wrong_dimension_and_bad_files_are_config_errors(tmp_path: Path) -> None:
    model = LogisticClassifier.fit(np.eye(3, dtype=np.float32), ["a", "b", "c"], model_id="toy")
    with pytest.raises(ConfigError, match="dimensions"):
        model.predict(np.ones((1, 5), dtype=np.float32))
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="not a strongroom classifier"):
        LogisticClassifier.load(bad)
