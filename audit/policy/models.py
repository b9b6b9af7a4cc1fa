"""The policies table: one row per policy name, settings as JSON validated by the owning service."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from audit.base import Base, JSONType, UTCDateTime, utcnow

POLICY_NAMES = ("sampling", "routing", "fixes", "triggers", "auth")


class Policy(Base):
    __tablename__ = "policies"
    __table_args__ = (CheckConstraint("name IN ('sampling', 'routing', 'fixes', 'triggers', 'auth')", name="name"),)

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    row_version: Mapped[int] = mapped_column(Integer, default=1)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __mapper_args__ = {"version_id_col": row_version}
