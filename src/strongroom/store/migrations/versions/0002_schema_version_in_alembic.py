"""The schema's version lives in ``alembic_version`` now, not in ``meta``.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM meta WHERE key = 'schema'")


def downgrade() -> None:
    op.execute("INSERT INTO meta VALUES ('schema', '1') ON CONFLICT DO NOTHING")
