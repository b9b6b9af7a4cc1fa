"""The ratings table."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    CheckConstraint,
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

from audit.base import Base, UTCDateTime, utcnow
from audit.choices import DIMENSIONS
from audit.choices import RATING_ORIGINS as RATING_ORIGINS
from audit.choices import SOURCES_CORRECT as SOURCES_CORRECT


class Rating(Base):
    """One rating row. Rows are never updated except to clear ``is_current`` when an edit
    writes the row that supersedes them; history stays."""

    __tablename__ = "ratings"
    __table_args__ = (
        *(CheckConstraint(f"{d} IS NULL OR {d} BETWEEN 1 AND 5", name=f"{d}_range") for d in DIMENSIONS),
        CheckConstraint(
            "sources_correct IS NULL OR sources_correct IN ('yes', 'no', 'unsure')", name="sources_correct"
        ),
        CheckConstraint("origin IN ('app', 'import', 'simulated')", name="origin"),
        CheckConstraint(
            "NOT bias_flag OR favoured_department_id IS NOT NULL OR disfavoured_department_id IS NOT NULL",
            name="bias_flag_names_department",
        ),
        CheckConstraint("seconds_spent IS NULL OR seconds_spent >= 0", name="seconds_nonnegative"),
        UniqueConstraint("idempotency_key"),
        Index(
            "uq_ratings_current_answer_auditor",
            "answer_id",
            "auditor_id",
            unique=True,
            sqlite_where=text("is_current = 1"),
            postgresql_where=text("is_current"),
        ),
        Index("ix_ratings_answer_id_created_at", "answer_id", "created_at"),
        Index("ix_ratings_created_at", "created_at"),
        # every column the reports read, after the window's keys: they read a window's current
        # ratings from this index alone (audit/measures/repository.py)
        Index(
            "ix_ratings_report",
            "is_current",
            "created_at",
            "answer_id",
            "auditor_id",
            "assignment_id",
            *DIMENSIONS,
            "bias_flag",
            "sources_correct",
            "favoured_department_id",
            "disfavoured_department_id",
        ),
        Index("ix_ratings_auditor_id_created_at", "auditor_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    answer_id: Mapped[int] = mapped_column(ForeignKey("answers.id"))
    auditor_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    assignment_id: Mapped[int | None] = mapped_column(ForeignKey("assignments.id"))
    accuracy: Mapped[int | None] = mapped_column(SmallInteger)
    completeness: Mapped[int | None] = mapped_column(SmallInteger)
    relevance: Mapped[int | None] = mapped_column(SmallInteger)
    coherence: Mapped[int | None] = mapped_column(SmallInteger)
    sources_correct: Mapped[str | None] = mapped_column(String(8))
    bias_flag: Mapped[bool] = mapped_column(Boolean, default=False)
    favoured_department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    disfavoured_department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    comment: Mapped[str | None] = mapped_column(Text)
    suggested_correction: Mapped[str | None] = mapped_column(Text)
    rubric_version: Mapped[str] = mapped_column(String(32), default="v1")
    seconds_spent: Mapped[int | None] = mapped_column(Integer)
    origin: Mapped[str] = mapped_column(String(16), default="app")
    is_current: Mapped[bool] = mapped_column(Boolean, default=True)
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("ratings.id"))
    # a client-generated key per submit: a double submit stores one rating
    idempotency_key: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
