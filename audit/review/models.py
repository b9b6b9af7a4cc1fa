"""Review items and review decisions."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from audit.base import Base, JSONType, UTCDateTime, utcnow
from audit.choices import CONTENT_ROOT_CAUSES as CONTENT_ROOT_CAUSES
from audit.choices import REVIEW_REASONS as REVIEW_REASONS
from audit.choices import REVIEW_STATUSES as REVIEW_STATUSES
from audit.choices import ROOT_CAUSES as ROOT_CAUSES


class ReviewItem(Base):
    """One item per answer; routing accumulates reasons on it. ``row_version`` guards against
    lost updates when two SMEs act at once (optimistic locking)."""

    __tablename__ = "review_items"
    __table_args__ = (
        UniqueConstraint("answer_id"),
        CheckConstraint("status IN ('open', 'claimed', 'confirmed', 'dismissed')", name="status"),
        Index("ix_review_items_department_id_status", "department_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    answer_id: Mapped[int] = mapped_column(ForeignKey("answers.id"))
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    reasons: Mapped[list[str]] = mapped_column(JSONType, default=list)
    status: Mapped[str] = mapped_column(String(16), default="open")
    claimed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    claimed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    row_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __mapper_args__ = {"version_id_col": row_version}


class ReviewDecision(Base):
    __tablename__ = "review_decisions"
    __table_args__ = (
        UniqueConstraint("review_item_id"),
        CheckConstraint("decision IN ('confirm', 'dismiss')", name="decision"),
        CheckConstraint(
            "root_cause IS NULL OR root_cause IN ('wrong_training_data', 'outdated_source', "
            "'retrieval_error', 'hallucination', 'department_bias')",
            name="root_cause",
        ),
        CheckConstraint("decision != 'confirm' OR root_cause IS NOT NULL", name="confirm_has_root_cause"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    review_item_id: Mapped[int] = mapped_column(ForeignKey("review_items.id"))
    sme_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    decision: Mapped[str] = mapped_column(String(16))
    root_cause: Mapped[str | None] = mapped_column(String(32))
    corrected_answer: Mapped[str | None] = mapped_column(Text)
    correct_document_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id"))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
