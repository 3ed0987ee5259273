"""The SQLite conversation store (tables in the catalog file) passes the conversation store contract."""

from __future__ import annotations

from pathlib import Path

import pytest

from strongroom.service.conversation_store import SqliteConversationStore
from strongroom.testing.conversation_contract import ConversationStoreContract, Opener


class TestSqliteConversations(ConversationStoreContract):
    @pytest.fixture
    def conversations(self, tmp_path: Path) -> Opener:
        return lambda: SqliteConversationStore(tmp_path / "catalog.sqlite3")
