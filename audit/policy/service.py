"""Read and write policies. Each domain defines its policy as a dataclass with defaults and a
``validate()`` that raises ValidationError; this module stores it as JSON in ``policies``."""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, TypeVar

from sqlalchemy.orm import Session

from audit.auditlog import service as auditlog
from audit.base import utcnow
from audit.errors import ValidationError
from audit.org.models import User
from audit.permissions import require
from audit.policy.models import Policy


class PolicySettings(Protocol):
    def validate(self) -> None: ...


P = TypeVar("P")


def load(session: Session, name: str, cls: type[P]) -> P:
    """The stored policy merged over the dataclass defaults (unknown stored keys are ignored)."""
    row = session.get(Policy, name)
    stored: dict[str, Any] = dict(row.settings) if row is not None else {}
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in stored.items() if k in known})


def save(session: Session, *, actor: User | None, name: str, settings: Any) -> Policy:
    """Validate and store a policy; the change is in the audit log with before and after."""
    require(actor, "manage_policies")
    if not dataclasses.is_dataclass(settings) or isinstance(settings, type):
        raise ValidationError(f"policy {name}: expected a dataclass instance")
    settings.validate()  # type: ignore[attr-defined]
    new = dataclasses.asdict(settings)
    row = session.get(Policy, name)
    before = dict(row.settings) if row is not None else {}
    if row is None:
        row = Policy(name=name, settings=new, updated_by_id=actor.id if actor else None)
        session.add(row)
    else:
        row.settings = new
        row.updated_by_id = actor.id if actor else None
        row.updated_at = utcnow()
    session.flush()
    auditlog.record(
        session,
        actor=actor,
        action="policy.update",
        entity_type="policy",
        entity_id=name,
        details={"before": before, "after": new},
    )
    return row
