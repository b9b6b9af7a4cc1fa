"""Writing to the audit log. Callers commit: the entry lands with the change it records."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from audit.auditlog.models import AuditLogEntry
from audit.org.models import User


def record(
    session: Session,
    *,
    actor: User | None,
    action: str,
    entity_type: str,
    entity_id: object | None = None,
    details: dict[str, Any] | None = None,
    actor_name: str | None = None,
) -> AuditLogEntry:
    entry = AuditLogEntry(
        actor_id=actor.id if actor is not None else None,
        actor_name=actor.username if actor is not None else (actor_name or "system"),
        action=action,
        entity_type=entity_type,
        entity_id=None if entity_id is None else str(entity_id),
        details=details or {},
    )
    session.add(entry)
    return entry
