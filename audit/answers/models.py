"""Answers given by the assistant."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from audit.base import Base, JSONType, UTCDateTime, utcnow
from audit.modelops.models import ModelVersion
from audit.org.models import Department


class Answer(Base):
    """One answer. ``sources`` keeps the retrieved documents as given
    (``[{"document_id", "department", "score"}]``); the top source's department and whether any
    source is from another department than the asker's are kept as columns for the fairness view.
    """

    __tablename__ = "answers"
    __table_args__ = (
        UniqueConstraint("external_id"),
        Index("ix_answers_created_at", "created_at"),
        Index("ix_answers_asker_department_id_created_at", "asker_department_id", "created_at"),
        Index("ix_answers_model_version_id_created_at", "model_version_id", "created_at"),
        # what the reports look a rated answer up for, in a narrow index (audit/measures/repository.py)
        Index("ix_answers_report", "id", "model_version_id", "asker_department_id", "cites_other_department"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(128))
    question: Mapped[str] = mapped_column(Text)
    answer_text: Mapped[str] = mapped_column(Text)
    asker_department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    sources: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    top_source_department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    cites_other_department: Mapped[bool] = mapped_column(Boolean, default=False)
    confidence: Mapped[float | None] = mapped_column(Float)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    # sha256 of the canonical record: re-ingesting the same id with other content is detected
    content_hash: Mapped[str] = mapped_column(String(64))
    ingested_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    asker_department: Mapped[Department] = relationship(foreign_keys=[asker_department_id], lazy="raise")
    model_version: Mapped[ModelVersion] = relationship(lazy="raise")


class AnswerReference(Base):
    """A human reference answer for an answer (several may exist: e.g. one per annotator), brought in
    by ``ingest references``; the metrics-vs-humans report scores answers against them. Unique per
    answer by the sha256 of the reference text as given."""

    __tablename__ = "answer_references"
    __table_args__ = (UniqueConstraint("answer_id", "reference_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    answer_id: Mapped[int] = mapped_column(ForeignKey("answers.id"))
    reference: Mapped[str] = mapped_column(Text)
    reference_hash: Mapped[str] = mapped_column(String(64))
    source: Mapped[str | None] = mapped_column(String(128))  # who or what wrote it, e.g. an annotator id
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
