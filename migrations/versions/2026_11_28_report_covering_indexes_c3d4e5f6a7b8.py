"""covering indexes for the reports: current ratings by day, answers' report columns, first rating

- ``ix_ratings_report`` (is_current, created_at, then every column a report reads): the quality,
  agreement, calibration and fairness reports read a window's current ratings from the index alone;
- ``ix_answers_report`` (id, model_version_id, asker_department_id, cites_other_department): the
  reports look each rated answer up in a few megabytes of index instead of the wide answers rows;
- ``ix_ratings_answer_id_created_at`` replaces ``ix_ratings_answer_id`` (same leading column): the
  funnel finds each sampled answer's first rating in the index.

Revision ID: c3d4e5f6a7b8
Revises: b7c1e2d3f4a5
Create Date: 2026-11-28 20:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "c3d4e5f6a7b8"
down_revision: str | None = "b7c1e2d3f4a5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RATINGS_REPORT_COLUMNS = [
    "is_current",
    "created_at",
    "answer_id",
    "auditor_id",
    "assignment_id",
    "accuracy",
    "completeness",
    "relevance",
    "coherence",
    "bias_flag",
    "sources_correct",
    "favoured_department_id",
    "disfavoured_department_id",
]


def upgrade() -> None:
    with op.batch_alter_table("ratings", schema=None) as batch_op:
        batch_op.create_index("ix_ratings_report", RATINGS_REPORT_COLUMNS, unique=False)
        batch_op.create_index("ix_ratings_answer_id_created_at", ["answer_id", "created_at"], unique=False)
        batch_op.drop_index("ix_ratings_answer_id")
    with op.batch_alter_table("answers", schema=None) as batch_op:
        batch_op.create_index(
            "ix_answers_report",
            ["id", "model_version_id", "asker_department_id", "cites_other_department"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("answers", schema=None) as batch_op:
        batch_op.drop_index("ix_answers_report")
    with op.batch_alter_table("ratings", schema=None) as batch_op:
        batch_op.create_index("ix_ratings_answer_id", ["answer_id"], unique=False)
        batch_op.drop_index("ix_ratings_answer_id_created_at")
        batch_op.drop_index("ix_ratings_report")
