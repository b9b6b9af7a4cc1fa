"""Sample batches, sample items, assignments and gold items."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from audit.base import Base, JSONType, UTCDateTime, utcnow

ASSIGNMENT_STATUSES = ("pending", "submitted", "skipped", "expired")


class GoldItem(Base):
    """An answer (or a bare question) with known expected scores and a reference answer.

    Gold items calibrate auditors and, being held out, are the evaluation set for training:
    no training example may share a gold question.
    """

    __tablename__ = "gold_items"
    __table_args__ = (
        UniqueConstraint("answer_id"),
        UniqueConstraint("question_hash"),
        *(
            CheckConstraint(f"expected_{d} IS NULL OR expected_{d} BETWEEN 1 AND 5", name=f"expected_{d}_range")
            for d in ("accuracy", "completeness", "relevance", "coherence")
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    answer_id: Mapped[int | None] = mapped_column(ForeignKey("answers.id"))
    question: Mapped[str] = mapped_column(Text)
    question_hash: Mapped[str] = mapped_column(String(64))
    reference_answer: Mapped[str] = mapped_column(Text)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    reference_document_ids: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # the values a right answer must state (an amount, a period, a system's name...), as the gold
    # document gives them; the yardstick's fact accuracy checks each (audit/measures/facts.py)
    key_values: Mapped[list[str]] = mapped_column(JSONType, default=list, server_default=text("'[]'"))
    expected_accuracy: Mapped[int | None] = mapped_column(SmallInteger)
    expected_completeness: Mapped[int | None] = mapped_column(SmallInteger)
    expected_relevance: Mapped[int | None] = mapped_column(SmallInteger)
    expected_coherence: Mapped[int | None] = mapped_column(SmallInteger)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SampleBatch(Base):
    __tablename__ = "sample_batches"
    __table_args__ = (UniqueConstraint("sample_date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sample_date: Mapped[dt.date] = mapped_column(Date)
    strategy: Mapped[str] = mapped_column(String(64))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    window_start: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    window_end: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    population: Mapped[int] = mapped_column(Integer, default=0)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SampleItem(Base):
    __tablename__ = "sample_items"
    __table_args__ = (
        UniqueConstraint("batch_id", "answer_id"),
        CheckConstraint("inclusion_weight > 0", name="weight_positive"),
        CheckConstraint("overlap_k >= 1", name="overlap_k_positive"),
        Index("ix_sample_items_answer_id", "answer_id"),
        Index("ix_sample_items_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("sample_batches.id", ondelete="CASCADE"))
    answer_id: Mapped[int] = mapped_column(ForeignKey("answers.id"))
    stratum: Mapped[str] = mapped_column(String(100))
    # 1 / inclusion probability: weights a sample mean back to the production mix
    inclusion_weight: Mapped[float] = mapped_column(Float)
    is_gold: Mapped[bool] = mapped_column(Boolean, default=False)
    gold_item_id: Mapped[int | None] = mapped_column(ForeignKey("gold_items.id"))
    low_confidence: Mapped[bool] = mapped_column(Boolean, default=False)
    overlap_k: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Assignment(Base):
    """An item handed to one auditor. ``answer_id`` is repeated here so the database itself
    refuses to give one auditor the same answer twice, across batches too."""

    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("answer_id", "auditor_id"),
        CheckConstraint("status IN ('pending', 'submitted', 'skipped', 'expired')", name="status"),
        CheckConstraint("status != 'skipped' OR skip_reason IS NOT NULL", name="skip_has_reason"),
        Index("ix_assignments_auditor_id_status_position", "auditor_id", "status", "position"),
        Index("ix_assignments_sample_item_id", "sample_item_id"),
        Index("ix_assignments_status_locked_until", "status", "locked_until"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sample_item_id: Mapped[int] = mapped_column(ForeignKey("sample_items.id", ondelete="CASCADE"))
    answer_id: Mapped[int] = mapped_column(ForeignKey("answers.id"))
    auditor_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    position: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    skip_reason: Mapped[str | None] = mapped_column(Text)
    assigned_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
