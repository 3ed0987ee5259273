from __future__ import annotations

import numpy as np

from strongroom.store.scope import current_versions


def test_latest_published_knowable_version_wins_per_document() -> None:
    doc = np.array([0, 0, 0, 1], dtype=np.int64)
    published = np.array([1.0, 3.0, 2.0, 5.0])
    ingested = np.array([1.0, 3.0, 9.0, 5.0])
    everything = np.ones(4, dtype=bool)
    assert current_versions(doc, published, ingested, everything).tolist() == [False, True, False, True]
    before_3 = published <= 2.5
    assert current_versions(doc, published, ingested, before_3 & (ingested <= 2.5)).tolist() == [
        True,
        False,
        False,
        False,
    ]
    assert not current_versions(doc, published, ingested, np.zeros(4, dtype=bool)).any()
