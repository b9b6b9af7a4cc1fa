"""index sample_items.created_at: the funnel report filters on it (no seq scan at scale)

Revision ID: b7c1e2d3f4a5
Revises: afd2384a2152
Create Date: 2026-11-28 18:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "b7c1e2d3f4a5"
down_revision: str | None = "afd2384a2152"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sample_items", schema=None) as batch_op:
        batch_op.create_index("ix_sample_items_created_at", ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sample_items", schema=None) as batch_op:
        batch_op.drop_index("ix_sample_items_created_at")
