"""Model versions (with their registry alias) and the training job queue."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from audit.base import Base, JSONType, UTCDateTime, utcnow

MODEL_ALIASES = ("champion", "challenger", "retired")
JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("name"),
        CheckConstraint("alias IS NULL OR alias IN ('champion', 'challenger', 'retired')", name="alias"),
        Index(
            "uq_model_versions_one_champion",
            "alias",
            unique=True,
            sqlite_where=text("alias = 'champion'"),
            postgresql_where=text("alias = 'champion'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    base_model: Mapped[str | None] = mapped_column(String(500))
    adapter_uri: Mapped[str | None] = mapped_column(String(1000))
    dataset_version_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_versions.id"))
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64))
    alias: Mapped[str | None] = mapped_column(String(16))
    evaluation: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    gate_result: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    promoted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class TrainingJob(Base):
    """One retraining request. At most one job is queued or running at a time (``active``)."""

    __tablename__ = "training_jobs"
    __table_args__ = (
        CheckConstraint("status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')", name="status"),
        CheckConstraint("attempts >= 0 AND attempts <= max_attempts", name="attempts_capped"),
        # active is TRUE exactly while the job is queued or running; NULL otherwise, so that the
        # unique index admits one active job and any number of finished ones.
        CheckConstraint(
            "(status IN ('queued', 'running') AND active IS NOT NULL) OR "
            "(status NOT IN ('queued', 'running') AND active IS NULL)",
            name="active_matches_status",
        ),
        UniqueConstraint("active"),
        Index("ix_training_jobs_status_created_at", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    active: Mapped[bool | None] = mapped_column(Boolean, default=True)
    trigger_reason: Mapped[str] = mapped_column(Text)
    dataset_version_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_versions.id"))
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    error: Mapped[str | None] = mapped_column(Text)
    worker_id: Mapped[str | None] = mapped_column(String(128))
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    claimed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class EvaluationItem(Base):
    """One held-out gold question answered by one system and judged by the yardstick.

    ``system`` names what answered: a model version's name, or a no-model baseline
    (``baseline:first_sentence``, ``baseline:best_sentence``) or a demo loop's control
    (``control:...``), which have no ``model_version_id``. ``signature`` fingerprints the evaluation
    setup (gold items, documents, retrieval, generation settings): rows of one signature are paired
    item by item, and every aggregate a report shows is a mean of these rows.
    """

    __tablename__ = "evaluation_items"
    __table_args__ = (
        UniqueConstraint("system", "signature", "gold_item_id"),
        Index("ix_evaluation_items_model_version_id", "model_version_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    system: Mapped[str] = mapped_column(String(128))
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    signature: Mapped[str] = mapped_column(String(64))
    gold_item_id: Mapped[int] = mapped_column(ForeignKey("gold_items.id"))
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    prediction: Mapped[str] = mapped_column(Text)
    cited_document_ids: Mapped[list[str]] = mapped_column(JSONType, default=list)
    retrieved_document_ids: Mapped[list[str]] = mapped_column(JSONType, default=list)
    fact_correct: Mapped[bool] = mapped_column(Boolean)
    # missed a key value and stated another of its type; None on rows judged before it was measured
    wrong_value: Mapped[bool | None] = mapped_column(Boolean)
    citation_correct: Mapped[bool] = mapped_column(Boolean)
    cites_outdated: Mapped[bool] = mapped_column(Boolean)
    retrieval_at_1: Mapped[bool] = mapped_column(Boolean)
    retrieval_at_k: Mapped[bool] = mapped_column(Boolean)
    rouge_l: Mapped[float] = mapped_column(Float)
    f1: Mapped[float] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
