"""Retraining triggers: fix count, weighted quality floor and drop, department gap; one job at a time."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audit.db import make_engine, make_session_factory
from audit.errors import PermissionDenied
from audit.fixes.models import DataFix
from audit.knowledge import datasets
from audit.modelops.models import TrainingJob
from audit.org.models import Department, User
from audit.sampling.models import Assignment, SampleBatch, SampleItem
from audit.triggers import service as triggers
from audit.triggers.policy import TriggersPolicy
from tests import factories as f

NOW = dt.datetime(2026, 11, 28, tzinfo=dt.UTC)
IN_WINDOW = NOW - dt.timedelta(days=2)
PREVIOUS_WINDOW = NOW - dt.timedelta(days=10)


def _applied_fixes(session: Session, n: int, decided_at: dt.datetime = IN_WINDOW) -> None:
    session.add_all(
        DataFix(kind="retrieval_pair", status="applied", reason="r", payload={}, decided_at=decided_at)
        for _ in range(n)
    )
    session.flush()


def _finished_job(session: Session, *, created_at: dt.datetime) -> None:
    job = TrainingJob(status="queued", trigger_reason="earlier", created_at=created_at)
    session.add(job)
    session.flush()
    # the ORM inserts the column default for a None, so finish the job the way a worker does
    job.status, job.active = "succeeded", None
    session.flush()


def _dataset(session: Session, dept: Department) -> None:
    f.example(session, dept=dept)
    datasets.create_version(session, actor=None, change_log=[])


def _ratings(
    session: Session,
    *,
    dept: Department,
    auditor: User,
    accuracies: list[int],
    answered_at: dt.datetime = IN_WINDOW,
) -> None:
    model = f.model_version(session)
    for accuracy in accuracies:
        ans = f.answer(session, dept=dept, model=model, created_at=answered_at)
        f.rating(session, ans=ans, auditor=auditor, accuracy=accuracy)


def _sampled_rating(
    session: Session, *, dept: Department, auditor: User, accuracy: int, weight: float, gold: bool = False
) -> None:
    ans = f.answer(session, dept=dept, model=f.model_version(session), created_at=IN_WINDOW)
    batch = session.scalars(select(SampleBatch)).first()
    if batch is None:
        batch = SampleBatch(
            sample_date=IN_WINDOW.date(), strategy="test", window_start=IN_WINDOW, window_end=NOW, population=10
        )
        session.add(batch)
        session.flush()
    item = SampleItem(
        batch_id=batch.id,
        answer_id=ans.id,
        stratum="gold" if gold else dept.name,
        inclusion_weight=weight,
        is_gold=gold,
    )
    session.add(item)
    session.flush()
    assignment = Assignment(sample_item_id=item.id, answer_id=ans.id, auditor_id=auditor.id, status="submitted")
    session.add(assignment)
    session.flush()
    f.rating(session, ans=ans, auditor=auditor, accuracy=accuracy, assignment_id=assignment.id)


def test_weighted_accuracy_uses_inclusion_weights_and_leaves_out_gold_and_superseded(session) -> None:
    hr, legal = f.department(session, "HR"), f.department(session, "Legal")
    auditor = f.user(session)
    _sampled_rating(session, dept=hr, auditor=auditor, accuracy=2, weight=3.0)
    _sampled_rating(session, dept=hr, auditor=auditor, accuracy=5, weight=1.0)
    _sampled_rating(session, dept=hr, auditor=auditor, accuracy=1, weight=1.0, gold=True)  # calibration only
    _ratings(session, dept=legal, auditor=auditor, accuracies=[4])  # imported history: weight 1
    old = f.rating(
        session,
        ans=f.answer(session, dept=legal, model=f.model_version(session), created_at=IN_WINDOW),
        auditor=auditor,
        accuracy=1,
    )
    old.is_current = False  # superseded by an edit
    session.flush()
    _ratings(session, dept=legal, auditor=auditor, accuracies=[5], answered_at=PREVIOUS_WINDOW)  # other window

    overall, by_department = triggers.weighted_accuracy(session, NOW - dt.timedelta(days=7), NOW)

    # HR: (3x2 + 1x5) / (3 + 1) = 2.75; Legal: 4; overall: (6 + 5 + 4) / 5 = 3.0
    assert by_department["HR"].mean == pytest.approx(2.75) and by_department["HR"].ratings == 2
    assert by_department["Legal"].mean == pytest.approx(4.0) and by_department["Legal"].ratings == 1
    assert overall.mean == pytest.approx(3.0) and overall.ratings == 3


def test_enough_applied_fixes_queue_one_job_on_the_current_version(session) -> None:
    dept = f.department(session, "HR")
    _dataset(session, dept)
    _applied_fixes(session, 19)
    quiet = triggers.evaluate(session, now=NOW)
    assert not quiet.queued and quiet.reasons == [] and quiet.message == "no trigger fired"

    _applied_fixes(session, 1)
    fired = triggers.evaluate(session, now=NOW)

    assert fired.queued and fired.reasons == ["20 fixes applied since the last training job (threshold 20)"]
    job = session.get(TrainingJob, fired.job_id)
    assert job is not None and job.status == "queued" and job.active is True
    assert job.dataset_version_id == datasets.current_version(session).id  # type: ignore[union-attr]
    assert job.trigger_reason == fired.reasons[0]

    job.created_at = NOW - dt.timedelta(days=1)
    _applied_fixes(session, 20, decided_at=NOW - dt.timedelta(hours=1))  # enough for another job
    again = triggers.evaluate(session, now=NOW)
    assert again.reasons and not again.queued
    assert again.message == f"{triggers.ALREADY_ACTIVE} (job {job.id}, queued)"
    assert session.scalar(select(func.count()).select_from(TrainingJob)) == 1


def test_fix_count_restarts_at_each_job(session) -> None:
    dept = f.department(session, "HR")
    _dataset(session, dept)
    _applied_fixes(session, 25, decided_at=NOW - dt.timedelta(days=3))
    _finished_job(session, created_at=NOW - dt.timedelta(days=2))
    _applied_fixes(session, 5, decided_at=NOW - dt.timedelta(days=1))
    result = triggers.evaluate(session, now=NOW)
    assert result.applied_fixes == 5 and not result.queued


def test_no_dataset_version_means_no_job(session) -> None:
    _applied_fixes(session, 20)
    result = triggers.evaluate(session, now=NOW)
    assert not result.queued and result.message.startswith("no dataset version to train on")


def test_accuracy_below_the_floor_triggers_once_there_are_enough_ratings(session) -> None:
    dept = f.department(session, "HR")
    _dataset(session, dept)
    auditor = f.user(session)
    _ratings(session, dept=dept, auditor=auditor, accuracies=[2] * 29)
    assert triggers.evaluate(session, now=NOW).reasons == []  # 29 ratings say nothing yet

    _ratings(session, dept=dept, auditor=auditor, accuracies=[2])
    result = triggers.evaluate(session, now=NOW)

    assert result.queued
    assert result.reasons == ["weighted accuracy over the last 7 days is 2.00, below the floor 3"]


def test_a_drop_against_the_previous_window_triggers(session) -> None:
    dept = f.department(session, "HR")
    _dataset(session, dept)
    auditor = f.user(session)
    _ratings(session, dept=dept, auditor=auditor, accuracies=[4] * 30, answered_at=PREVIOUS_WINDOW)
    # 0.3 below: 3.7 = (4 x 21 + 3 x 9) / 30
    _ratings(session, dept=dept, auditor=auditor, accuracies=[4] * 21 + [3] * 9)

    result = triggers.evaluate(session, now=NOW)

    assert result.current.mean == pytest.approx(3.7) and result.previous.mean == pytest.approx(4.0)
    assert result.reasons == [
        "weighted accuracy fell by 0.30 (4.00 -> 3.70) against the previous 7 days (threshold 0.3)"
    ]


def test_a_department_gap_triggers_only_with_enough_ratings_on_both_sides(session) -> None:
    hr, legal = f.department(session, "HR"), f.department(session, "Legal")
    _dataset(session, hr)
    auditor = f.user(session)
    _ratings(session, dept=legal, auditor=auditor, accuracies=[5] * 30)
    _ratings(session, dept=hr, auditor=auditor, accuracies=[4] * 29)
    assert triggers.evaluate(session, now=NOW).reasons == []

    _ratings(session, dept=hr, auditor=auditor, accuracies=[4])
    result = triggers.evaluate(session, now=NOW)

    assert result.reasons == ["department accuracy gap 1.00 (Legal 5.00 vs HR 4.00) above 0.5"]
    assert result.queued


def test_quality_triggers_wait_out_the_cooldown_after_a_job(session) -> None:
    dept = f.department(session, "HR")
    _dataset(session, dept)
    _ratings(session, dept=dept, auditor=f.user(session), accuracies=[1] * 30)
    _finished_job(session, created_at=NOW - dt.timedelta(days=3))
    assert triggers.evaluate(session, now=NOW).reasons == []
    assert triggers.evaluate(session, now=NOW + dt.timedelta(days=5)).reasons != []


def test_disabled_policy_queues_nothing(session) -> None:
    f.department(session, "HR")
    _dataset(session, f.department(session, "HR"))
    triggers.save_policy(session, actor=None, policy=TriggersPolicy(enabled=False))
    _applied_fixes(session, 50)
    result = triggers.evaluate(session, now=NOW)
    assert result.reasons and not result.queued and result.message == "triggers are disabled by policy"


@pytest.mark.parametrize("role", ["auditor", "sme", "admin"])
def test_only_leads_and_the_system_may_queue_training(session, role: str) -> None:
    with pytest.raises(PermissionDenied):
        triggers.evaluate(session, actor=f.user(session, role=role), now=NOW)
    with pytest.raises(PermissionDenied):
        triggers.queue_training(session, actor=f.user(session, role=role), reason="because")


def test_a_lead_queues_by_hand_once(session) -> None:
    _dataset(session, f.department(session, "HR"))
    lead = f.user(session, role="lead")
    first = triggers.queue_training(session, actor=lead, reason="new base model")
    second = triggers.queue_training(session, actor=lead, reason="again")
    assert first.queued and not second.queued and second.job_id == first.job_id
    job = session.get(TrainingJob, first.job_id)
    assert job is not None and job.requested_by_id == lead.id


@pytest.mark.postgres
def test_two_processes_evaluating_at_once_queue_one_job(migrated_postgres_url: str) -> None:
    engine = make_engine(migrated_postgres_url)
    factory = make_session_factory(engine)
    with factory.begin() as setup:
        _dataset(setup, f.department(setup, "HR"))
        _applied_fixes(setup, 20)

    first_inserted = threading.Event()
    outcomes: dict[str, triggers.TriggerEvaluation] = {}
    errors: list[BaseException] = []

    def first() -> None:
        try:
            with factory.begin() as s:
                outcomes["first"] = triggers.evaluate(s, now=NOW)
                first_inserted.set()
                # keep the transaction open so the second one passes its check and hits the index
                threading.Event().wait(0.5)
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)
            first_inserted.set()

    def second() -> None:
        try:
            first_inserted.wait(10)
            with factory.begin() as s:
                outcomes["second"] = triggers.evaluate(s, now=NOW)
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    try:
        assert errors == []
        assert outcomes["first"].queued
        assert not outcomes["second"].queued and outcomes["second"].message == triggers.ALREADY_ACTIVE
        with factory() as check:
            assert check.scalar(select(func.count()).select_from(TrainingJob)) == 1
    finally:
        engine.dispose()
