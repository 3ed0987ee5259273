"""Fixtures of the agent's tests: the throwaway PostgreSQL of the store tests (for the
PostgreSQL checkpointer)."""

from __future__ import annotations

from tests.store.conftest import server_url

__all__ = ["server_url"]
