"""The data_fixes table."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from audit.base import Base, JSONType, UTCDateTime, utcnow
from audit.choices import FIX_KINDS as FIX_KINDS
from audit.choices import FIX_STATUSES as FIX_STATUSES


class DataFix(Base):
    __tablename__ = "data_fixes"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('add_example', 'quarantine_example', 'supersede_document', 'retrieval_pair', 'rebalance')",
            name="kind",
        ),
        CheckConstraint("status IN ('proposed', 'applied', 'rejected')", name="status"),
        Index("ix_data_fixes_status_kind", "status", "kind"),
        Index("ix_data_fixes_review_item_id", "review_item_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    review_item_id: Mapped[int | None] = mapped_column(ForeignKey("review_items.id"))
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="proposed")
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    reason: Mapped[str] = mapped_column(Text)
    proposed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decision_note: Mapped[str | None] = mapped_column(Text)
    dataset_version_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_versions.id"))
