"""initial schema: the whole auditloop domain, and an append-only audit log

Revision ID: afd2384a2152
Revises: (none)
Create Date: 2026-11-28 15:52:10.418487
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
import audit.base

revision: str = 'afd2384a2152'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


APPEND_ONLY_SQLITE = [
    "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
]
APPEND_ONLY_POSTGRES = [
    "CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$",
    "CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log "
    "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
]


def _append_only_audit_log() -> None:
    statements = APPEND_ONLY_POSTGRES if op.get_bind().dialect.name == "postgresql" else APPEND_ONLY_SQLITE
    for statement in statements:
        op.execute(statement)


def _drop_append_only_audit_log() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")


def upgrade() -> None:

    op.create_table('departments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('created_at', audit.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_departments')),
    sa.UniqueConstraint('name', name=op.f('uq_departments_name'))
    )
    op.create_table('documents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('external_id', sa.String(length=128), nullable=False),
    sa.Column('family', sa.String(length=128), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=500), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('effective_date', sa.Date(), nullable=False),
    sa.Column('superseded_by_id', sa.Integer(), nullable=True),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', audit.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('version >= 1', name=op.f('ck_documents_version_positive')),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_documents_department_id_departments')),
    sa.ForeignKeyConstraint(['superseded_by_id'], ['documents.id'], name=op.f('fk_documents_superseded_by_id_documents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_documents')),
    sa.UniqueConstraint('external_id', name=op.f('uq_documents_external_id')),
    sa.UniqueConstraint('family', 'version', name=op.f('uq_documents_family_version'))
    )
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_documents_department_id'), ['department_id'], unique=False)

    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('home_department_id', sa.Integer(), nullable=True),
    sa.Column('password_hash', sa.String(length=255), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('failed_logins', sa.Integer(), nullable=False),
    sa.Column('locked_until', audit.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_login_at', audit.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('password_changed_at', audit.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', audit.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("role IN ('auditor', 'sme', 'lead', 'admin')", name=op.f('ck_users_role')),
    sa.CheckConstraint('failed_logins >= 0', name=op.f('ck_users_failed_logins_nonnegative')),
    sa.ForeignKeyConstraint(['home_department_id'], ['departments.id'], name=op.f('fk_users_home_department_id_departments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', audit.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('actor_name', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('entity_type', sa.String(length=64), nullable=False),
    sa.Column('entity_id', sa.String(length=64), nullable=True),
    sa.Column('details', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_audit_log_actor_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_audit_log_at', ['at'], unique=False)
        batch_op.create_index('ix_audit_log_entity_type_entity_id', ['entity_type', 'entity_id'], unique=False)

    op.create_table('dataset_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('change_log', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('example_count', sa.Integer(), nullable=False),
    sa.Column('counts_by_department', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('counts_by_origin', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('is_current', sa.Boolean(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', audit.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_dataset_versions_created_by_id_users')),
    sa.ForeignKeyConstraint(['parent_id'], ['dataset_versions.id'], name=op.f('fk_dataset_versions_parent_id_dataset_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dataset_versions')),
    sa.UniqueConstraint('content_hash', name=op.f('uq_dataset_versions_content_hash')),
    sa.UniqueConstraint('number', name=op.f('uq_dataset_versions_number'))
    )
    with op.batch_alter_table('dataset_versions', schema=None) as batch_op:
        batch_op.create_index('uq_dataset_versions_one_current', ['is_current'], unique=True, sqlite_where=sa.text('is_current = 1'), postgresql_where=sa.text('is_current'))

    op.create_table('policies',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('settings', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('row_version', sa.Integer(), nullable=False),
    sa.Column('updated_by_id', sa.Integer(), nullable=True),
    sa.Column('updated_at', audit.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("name IN ('sampling', 'routing', 'fixes', 'triggers', 'auth')", name=op.f('ck_policies_name')),
    sa.ForeignKeyConstraint(['updated_by_id'], ['users.id'], name=op.f('fk_policies_updated_by_id_users')),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_policies'))
    )
    op.create_table('sample_batches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sample_date', sa.Date(), nullable=False),
    sa.Column('strategy', sa.String(length=64), nullable=False),
    sa.Column('parameters', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('window_start', audit.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('window_end', audit.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('population', sa.Integer(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', audit.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_sample_batches_created_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sample_batches')),
    sa.UniqueConstraint('sample_date', name=op.f('uq_sample_batches_sample_date'))
    )
    op.create_table('user_departments',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_user_departments_department_id_departments'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_user_departments_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'department_id', name=op.f('pk_user_departments'))
    )
    op.create_table('model_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('base_model', sa.String(length=500), nullable=True),
    sa.Column('adapter_uri', sa.String(length=1000), nullable=True),
    sa.Column('dataset_version_id', sa.Integer(), nullable=True),
    sa.Column('hyperparameters', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('mlflow_run_id', sa.String(length=64), nullable=True),
    sa.Column('alias', sa.String(length=16), nullable=True),
    sa.Column('evaluation', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('gate_result', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', audit.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('promoted_at', audit.base.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("alias IS NULL OR alias IN ('champion', 'challenger', 'retired')", name=op.f('ck_model_versions_alias')),
    sa.ForeignKeyConstraint(['dataset_version_id'], ['dataset_versions.id'], name=op.f('fk_model_versions_dataset_version_id_dataset_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_model_versions')),
    sa.UniqueConstraint('name', name=op.f('uq_model_versions_name'))
    )
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.create_index('uq_model_versions_one_champion', ['alias'], unique=True, sqlite_where=sa.text("alias = 'champion'"), postgresql_where=sa.text("alias = 'champion'"))

    op.create_table('answers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('external_id', sa.String(length=128), nullable=False),
    sa.Column('question', sa.Text(), nullable=False),
    sa.Column('answer_text', sa.Text(), nullable=False),
    sa.Column('asker_department_id', sa.Integer(), nullable=False),
    sa.Column('model_version_id', sa.Integer(), nullable=False),
    sa.Column('sources', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('top_source_department_id', sa.Integer(), nullable=True),
    sa.Column('cites_other_department', sa.Boolean(), nullable=False),
    sa.Column('confidence', sa.Float(), nullable=True),
    sa.Column('latency_ms', sa.Integer(), nullable=True),
    sa.Column('created_at', audit.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('ingested_at', audit.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['asker_department_id'], ['departments.id'], name=op.f('fk_answers_asker_department_id_departments')),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_versions.id'], name=op.f('fk_answers_model_version_id_model_versions')),
    sa.ForeignKeyConstraint(['top_source_department_id'], ['departments.id'], name=op.f('fk_answers_top_source_department_id_departments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_answers')),
    sa.UniqueConstraint('external_id', name=op.f('uq_answers_external_id'))
    )
    with op.batch_alter_table('answers', schema=None) as batch_op:
        batch_op.create_index('ix_answers_asker_department_id_created_at', ['asker_department_id', 'created_at'], unique=False)
        batch_op.create_index('ix_answers_created_at', ['created_at'], unique=False)
        batch_op.create_index('ix_answers_model_version_id_created_at', ['model_version_id', 'created_at'], unique=False)

    op.create_table('training_jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=True),
    sa.Column('trigger_reason', sa.Text(), nullable=False),
    sa.Column('dataset_version_id', sa.Integer(), nullable=True),
    sa.Column('config', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('worker_id', sa.String(length=128), nullable=True),
    sa.Column('heartbeat_at', audit.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('claimed_at', audit.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', audit.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('model_version_id', sa.Integer(), nullable=True),
    sa.Column('requested_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', audit.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("(status IN ('queued', 'running') AND active IS NOT NULL) OR (status NOT IN ('queued', 'running') AND active IS NULL)", name=op.f('ck_training_jobs_active_matches_status')),
    sa.CheckConstraint("status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')", name=op.f('ck_training_jobs_status')),
    sa.CheckConstraint('attempts >= 0 AND attempts <= max_attempts', name=op.f('ck_training_jobs_attempts_capped')),
    sa.ForeignKeyConstraint(['dataset_version_id'], ['dataset_versions.id'], name=op.f('fk_training_jobs_dataset_version_id_dataset_versions')),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_versions.id'], name=op.f('fk_training_jobs_model_version_id_model_versions')),
    sa.ForeignKeyConstraint(['requested_by_id'], ['users.id'], name=op.f('fk_training_jobs_requested_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_training_jobs')),
    sa.UniqueConstraint('active', name=op.f('uq_training_jobs_active'))
    )
    with op.batch_alter_table('training_jobs', schema=None) as batch_op:
        batch_op.create_index('ix_training_jobs_status_created_at', ['status', 'created_at'], unique=False)

    op.create_table('gold_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('answer_id', sa.Integer(), nullable=True),
    sa.Column('question', sa.Text(), nullable=False),
    sa.Column('question_hash', sa.String(length=64), nullable=False),
    sa.Column('reference_answer', sa.Text(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('reference_document_ids', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('expected_accuracy', sa.SmallInteger(), nullable=True),
    sa.Column('expected_completeness', sa.SmallInteger(), nullable=True),
    sa.Column('expected_relevance', sa.SmallInteger(), nullable=True),
    sa.Column('expected_coherence', sa.SmallInteger(), nullable=True),
    sa.Column('created_at', audit.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('expected_accuracy IS NULL OR expected_accuracy BETWEEN 1 AND 5', name=op.f('ck_gold_items_expected_accuracy_range')),
    sa.CheckConstraint('expected_coherence IS NULL OR expected_coherence BETWEEN 1 AND 5', name=op.f('ck_gold_items_expected_coherence_range')),
    sa.CheckConstraint('expected_completeness IS NULL OR expected_completeness BETWEEN 1 AND 5', name=op.f('ck_gold_items_expected_completeness_range')),
    sa.CheckConstraint('expected_relevance IS NULL OR expected_relevance BETWEEN 1 AND 5', name=op.f('ck_gold_items_expected_relevance_range')),
    sa.ForeignKeyConstraint(['answer_id'], ['answers.id'], name=op.f('fk_gold_items_answer_id_answers')),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_gold_items_department_id_departments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gold_items')),
    sa.UniqueConstraint('answer_id', name=op.f('uq_gold_items_answer_id')),
    sa.UniqueConstraint('question_hash', name=op.f('uq_gold_items_question_hash'))
    )
    op.create_table('review_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('answer_id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('reasons', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('claimed_by_id', sa.Integer(), nullable=True),
    sa.Column('claimed_at', audit.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('row_version', sa.Integer(), nullable=False),
    sa.Column('created_at', audit.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', audit.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('open', 'claimed', 'confirmed', 'dismissed')", name=op.f('ck_review_items_status')),
    sa.ForeignKeyConstraint(['answer_id'], ['answers.id'], name=op.f('fk_review_items_answer_id_answers')),
    sa.ForeignKeyConstraint(['claimed_by_id'], ['users.id'], name=op.f('fk_review_items_claimed_by_id_users')),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_review_items_department_id_departments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_review_items')),
    sa.UniqueConstraint('answer_id', name=op.f('uq_review_items_answer_id'))
    )
    with op.batch_alter_table('review_items', schema=None) as batch_op:
        batch_op.create_index('ix_review_items_department_id_status', ['department_id', 'status'], unique=False)

    op.create_table('data_fixes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('review_item_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('proposed_at', audit.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('decided_at', audit.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('decided_by_id', sa.Integer(), nullable=True),
    sa.Column('decision_note', sa.Text(), nullable=True),
    sa.Column('dataset_version_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("kind IN ('add_example', 'quarantine_example', 'supersede_document', 'retrieval_pair', 'rebalance')", name=op.f('ck_data_fixes_kind')),
    sa.CheckConstraint("status IN ('proposed', 'applied', 'rejected')", name=op.f('ck_data_fixes_status')),
    sa.ForeignKeyConstraint(['dataset_version_id'], ['dataset_versions.id'], name=op.f('fk_data_fixes_dataset_version_id_dataset_versions')),
    sa.ForeignKeyConstraint(['decided_by_id'], ['users.id'], name=op.f('fk_data_fixes_decided_by_id_users')),
    sa.ForeignKeyConstraint(['review_item_id'], ['review_items.id'], name=op.f('fk_data_fixes_review_item_id_review_items')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_data_fixes'))
    )
    with op.batch_alter_table('data_fixes', schema=None) as batch_op:
        batch_op.create_index('ix_data_fixes_review_item_id', ['review_item_id'], unique=False)
        batch_op.create_index('ix_data_fixes_status_kind', ['status', 'kind'], unique=False)

    op.create_table('examples',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('external_id', sa.String(length=128), nullable=True),
    sa.Column('question', sa.Text(), nullable=False),
    sa.Column('answer', sa.Text(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('source_document_ids', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('origin', sa.String(length=16), nullable=False),
    sa.Column('origin_review_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', audit.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("origin != 'correction' OR origin_review_id IS NOT NULL", name=op.f('ck_examples_correction_has_review')),
    sa.CheckConstraint("origin IN ('curated', 'synthetic', 'correction')", name=op.f('ck_examples_origin')),
    sa.CheckConstraint("status IN ('active', 'quarantined', 'retired')", name=op.f('ck_examples_status')),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_examples_department_id_departments')),
    sa.ForeignKeyConstraint(['origin_review_id'], ['review_items.id'], name=op.f('fk_examples_origin_review_id_review_items')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_examples')),
    sa.UniqueConstraint('content_hash', name=op.f('uq_examples_content_hash')),
    sa.UniqueConstraint('external_id', name=op.f('uq_examples_external_id'))
    )
    with op.batch_alter_table('examples', schema=None) as batch_op:
        batch_op.create_index('ix_examples_status_department_id', ['status', 'department_id'], unique=False)

    op.create_table('retrieval_eval_pairs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('question', sa.Text(), nullable=False),
    sa.Column('question_hash', sa.String(length=64), nullable=False),
    sa.Column('document_id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('origin_review_id', sa.Integer(), nullable=True),
    sa.Column('created_at', audit.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_retrieval_eval_pairs_department_id_departments')),
    sa.ForeignKeyConstraint(['document_id'], ['documents.id'], name=op.f('fk_retrieval_eval_pairs_document_id_documents')),
    sa.ForeignKeyConstraint(['origin_review_id'], ['review_items.id'], name=op.f('fk_retrieval_eval_pairs_origin_review_id_review_items')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_retrieval_eval_pairs')),
    sa.UniqueConstraint('question_hash', 'document_id', name=op.f('uq_retrieval_eval_pairs_question_hash_document_id'))
    )
    op.create_table('review_decisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('review_item_id', sa.Integer(), nullable=False),
    sa.Column('sme_id', sa.Integer(), nullable=False),
    sa.Column('decision', sa.String(length=16), nullable=False),
    sa.Column('root_cause', sa.String(length=32), nullable=True),
    sa.Column('corrected_answer', sa.Text(), nullable=True),
    sa.Column('correct_document_id', sa.Integer(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('created_at', audit.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("decision != 'confirm' OR root_cause IS NOT NULL", name=op.f('ck_review_decisions_confirm_has_root_cause')),
    sa.CheckConstraint("decision IN ('confirm', 'dismiss')", name=op.f('ck_review_decisions_decision')),
    sa.CheckConstraint("root_cause IS NULL OR root_cause IN ('wrong_training_data', 'outdated_source', 'retrieval_error', 'hallucination', 'department_bias')", name=op.f('ck_review_decisions_root_cause')),
    sa.ForeignKeyConstraint(['correct_document_id'], ['documents.id'], name=op.f('fk_review_decisions_correct_document_id_documents')),
    sa.ForeignKeyConstraint(['review_item_id'], ['review_items.id'], name=op.f('fk_review_decisions_review_item_id_review_items')),
    sa.ForeignKeyConstraint(['sme_id'], ['users.id'], name=op.f('fk_review_decisions_sme_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_review_decisions')),
    sa.UniqueConstraint('review_item_id', name=op.f('uq_review_decisions_review_item_id'))
    )
    op.create_table('sample_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=False),
    sa.Column('answer_id', sa.Integer(), nullable=False),
    sa.Column('stratum', sa.String(length=100), nullable=False),
    sa.Column('inclusion_weight', sa.Float(), nullable=False),
    sa.Column('is_gold', sa.Boolean(), nullable=False),
    sa.Column('gold_item_id', sa.Integer(), nullable=True),
    sa.Column('low_confidence', sa.Boolean(), nullable=False),
    sa.Column('overlap_k', sa.Integer(), nullable=False),
    sa.Column('created_at', audit.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('inclusion_weight > 0', name=op.f('ck_sample_items_weight_positive')),
    sa.CheckConstraint('overlap_k >= 1', name=op.f('ck_sample_items_overlap_k_positive')),
    sa.ForeignKeyConstraint(['answer_id'], ['answers.id'], name=op.f('fk_sample_items_answer_id_answers')),
    sa.ForeignKeyConstraint(['batch_id'], ['sample_batches.id'], name=op.f('fk_sample_items_batch_id_sample_batches'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['gold_item_id'], ['gold_items.id'], name=op.f('fk_sample_items_gold_item_id_gold_items')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sample_items')),
    sa.UniqueConstraint('batch_id', 'answer_id', name=op.f('uq_sample_items_batch_id_answer_id'))
    )
    with op.batch_alter_table('sample_items', schema=None) as batch_op:
        batch_op.create_index('ix_sample_items_answer_id', ['answer_id'], unique=False)

    op.create_table('assignments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sample_item_id', sa.Integer(), nullable=False),
    sa.Column('answer_id', sa.Integer(), nullable=False),
    sa.Column('auditor_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('locked_until', audit.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('skip_reason', sa.Text(), nullable=True),
    sa.Column('assigned_at', audit.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('completed_at', audit.base.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status != 'skipped' OR skip_reason IS NOT NULL", name=op.f('ck_assignments_skip_has_reason')),
    sa.CheckConstraint("status IN ('pending', 'submitted', 'skipped', 'expired')", name=op.f('ck_assignments_status')),
    sa.ForeignKeyConstraint(['answer_id'], ['answers.id'], name=op.f('fk_assignments_answer_id_answers')),
    sa.ForeignKeyConstraint(['auditor_id'], ['users.id'], name=op.f('fk_assignments_auditor_id_users')),
    sa.ForeignKeyConstraint(['sample_item_id'], ['sample_items.id'], name=op.f('fk_assignments_sample_item_id_sample_items'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assignments')),
    sa.UniqueConstraint('answer_id', 'auditor_id', name=op.f('uq_assignments_answer_id_auditor_id'))
    )
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.create_index('ix_assignments_auditor_id_status_position', ['auditor_id', 'status', 'position'], unique=False)
        batch_op.create_index('ix_assignments_sample_item_id', ['sample_item_id'], unique=False)
        batch_op.create_index('ix_assignments_status_locked_until', ['status', 'locked_until'], unique=False)

    op.create_table('dataset_version_examples',
    sa.Column('dataset_version_id', sa.Integer(), nullable=False),
    sa.Column('example_id', sa.Integer(), nullable=False),
    sa.Column('weight', sa.Integer(), server_default=sa.text('1'), nullable=False),
    sa.ForeignKeyConstraint(['dataset_version_id'], ['dataset_versions.id'], name=op.f('fk_dataset_version_examples_dataset_version_id_dataset_versions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['example_id'], ['examples.id'], name=op.f('fk_dataset_version_examples_example_id_examples'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('dataset_version_id', 'example_id', name=op.f('pk_dataset_version_examples'))
    )
    op.create_table('ratings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('answer_id', sa.Integer(), nullable=False),
    sa.Column('auditor_id', sa.Integer(), nullable=False),
    sa.Column('assignment_id', sa.Integer(), nullable=True),
    sa.Column('accuracy', sa.SmallInteger(), nullable=True),
    sa.Column('completeness', sa.SmallInteger(), nullable=True),
    sa.Column('relevance', sa.SmallInteger(), nullable=True),
    sa.Column('coherence', sa.SmallInteger(), nullable=True),
    sa.Column('sources_correct', sa.String(length=8), nullable=True),
    sa.Column('bias_flag', sa.Boolean(), nullable=False),
    sa.Column('favoured_department_id', sa.Integer(), nullable=True),
    sa.Column('disfavoured_department_id', sa.Integer(), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('suggested_correction', sa.Text(), nullable=True),
    sa.Column('rubric_version', sa.String(length=32), nullable=False),
    sa.Column('seconds_spent', sa.Integer(), nullable=True),
    sa.Column('origin', sa.String(length=16), nullable=False),
    sa.Column('is_current', sa.Boolean(), nullable=False),
    sa.Column('supersedes_id', sa.Integer(), nullable=True),
    sa.Column('idempotency_key', sa.String(length=64), nullable=True),
    sa.Column('created_at', audit.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("origin IN ('app', 'import', 'simulated')", name=op.f('ck_ratings_origin')),
    sa.CheckConstraint("sources_correct IS NULL OR sources_correct IN ('yes', 'no', 'unsure')", name=op.f('ck_ratings_sources_correct')),
    sa.CheckConstraint('NOT bias_flag OR favoured_department_id IS NOT NULL OR disfavoured_department_id IS NOT NULL', name=op.f('ck_ratings_bias_flag_names_department')),
    sa.CheckConstraint('accuracy IS NULL OR accuracy BETWEEN 1 AND 5', name=op.f('ck_ratings_accuracy_range')),
    sa.CheckConstraint('coherence IS NULL OR coherence BETWEEN 1 AND 5', name=op.f('ck_ratings_coherence_range')),
    sa.CheckConstraint('completeness IS NULL OR completeness BETWEEN 1 AND 5', name=op.f('ck_ratings_completeness_range')),
    sa.CheckConstraint('relevance IS NULL OR relevance BETWEEN 1 AND 5', name=op.f('ck_ratings_relevance_range')),
    sa.CheckConstraint('seconds_spent IS NULL OR seconds_spent >= 0', name=op.f('ck_ratings_seconds_nonnegative')),
    sa.ForeignKeyConstraint(['answer_id'], ['answers.id'], name=op.f('fk_ratings_answer_id_answers')),
    sa.ForeignKeyConstraint(['assignment_id'], ['assignments.id'], name=op.f('fk_ratings_assignment_id_assignments')),
    sa.ForeignKeyConstraint(['auditor_id'], ['users.id'], name=op.f('fk_ratings_auditor_id_users')),
    sa.ForeignKeyConstraint(['disfavoured_department_id'], ['departments.id'], name=op.f('fk_ratings_disfavoured_department_id_departments')),
    sa.ForeignKeyConstraint(['favoured_department_id'], ['departments.id'], name=op.f('fk_ratings_favoured_department_id_departments')),
    sa.ForeignKeyConstraint(['supersedes_id'], ['ratings.id'], name=op.f('fk_ratings_supersedes_id_ratings')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ratings')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_ratings_idempotency_key'))
    )
    with op.batch_alter_table('ratings', schema=None) as batch_op:
        batch_op.create_index('ix_ratings_answer_id', ['answer_id'], unique=False)
        batch_op.create_index('ix_ratings_auditor_id_created_at', ['auditor_id', 'created_at'], unique=False)
        batch_op.create_index('ix_ratings_created_at', ['created_at'], unique=False)
        batch_op.create_index('uq_ratings_current_answer_auditor', ['answer_id', 'auditor_id'], unique=True, sqlite_where=sa.text('is_current = 1'), postgresql_where=sa.text('is_current'))



    _append_only_audit_log()


def downgrade() -> None:
    _drop_append_only_audit_log()

    with op.batch_alter_table('ratings', schema=None) as batch_op:
        batch_op.drop_index('uq_ratings_current_answer_auditor', sqlite_where=sa.text('is_current = 1'), postgresql_where=sa.text('is_current'))
        batch_op.drop_index('ix_ratings_created_at')
        batch_op.drop_index('ix_ratings_auditor_id_created_at')
        batch_op.drop_index('ix_ratings_answer_id')

    op.drop_table('ratings')
    op.drop_table('dataset_version_examples')
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.drop_index('ix_assignments_status_locked_until')
        batch_op.drop_index('ix_assignments_sample_item_id')
        batch_op.drop_index('ix_assignments_auditor_id_status_position')

    op.drop_table('assignments')
    with op.batch_alter_table('sample_items', schema=None) as batch_op:
        batch_op.drop_index('ix_sample_items_answer_id')

    op.drop_table('sample_items')
    op.drop_table('review_decisions')
    op.drop_table('retrieval_eval_pairs')
    with op.batch_alter_table('examples', schema=None) as batch_op:
        batch_op.drop_index('ix_examples_status_department_id')

    op.drop_table('examples')
    with op.batch_alter_table('data_fixes', schema=None) as batch_op:
        batch_op.drop_index('ix_data_fixes_status_kind')
        batch_op.drop_index('ix_data_fixes_review_item_id')

    op.drop_table('data_fixes')
    with op.batch_alter_table('review_items', schema=None) as batch_op:
        batch_op.drop_index('ix_review_items_department_id_status')

    op.drop_table('review_items')
    op.drop_table('gold_items')
    with op.batch_alter_table('training_jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_training_jobs_status_created_at')

    op.drop_table('training_jobs')
    with op.batch_alter_table('answers', schema=None) as batch_op:
        batch_op.drop_index('ix_answers_model_version_id_created_at')
        batch_op.drop_index('ix_answers_created_at')
        batch_op.drop_index('ix_answers_asker_department_id_created_at')

    op.drop_table('answers')
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.drop_index('uq_model_versions_one_champion', sqlite_where=sa.text("alias = 'champion'"), postgresql_where=sa.text("alias = 'champion'"))

    op.drop_table('model_versions')
    op.drop_table('user_departments')
    op.drop_table('sample_batches')
    op.drop_table('policies')
    with op.batch_alter_table('dataset_versions', schema=None) as batch_op:
        batch_op.drop_index('uq_dataset_versions_one_current', sqlite_where=sa.text('is_current = 1'), postgresql_where=sa.text('is_current'))

    op.drop_table('dataset_versions')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_entity_type_entity_id')
        batch_op.drop_index('ix_audit_log_at')

    op.drop_table('audit_log')
    op.drop_table('users')
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_documents_department_id'))

    op.drop_table('documents')
    op.drop_table('departments')

