"""A GIN index on ``versions.acl``, so a search's scope starts from the versions its groups may read.

The ``admitted`` filter used to take the current version of every document, then test its
ACL: a sort of the whole versions table in every search (about 100 ms at 50,000 versions).
It now starts from the versions whose ACL overlaps the reader's groups (this index) and keeps
those that no later knowable version supersedes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX IF NOT EXISTS versions_acl ON versions USING gin (acl)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS versions_acl")
