from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from strongroom.testing import HashEmbedder

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SEC10Q = SHARED / "corpus" / "sec10q"


@pytest.fixture
def embedder() -> HashEmbedder:
    return HashEmbedder(dim=64)


@pytest.fixture
def sec10q() -> Path:
    if not (SEC10Q / "docs").is_dir():
        pytest.skip(f"the sec10q corpus is not at {SEC10Q}")
    return SEC10Q


@pytest.fixture
def stream() -> Iterator[str]:
    """A fresh Redis stream name; the stream, its dead letters and its errors are deleted after."""
    import redis

    from tests.redis_service import REDIS_URL

    name = f"strongroom:test:{uuid.uuid4().hex[:10]}"
    yield name
    with redis.Redis.from_url(REDIS_URL) as r:
        r.delete(name, f"{name}:dead", f"{name}:errors")
