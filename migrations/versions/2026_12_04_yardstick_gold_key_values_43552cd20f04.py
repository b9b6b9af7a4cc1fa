"""the yardstick: gold items name the values a right answer states (key_values), and every judged
gold answer is stored per item (evaluation_items), so any aggregate can be recomputed from the rows

Revision ID: 43552cd20f04
Revises: c3d4e5f6a7b8
Create Date: 2026-12-04 17:38:51
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
import audit.base

revision: str = '43552cd20f04'
down_revision: str | None = 'c3d4e5f6a7b8'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('evaluation_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('system', sa.String(length=128), nullable=False),
    sa.Column('model_version_id', sa.Integer(), nullable=True),
    sa.Column('signature', sa.String(length=64), nullable=False),
    sa.Column('gold_item_id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('prediction', sa.Text(), nullable=False),
    sa.Column('cited_document_ids', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('retrieved_document_ids', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('fact_correct', sa.Boolean(), nullable=False),
    sa.Column('citation_correct', sa.Boolean(), nullable=False),
    sa.Column('cites_outdated', sa.Boolean(), nullable=False),
    sa.Column('retrieval_at_1', sa.Boolean(), nullable=False),
    sa.Column('retrieval_at_k', sa.Boolean(), nullable=False),
    sa.Column('rouge_l', sa.Float(), nullable=False),
    sa.Column('f1', sa.Float(), nullable=False),
    sa.Column('created_at', audit.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_evaluation_items_department_id_departments')),
    sa.ForeignKeyConstraint(['gold_item_id'], ['gold_items.id'], name=op.f('fk_evaluation_items_gold_item_id_gold_items')),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_versions.id'], name=op.f('fk_evaluation_items_model_version_id_model_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_evaluation_items')),
    sa.UniqueConstraint('system', 'signature', 'gold_item_id', name=op.f('uq_evaluation_items_system_signature_gold_item_id'))
    )
    with op.batch_alter_table('evaluation_items', schema=None) as batch_op:
        batch_op.create_index('ix_evaluation_items_model_version_id', ['model_version_id'], unique=False)

    with op.batch_alter_table('gold_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('key_values', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False, server_default=sa.text("'[]'")))



def downgrade() -> None:
    with op.batch_alter_table('gold_items', schema=None) as batch_op:
        batch_op.drop_column('key_values')

    with op.batch_alter_table('evaluation_items', schema=None) as batch_op:
        batch_op.drop_index('ix_evaluation_items_model_version_id')

    op.drop_table('evaluation_items')
