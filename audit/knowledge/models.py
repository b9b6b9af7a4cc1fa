"""Documents, examples, immutable dataset versions, and the retrieval evaluation set."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from audit.base import Base, JSONType, UTCDateTime, utcnow
from audit.org.models import Department, User

EXAMPLE_ORIGINS = ("curated", "synthetic", "correction")
EXAMPLE_STATUSES = ("active", "quarantined", "retired")


class Document(Base):
    """One version of a policy, regulation or software document.

    Versions of the same document share a ``family``; an outdated version points at the version
    that replaced it through ``superseded_by_id``.
    """

    __tablename__ = "documents"
    __table_args__ = (
        UniqueConstraint("external_id"),
        UniqueConstraint("family", "version"),
        CheckConstraint("version >= 1", name="version_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(128))
    family: Mapped[str] = mapped_column(String(128))
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), index=True)
    title: Mapped[str] = mapped_column(String(500))
    body: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1)
    effective_date: Mapped[dt.date] = mapped_column(Date)
    superseded_by_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id"))
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    department: Mapped[Department] = relationship(lazy="raise")

    @property
    def is_outdated(self) -> bool:
        return self.superseded_by_id is not None


class Example(Base):
    """A curated question/answer pair the assistant is fine-tuned on."""

    __tablename__ = "examples"
    __table_args__ = (
        UniqueConstraint("external_id"),
        UniqueConstraint("content_hash"),
        CheckConstraint("origin IN ('curated', 'synthetic', 'correction')", name="origin"),
        CheckConstraint("status IN ('active', 'quarantined', 'retired')", name="status"),
        CheckConstraint("origin != 'correction' OR origin_review_id IS NOT NULL", name="correction_has_review"),
        Index("ix_examples_status_department_id", "status", "department_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(128))
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    # external ids of the documents the answer relies on
    source_document_ids: Mapped[list[str]] = mapped_column(JSONType, default=list)
    origin: Mapped[str] = mapped_column(String(16), default="curated")
    origin_review_id: Mapped[int | None] = mapped_column(ForeignKey("review_items.id"))
    status: Mapped[str] = mapped_column(String(16), default="active")
    # sha256 of the normalised question + answer: the same pair can never be stored twice
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    department: Mapped[Department] = relationship(lazy="raise")


dataset_version_examples = Table(
    "dataset_version_examples",
    Base.metadata,
    Column("dataset_version_id", ForeignKey("dataset_versions.id", ondelete="CASCADE"), primary_key=True),
    Column("example_id", ForeignKey("examples.id", ondelete="RESTRICT"), primary_key=True),
    Column("weight", Integer, nullable=False, server_default=text("1")),
)


class DatasetVersion(Base):
    """An immutable snapshot of the active examples, addressed by its content hash."""

    __tablename__ = "dataset_versions"
    __table_args__ = (
        UniqueConstraint("number"),
        UniqueConstraint("content_hash"),
        Index(
            "uq_dataset_versions_one_current",
            "is_current",
            unique=True,
            sqlite_where=text("is_current = 1"),
            postgresql_where=text("is_current"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_versions.id"))
    change_log: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    example_count: Mapped[int] = mapped_column(Integer)
    counts_by_department: Mapped[dict[str, int]] = mapped_column(JSONType, default=dict)
    counts_by_origin: Mapped[dict[str, int]] = mapped_column(JSONType, default=dict)
    is_current: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    created_by: Mapped[User | None] = relationship(lazy="raise")


class RetrievalEvalPair(Base):
    """A question and the document retrieval should have found for it."""

    __tablename__ = "retrieval_eval_pairs"
    __table_args__ = (UniqueConstraint("question_hash", "document_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    question: Mapped[str] = mapped_column(Text)
    question_hash: Mapped[str] = mapped_column(String(64))
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"))
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    origin_review_id: Mapped[int | None] = mapped_column(ForeignKey("review_items.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
