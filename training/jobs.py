"""The training job queue on ``training_jobs``: enqueue, claim atomically, heartbeat, reclaim, finish.

Claiming is atomic on both backends. PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED`` picks a
queued job no other transaction holds. SQLite: every transaction starts with ``BEGIN IMMEDIATE``
(one writer at a time), and the claim is a conditional ``UPDATE ... WHERE id = ? AND status =
'queued'`` whose row count says whether this worker won.

A job is claimed with ``attempts + 1``. A running job whose heartbeat is older than the timeout
(its worker died) goes back to the queue — or fails once it has used ``max_attempts``. Every
transition after the claim is conditional on ``worker_id`` and ``status = 'running'``, so a worker
that lost its job (reclaimed while it was stalled) cannot record a result. ``active`` is TRUE while
queued or running and NULL afterwards (the unique index admits one active job).

Callers commit; these functions flush.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, CursorResult, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from audit.auditlog import service as auditlog
from audit.base import utcnow
from audit.errors import ConflictError, NotFoundError, ValidationError
from audit.knowledge import datasets
from audit.modelops.models import TrainingJob
from audit.org.models import User
from audit.permissions import require

MAX_ERROR_CHARS = 4000


class JobLost(ConflictError):
    """This worker no longer owns the job (it was reclaimed after missed heartbeats)."""


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    worker_id: str
    attempts: int
    max_attempts: int
    dataset_version_id: int | None
    config: dict[str, Any]
    trigger_reason: str


def enqueue(
    session: Session,
    *,
    actor: User | None,
    reason: str,
    dataset_version_id: int | None = None,
    config: dict[str, Any] | None = None,
    max_attempts: int = 3,
) -> TrainingJob:
    """Queue one job for ``dataset_version_id`` (default: the current dataset version).

    Raises ConflictError when a job is already queued or running: the database admits one.
    """
    require(actor, "queue_training")
    if not reason.strip():
        raise ValidationError("a training job needs a reason")
    if max_attempts < 1:
        raise ValidationError(f"max_attempts must be >= 1 (got {max_attempts})")
    if dataset_version_id is None:
        current = datasets.current_version(session)
        if current is None:
            raise NotFoundError("there is no current dataset version to train on (see `auditloop dataset list`)")
        dataset_version_id = current.id
    job = TrainingJob(
        status="queued",
        active=True,
        trigger_reason=reason.strip(),
        dataset_version_id=dataset_version_id,
        config=dict(config or {}),
        attempts=0,
        max_attempts=max_attempts,
        requested_by_id=actor.id if actor else None,
    )
    try:
        with session.begin_nested():
            session.add(job)
            session.flush()
    except IntegrityError as exc:
        active = session.scalars(select(TrainingJob).where(TrainingJob.active.is_not(None))).first()
        which = f"job {active.id} is {active.status}" if active else "another job is active"
        raise ConflictError(f"a training job is already queued or running ({which})") from exc
    auditlog.record(
        session,
        actor=actor,
        action="training.queued",
        entity_type="training_job",
        entity_id=job.id,
        details={"reason": job.trigger_reason, "dataset_version_id": dataset_version_id},
    )
    return job


def claim_next(session: Session, *, worker_id: str, now: dt.datetime | None = None) -> ClaimedJob | None:
    """Claim the oldest queued job for ``worker_id``, or return None when there is none to take."""
    now = now or utcnow()
    candidates = (
        select(TrainingJob.id)
        .where(TrainingJob.status == "queued", TrainingJob.attempts < TrainingJob.max_attempts)
        .order_by(TrainingJob.created_at, TrainingJob.id)
        .limit(1)
    )
    if session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    job_id = session.scalar(candidates)
    if job_id is None:
        return None
    claimed: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(TrainingJob)
        .where(TrainingJob.id == job_id, TrainingJob.status == "queued")
        .values(
            status="running",
            worker_id=worker_id,
            attempts=TrainingJob.attempts + 1,
            claimed_at=now,
            heartbeat_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # another worker took it between our read and our write
        return None
    row = session.execute(
        select(
            TrainingJob.attempts,
            TrainingJob.max_attempts,
            TrainingJob.dataset_version_id,
            TrainingJob.config,
            TrainingJob.trigger_reason,
        ).where(TrainingJob.id == job_id)
    ).one()
    auditlog.record(
        session,
        actor=None,
        actor_name=worker_id,
        action="training.claimed",
        entity_type="training_job",
        entity_id=job_id,
        details={"attempt": row.attempts},
    )
    return ClaimedJob(
        id=job_id,
        worker_id=worker_id,
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        dataset_version_id=row.dataset_version_id,
        config=dict(row.config or {}),
        trigger_reason=row.trigger_reason,
    )


def heartbeat(connection: Connection, *, job_id: int, worker_id: str, now: dt.datetime | None = None) -> bool:
    """Refresh the job's heartbeat on the heartbeat thread's own connection and commit.
    False when the job is no longer this worker's."""
    result: CursorResult[Any] = connection.execute(  # type: ignore[assignment]
        update(TrainingJob)
        .where(TrainingJob.id == job_id, TrainingJob.worker_id == worker_id, TrainingJob.status == "running")
        .values(heartbeat_at=now or utcnow())
    )
    connection.commit()
    return result.rowcount == 1


