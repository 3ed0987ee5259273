"""The baseline: the store's schema as it was before migrations (meta schema "1").

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import context, op

from strongroom.store.postgres_sql import schema

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    dim = context.config.attributes["dim"]
    op.execute(schema(int(dim)))  # IF NOT EXISTS throughout: a pre-migration store passes through


def downgrade() -> None:
    raise NotImplementedError("the baseline is not undone: drop the database instead")
