"""evaluation_items.wrong_value: the answer missed a key value and stated another value of its type
(a confidently wrong answer); null on rows judged before the column existed

Revision ID: 9d2b7e4c1a60
Revises: 5e1f0c7a9b21
Create Date: 2026-12-04 21:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9d2b7e4c1a60"
down_revision: str | None = "5e1f0c7a9b21"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("evaluation_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("wrong_value", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("evaluation_items", schema=None) as batch_op:
        batch_op.drop_column("wrong_value")
