"""Reading the audit log (newest first, filtered), for the admin and lead pages.

Reading it is itself a permission (``view_audit_log``), so the query refuses like a service does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.auditlog.models import AuditLogEntry
from audit.org.models import User
from audit.permissions import require

MAX_ENTRIES = 5_000


def entries(
    session: Session,
    *,
    actor: User | None,
    limit: int = 500,
    action_prefix: str | None = None,
    actor_name: str | None = None,
    entity_type: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> Sequence[AuditLogEntry]:
    """Entries newest first; ``action_prefix`` "login" matches login.success, login.failed, ...

    ``since`` is inclusive and ``until`` exclusive; both use the ``ix_audit_log_at`` index.
    """
    require(actor, "view_audit_log")
    query = select(AuditLogEntry).order_by(AuditLogEntry.at.desc(), AuditLogEntry.id.desc())
    if action_prefix:
        query = query.where(AuditLogEntry.action.startswith(action_prefix, autoescape=True))
    if actor_name:
        query = query.where(AuditLogEntry.actor_name == actor_name)
    if entity_type:
        query = query.where(AuditLogEntry.entity_type == entity_type)
    if since is not None:
        query = query.where(AuditLogEntry.at >= since)
    if until is not None:
        query = query.where(AuditLogEntry.at < until)
    return session.scalars(query.limit(max(1, min(limit, MAX_ENTRIES)))).all()


def actions(session: Session, *, actor: User | None) -> list[str]:
    """The distinct action names recorded so far (for a filter list)."""
    require(actor, "view_audit_log")
    return list(session.scalars(select(AuditLogEntry.action).distinct().order_by(AuditLogEntry.action)))
