"""The database itself refuses bad writes, even when a service forgets to validate."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from audit.auditlog import service as auditlog
from audit.auditlog.models import AuditLogEntry
from audit.modelops.models import TrainingJob
from audit.ratings.models import Rating
from tests import factories as f


@pytest.mark.parametrize("value", [0, 6, -1])
def test_out_of_range_rating_is_rejected_by_the_database(session, value: int) -> None:
    dept = f.department(session, "Legal")
    ans = f.answer(session, dept=dept, model=f.model_version(session))
    auditor = f.user(session)
    with pytest.raises(IntegrityError), session.begin_nested():
        f.rating(session, ans=ans, auditor=auditor, accuracy=value)


def test_second_current_rating_for_same_answer_and_auditor_is_rejected(session) -> None:
    dept = f.department(session, "Legal")
    ans = f.answer(session, dept=dept, model=f.model_version(session))
    auditor = f.user(session)
    f.rating(session, ans=ans, auditor=auditor)
    with pytest.raises(IntegrityError), session.begin_nested():
        f.rating(session, ans=ans, auditor=auditor)


def test_superseded_rating_may_coexist_with_current(session) -> None:
    dept = f.department(session, "Legal")
    ans = f.answer(session, dept=dept, model=f.model_version(session))
    auditor = f.user(session)
    old = f.rating(session, ans=ans, auditor=auditor, accuracy=2)
    old.is_current = False
    session.flush()
    new = f.rating(session, ans=ans, auditor=auditor, accuracy=4, supersedes_id=old.id)
    assert new.id != old.id


def test_bias_flag_without_department_is_rejected(session) -> None:
    dept = f.department(session, "Legal")
    ans = f.answer(session, dept=dept, model=f.model_version(session))
    with pytest.raises(IntegrityError), session.begin_nested():
        f.rating(session, ans=ans, auditor=f.user(session), bias_flag=True)


def test_duplicate_answer_external_id_is_rejected(session) -> None:
    dept = f.department(session, "Legal")
    model = f.model_version(session)
    f.answer(session, dept=dept, model=model, external_id="same")
    with pytest.raises(IntegrityError), session.begin_nested():
        f.answer(session, dept=dept, model=model, external_id="same")


def test_unknown_role_is_rejected(session) -> None:
    with pytest.raises(IntegrityError), session.begin_nested():
        f.user(session, role="superuser")


def test_only_one_training_job_may_be_active(session) -> None:
    session.add(TrainingJob(trigger_reason="first"))
    session.flush()
    with pytest.raises(IntegrityError), session.begin_nested():
        session.add(TrainingJob(trigger_reason="second"))
        session.flush()


def test_finished_jobs_do_not_block_a_new_one(session) -> None:
    job = TrainingJob(trigger_reason="first")
    session.add(job)
    session.flush()
    job.status, job.active = "succeeded", None
    session.flush()
    session.add(TrainingJob(trigger_reason="second"))
    session.flush()


def test_audit_log_cannot_be_edited_or_deleted(session) -> None:
    entry = auditlog.record(session, actor=None, action="test", entity_type="x")
    session.flush()
    with pytest.raises(DBAPIError), session.begin_nested():
        session.execute(update(AuditLogEntry).where(AuditLogEntry.id == entry.id).values(action="forged"))
    with pytest.raises(DBAPIError), session.begin_nested():
        session.execute(text("DELETE FROM audit_log"))


def test_timestamps_come_back_timezone_aware(session) -> None:
    dept = f.department(session, "Legal")
    ans = f.answer(session, dept=dept, model=f.model_version(session))
    session.expire_all()
    fetched = session.get(Rating, f.rating(session, ans=ans, auditor=f.user(session)).id)
    assert fetched is not None and fetched.created_at.tzinfo is not None
    assert fetched.created_at == dt.datetime(2026, 11, 27, 13, tzinfo=dt.UTC)
