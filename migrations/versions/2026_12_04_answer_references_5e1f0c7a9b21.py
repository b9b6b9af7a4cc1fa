"""answer_references: human reference answers for answers (ingest references), several per answer,
unique per answer by the sha256 of the text; the metrics-vs-humans report scores against them

Revision ID: 5e1f0c7a9b21
Revises: 43552cd20f04
Create Date: 2026-12-04 18:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import audit.base

revision: str = "5e1f0c7a9b21"
down_revision: str | None = "43552cd20f04"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "answer_references",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("answer_id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.Text(), nullable=False),
        sa.Column("reference_hash", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=128), nullable=True),
        sa.Column("created_at", audit.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["answer_id"], ["answers.id"], name=op.f("fk_answer_references_answer_id_answers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_answer_references")),
        sa.UniqueConstraint(
            "answer_id", "reference_hash", name=op.f("uq_answer_references_answer_id_reference_hash")
        ),
    )


def downgrade() -> None:
    op.drop_table("answer_references")
