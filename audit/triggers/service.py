"""Decide whether to retrain, and queue exactly one training job when the evidence says so.

Three triggers (thresholds in the "triggers" policy):
- applied data fixes since the last training job >= ``min_applied_fixes``;
- production-weighted accuracy of the last window below ``accuracy_floor``, or down by at least
  ``accuracy_drop`` against the window before;
- the department accuracy gap (highest minus lowest department mean over the last window, among
  departments with enough ratings) above ``department_gap``.

Production-weighted accuracy = sum(w x accuracy) / sum(w) over the current ratings of the
window's answers, where w is the inclusion weight of the sample item the rating was assigned
from (1 / inclusion probability, so the sample mean estimates the production mean) and 1 for a
rating with no sample item (imported history). Gold items are calibration, not production: left out.

At most one job is queued or running: the unique ``training_jobs.active`` column refuses a second
one even when two processes evaluate at once; the loser is told "a job is already queued/running".

Public API: evaluate(session, actor=None, now=None) -> TriggerEvaluation,
queue_training(session, actor=, reason=) -> QueueResult, weighted_accuracy(...), active_job(session).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import false, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from audit.answers.models import Answer
from audit.auditlog import service as auditlog
from audit.base import utcnow
from audit.errors import ValidationError
from audit.fixes.models import DataFix
from audit.knowledge import datasets
from audit.modelops.models import TrainingJob
from audit.org.models import Department, User
from audit.permissions import require
from audit.policy import service as policy_service
from audit.ratings.models import Rating
from audit.sampling.models import Assignment, SampleItem
from audit.triggers.policy import POLICY_NAME, TriggersPolicy

ALREADY_ACTIVE = "a job is already queued/running"


@dataclass(frozen=True)
class WindowAccuracy:
    """Weighted mean accuracy over one window (None when nothing was rated)."""

    mean: float | None
    ratings: int


@dataclass(frozen=True)
class QueueResult:
    queued: bool
    job_id: int | None
    message: str


@dataclass(frozen=True)
class TriggerEvaluation:
    reasons: list[str]
    applied_fixes: int
    current: WindowAccuracy
    previous: WindowAccuracy
    by_department: dict[str, WindowAccuracy] = field(default_factory=dict)
    queued: bool = False
    job_id: int | None = None
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "reasons": self.reasons,
            "applied_fixes_since_last_job": self.applied_fixes,
            "accuracy": {"current": self.current.__dict__, "previous": self.previous.__dict__},
            "by_department": {d: w.__dict__ for d, w in self.by_department.items()},
            "queued": self.queued,
            "job_id": self.job_id,
            "message": self.message,
        }


def load_policy(session: Session) -> TriggersPolicy:
    policy = policy_service.load(session, POLICY_NAME, TriggersPolicy)
    policy.validate()
    return policy


def save_policy(session: Session, *, actor: User | None, policy: TriggersPolicy) -> None:
    policy_service.save(session, actor=actor, name=POLICY_NAME, settings=policy)


def active_job(session: Session) -> TrainingJob | None:
    return session.scalars(select(TrainingJob).where(TrainingJob.active.is_not(None))).one_or_none()


def last_job_at(session: Session) -> dt.datetime | None:
    return session.scalar(select(func.max(TrainingJob.created_at)))


def applied_fixes_since(session: Session, since: dt.datetime | None) -> int:
    query = select(func.count()).select_from(DataFix).where(DataFix.status == "applied")
    if since is not None:
        query = query.where(DataFix.decided_at > since)
    return int(session.scalar(query) or 0)


def weighted_accuracy(
    session: Session, start: dt.datetime, end: dt.datetime
) -> tuple[WindowAccuracy, dict[str, WindowAccuracy]]:
    """Production-weighted mean accuracy of answers created in [start, end): overall and per asker
    department, in one GROUP BY (see the module docstring for the weights)."""
    weight = func.coalesce(SampleItem.inclusion_weight, 1.0)
    rows = session.execute(
        select(
            Department.name,
            func.sum(weight * Rating.accuracy),
            func.sum(weight),
            func.count(Rating.id),
        )
        .select_from(Rating)
        .join(Answer, Answer.id == Rating.answer_id)
        .join(Department, Department.id == Answer.asker_department_id)
        .outerjoin(Assignment, Assignment.id == Rating.assignment_id)
        .outerjoin(SampleItem, SampleItem.id == Assignment.sample_item_id)
        .where(
            Rating.is_current.is_(True),
            Rating.accuracy.is_not(None),
            Answer.created_at >= start,
            Answer.created_at < end,
            or_(SampleItem.is_gold.is_(None), SampleItem.is_gold == false()),
        )
        .group_by(Department.name)
    ).all()
    by_department = {
        name: WindowAccuracy(mean=float(total) / float(weights) if weights else None, ratings=int(n))
        for name, total, weights, n in rows
    }
    total = sum(float(r[1] or 0) for r in rows)
    weights = sum(float(r[2] or 0) for r in rows)
    overall = WindowAccuracy(mean=total / weights if weights else None, ratings=sum(int(r[3]) for r in rows))
    return overall, dict(sorted(by_department.items()))


def evaluate(session: Session, *, actor: User | None = None, now: dt.datetime | None = None) -> TriggerEvaluation:
    """Check every trigger as of ``now`` (default: the current time) and queue one job if any fires."""
    require(actor, "queue_training")
    policy = load_policy(session)
    now = now or utcnow()
    if now.tzinfo is None:
        raise ValidationError("evaluate: `now` must be timezone-aware")
    window = dt.timedelta(days=policy.window_days)
    last_job = last_job_at(session)
    applied = applied_fixes_since(session, last_job)
    current, by_department = weighted_accuracy(session, now - window, now)
    previous, _ = weighted_accuracy(session, now - 2 * window, now - window)

    reasons: list[str] = []
    if applied >= policy.min_applied_fixes:
        reasons.append(f"{applied} fixes applied since the last training job (threshold {policy.min_applied_fixes})")
    cooling = last_job is not None and now - last_job < dt.timedelta(days=policy.cooldown_days)
    if not cooling:
        reasons.extend(_quality_reasons(policy, current, previous))
        reasons.extend(_gap_reasons(policy, by_department))

    result = TriggerEvaluation(
        reasons=reasons, applied_fixes=applied, current=current, previous=previous, by_department=by_department
    )
    if not policy.enabled:
        return _with(result, message="triggers are disabled by policy")
    if not reasons:
        return _with(result, message="no trigger fired")
    outcome = _queue(session, actor=actor, reason="; ".join(reasons))
    return _with(result, queued=outcome.queued, job_id=outcome.job_id, message=outcome.message)


def _quality_reasons(policy: TriggersPolicy, current: WindowAccuracy, previous: WindowAccuracy) -> list[str]:
    if current.mean is None or current.ratings < policy.min_ratings_in_window:
        return []
    reasons = []
    days = policy.window_days
    if current.mean < policy.accuracy_floor:
        reasons.append(
            f"weighted accuracy over the last {days} days is {current.mean:.2f}, below the floor {policy.accuracy_floor:g}"
        )
    if previous.mean is not None and previous.ratings >= policy.min_ratings_in_window:
        drop = previous.mean - current.mean
        # a hair of tolerance: 3.5 - 3.2 is 0.2999999 in binary floating point
        if drop >= policy.accuracy_drop - 1e-9:
            reasons.append(
                f"weighted accuracy fell by {drop:.2f} ({previous.mean:.2f} -> {current.mean:.2f}) against the "
                f"previous {days} days (threshold {policy.accuracy_drop:g})"
            )
    return reasons


def _gap_reasons(policy: TriggersPolicy, by_department: dict[str, WindowAccuracy]) -> list[str]:
    counted = {
        d: w.mean
        for d, w in by_department.items()
        if w.mean is not None and w.ratings >= policy.min_ratings_per_department
    }
    if len(counted) < 2:
        return []
    best = max(counted, key=lambda d: counted[d])
    worst = min(counted, key=lambda d: counted[d])
    gap = counted[best] - counted[worst]
    if gap <= policy.department_gap + 1e-9:
        return []
    return [
        f"department accuracy gap {gap:.2f} ({best} {counted[best]:.2f} vs {worst} {counted[worst]:.2f}) "
        f"above {policy.department_gap:g}"
    ]


def _with(result: TriggerEvaluation, **changes: Any) -> TriggerEvaluation:
    return TriggerEvaluation(**{**result.__dict__, **changes})


def queue_training(session: Session, *, actor: User | None, reason: str) -> QueueResult:
    """Queue a job by hand (a lead's decision), on the current dataset version."""
    require(actor, "queue_training")
    if not reason or not reason.strip():
        raise ValidationError("queue training: a reason is required")
    return _queue(session, actor=actor, reason=reason.strip())


def _queue(session: Session, *, actor: User | None, reason: str) -> QueueResult:
    existing = active_job(session)
    if existing is not None:
        return QueueResult(False, existing.id, f"{ALREADY_ACTIVE} (job {existing.id}, {existing.status})")
    version = datasets.current_version(session)
    if version is None:
        return QueueResult(False, None, "no dataset version to train on: apply fixes or create one first")
    job = TrainingJob(
        status="queued",
        active=True,
        trigger_reason=reason,
        dataset_version_id=version.id,
        config={},
        attempts=0,
        requested_by_id=actor.id if actor is not None else None,
    )
    try:
        # a concurrent evaluation may have queued one since the check above: the unique index on
        # `active` refuses ours (on PostgreSQL this waits for the other transaction to finish)
        with session.begin_nested():
            session.add(job)
            session.flush()
    except IntegrityError:
        other = active_job(session)
        return QueueResult(False, other.id if other else None, ALREADY_ACTIVE)
    auditlog.record(
        session,
        actor=actor,
        action="training.queued",
        entity_type="training_job",
        entity_id=job.id,
        details={"reason": reason, "dataset_version": version.number},
    )
    return QueueResult(True, job.id, f"queued training job {job.id} on dataset version {version.number}: {reason}")