def reclaim_stale(session: Session, *, timeout_seconds: float, now: dt.datetime | None = None) -> list[tuple[int, str]]:
    """Requeue running jobs whose worker stopped sending heartbeats ``timeout_seconds`` ago; a job
    that has used all its attempts fails instead. Returns (job id, new status) pairs."""
    now = now or utcnow()
    cutoff = now - dt.timedelta(seconds=timeout_seconds)
    stale = session.execute(
        select(TrainingJob.id, TrainingJob.worker_id, TrainingJob.attempts, TrainingJob.max_attempts).where(
            TrainingJob.status == "running", TrainingJob.heartbeat_at < cutoff
        )
    ).all()
    changed: list[tuple[int, str]] = []
    for job_id, lost_worker, attempts, max_attempts in stale:
        message = (
            f"worker {lost_worker} sent no heartbeat for {timeout_seconds:g} s (attempt {attempts} of {max_attempts})"
        )
        give_up = attempts >= max_attempts
        values: dict[str, Any] = (
            {"status": "failed", "active": None, "finished_at": now, "error": message + "; no attempts left"}
            if give_up
            else {"status": "queued", "worker_id": None, "error": message + "; requeued"}
        )
        result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
            update(TrainingJob)
            # conditional: a heartbeat that landed since our read means the worker is alive after all
            .where(TrainingJob.id == job_id, TrainingJob.status == "running", TrainingJob.heartbeat_at < cutoff)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:
            new_status = values["status"]
            changed.append((job_id, new_status))
            auditlog.record(
                session,
                actor=None,
                action="training.reclaimed",
                entity_type="training_job",
                entity_id=job_id,
                details={"lost_worker": lost_worker, "status": new_status, "attempts": attempts},
            )
    return changed


def finish_success(session: Session, *, job_id: int, worker_id: str, model_version_id: int) -> None:
    """Mark the job succeeded with its model version; raises JobLost if the job is no longer ours."""
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(TrainingJob)
        .where(TrainingJob.id == job_id, TrainingJob.worker_id == worker_id, TrainingJob.status == "running")
        .values(
            status="succeeded",
            active=None,
            finished_at=utcnow(),
            heartbeat_at=utcnow(),
            model_version_id=model_version_id,
            error=None,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise JobLost(f"training job {job_id} is no longer held by worker {worker_id} (reclaimed); result dropped")
    auditlog.record(
        session,
        actor=None,
        actor_name=worker_id,
        action="training.succeeded",
        entity_type="training_job",
        entity_id=job_id,
        details={"model_version_id": model_version_id},
    )


def finish_failure(session: Session, *, job_id: int, worker_id: str, error: str, retry: bool) -> str | None:
    """Record a failed attempt: back to the queue when ``retry`` and attempts remain, else failed.
    Returns the new status, or None when the job was no longer this worker's."""
    row = session.execute(
        select(TrainingJob.attempts, TrainingJob.max_attempts).where(
            TrainingJob.id == job_id, TrainingJob.worker_id == worker_id, TrainingJob.status == "running"
        )
    ).one_or_none()
    if row is None:
        return None
    requeue = retry and row.attempts < row.max_attempts
    error = error[:MAX_ERROR_CHARS]
    values: dict[str, Any] = (
        {"status": "queued", "worker_id": None, "error": f"attempt {row.attempts} failed: {error}"}
        if requeue
        else {"status": "failed", "active": None, "finished_at": utcnow(), "error": error}
    )
    session.execute(
        update(TrainingJob)
        .where(TrainingJob.id == job_id, TrainingJob.worker_id == worker_id, TrainingJob.status == "running")
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    auditlog.record(
        session,
        actor=None,
        actor_name=worker_id,
        action="training.failed" if not requeue else "training.retry",
        entity_type="training_job",
        entity_id=job_id,
        details={"error": error[:500], "attempt": row.attempts, "status": values["status"]},
    )
    return str(values["status"])


def cancel(session: Session, *, actor: User | None, job_id: int) -> TrainingJob:
    """Cancel a queued job (a running one belongs to its worker and is not interrupted)."""
    require(actor, "queue_training")
    job = session.get(TrainingJob, job_id)
    if job is None:
        raise NotFoundError(f"training job {job_id} does not exist")
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(TrainingJob)
        .where(TrainingJob.id == job_id, TrainingJob.status == "queued")
        .values(status="cancelled", active=None, finished_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise ConflictError(f"training job {job_id} is {job.status}: only a queued job can be cancelled")
    session.refresh(job)
    auditlog.record(session, actor=actor, action="training.cancelled", entity_type="training_job", entity_id=job_id)
    return job


def recent_jobs(session: Session, *, limit: int = 50) -> list[TrainingJob]:
    return list(session.scalars(select(TrainingJob).order_by(TrainingJob.id.desc()).limit(limit)))
