"""Who may do what: one role × action matrix, used by services to refuse and by pages to hide.

``actor=None`` is the operator at the command line or a scheduled job (``auditloop daily``):
someone who already holds the database credentials, so every action is allowed.
"""

from __future__ import annotations

from typing import Literal

from audit.errors import PermissionDenied
from audit.org.models import User

Action = Literal[
    "rate",  # rate and skip own assignments, see own ratings
    "review",  # claim and decide review items of the departments covered
    "view_reviews",  # read the review queue (with every rating of an item)
    "view_dashboards",  # quality, agreement, fairness, funnel, training reports
    "view_ratings_all",  # read any auditor's ratings (not for auditors: blind rating)
    "approve_fixes",  # apply or reject proposed data fixes
    "queue_training",  # queue a retraining job by hand
    "promote_model",  # approve a promotion or roll back the champion
    "manage_users",  # create users, change roles and departments, deactivate, reset passwords
    "manage_departments",
    "manage_policies",  # sampling, routing, fix and trigger policies
    "view_audit_log",
    "run_sampling",  # draw and assign the daily sample, release expired locks, route ratings to review
    "ingest",  # load answers, ratings, documents, examples
]

ROLE_ACTIONS: dict[str, frozenset[str]] = {
    "auditor": frozenset({"rate"}),
    "sme": frozenset({"review", "view_reviews", "view_ratings_all"}),
    "lead": frozenset(
        {
            "view_reviews",
            "view_dashboards",
            "view_ratings_all",
            "approve_fixes",
            "queue_training",
            "promote_model",
            "run_sampling",
            "view_audit_log",
        }
    ),
    "admin": frozenset(
        {
            "view_dashboards",
            "view_ratings_all",
            "manage_users",
            "manage_departments",
            "manage_policies",
            "view_audit_log",
            "run_sampling",
            "ingest",
        }
    ),
}

ALL_ACTIONS: tuple[str, ...] = Action.__args__  # type: ignore[attr-defined]


def can(user: User | None, action: Action) -> bool:
    """True if ``user`` may perform ``action``. Inactive users may do nothing."""
    if user is None:
        return True
    if not user.active:
        return False
    return action in ROLE_ACTIONS.get(user.role, frozenset())


def require(user: User | None, action: Action) -> None:
    """Raise PermissionDenied unless ``user`` may perform ``action``."""
    if not can(user, action):
        who = f"{user.username} ({user.role})" if user is not None else "system"
        raise PermissionDenied(f"{who} may not {action.replace('_', ' ')}")
