"""The SQLite hold store: holds kept and released once, policies replaced by name."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from strongroom.config import Settings
from strongroom.errors import StoreError
from strongroom.governance.holds import Hold, query_terms
from strongroom.governance.retention import RetentionPolicy
from strongroom.service.hold_store import open_hold_store

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def test_holds_and_policies_persist_across_opens(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    store = open_hold_store(settings)
    a = Hold("a", "M-1", "ana", "litigation", NOW, document_id="d1")
    b = Hold("b", "M-2", "ana", "inquiry", NOW, query=query_terms(["meta.ticker=AAPL"]))
    store.add(a)
    store.add(b)
    with pytest.raises(StoreError):
        store.add(a)
    assert store.release("a", "bo", NOW)
    assert not store.release("a", "cy", NOW)  # released once
    assert not store.release("nope", "cy", NOW)
    research = RetentionPolicy("research", years=7, doc_type="research_report")
    assert store.set_policy(research) is None
    shorter = RetentionPolicy("research", years=5, doc_type="research_report")
    assert store.set_policy(shorter) == research
    store.close()

    again = open_hold_store(settings)
    assert [h.id for h in again.active()] == ["b"]
    assert again.get("b") == b
    released = again.get("a")
    assert released is not None and released.released_by == "bo" and not released.active
    assert [h.id for h in again.holds()] == ["a", "b"]
    assert again.policies() == [shorter]
    assert again.remove_policy("research") == shorter
    assert again.remove_policy("research") is None
    assert again.policies() == []
    again.close()
