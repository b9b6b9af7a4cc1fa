"""Assignment: balanced across active auditors, never the same answer twice, locks that expire."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from audit.errors import ConflictError, NotFoundError, PermissionDenied
from audit.policy import service as policy_service
from audit.ratings import service as ratings
from audit.sampling import service as sampling
from audit.sampling.models import Assignment, SampleItem
from audit.sampling.policy import SamplingPolicy
from tests import factories as f

DAY = dt.date(2026, 11, 28)
NOW = dt.datetime(2026, 11, 28, 9, tzinfo=dt.UTC)
YESTERDAY_NOON = dt.datetime(2026, 11, 27, 12, tzinfo=dt.UTC)


def _answers(session: Session, dept_name: str, n: int, created_at: dt.datetime = YESTERDAY_NOON) -> list:
    dept = f.department(session, dept_name)
    model = f.model_version(session)
    return [f.answer(session, dept=dept, model=model, created_at=created_at) for _ in range(n)]


def _policy(session: Session, **changes: object) -> None:
    base = SamplingPolicy(per_department_min=0, gold_share=0.0)
    policy_service.save(session, actor=None, name="sampling", settings=dataclasses.replace(base, **changes))


def _loads(session: Session) -> Counter[int]:
    return Counter(session.scalars(select(Assignment.auditor_id).where(Assignment.status == "pending")).all())


def test_assignment_is_balanced_and_overlap_items_go_to_distinct_auditors(session: Session) -> None:
    _answers(session, "Ops", 40)
    auditors = [f.user(session) for _ in range(5)]
    _policy(session, sample_size=23, overlap_share=0.3, overlap_k=3)

    summary = sampling.draw_sample(session, actor=None, sample_date=DAY, now=NOW)

    items = session.scalars(select(SampleItem)).all()
    # round(0.3 * 23) = 7 items rated by 3 auditors, 16 by one: 37 assignments
    assert sum(i.overlap_k for i in items) == 37 and summary.unfilled_slots == 0
    loads = _loads(session)
    assert set(loads) == {a.id for a in auditors}
    assert max(loads.values()) - min(loads.values()) <= 1
    for item in items:
        given_to = session.scalars(select(Assignment.auditor_id).where(Assignment.sample_item_id == item.id)).all()
        assert len(given_to) == len(set(given_to)) == item.overlap_k


def test_least_loaded_auditors_get_more_and_inactive_or_other_roles_get_none(session: Session) -> None:
    busy, idle = f.user(session), f.user(session)
    inactive = f.user(session, active=False)
    sme = f.user(session, role="sme")
    backlog = _answers(session, "Ops", 4, created_at=YESTERDAY_NOON - dt.timedelta(days=3))
    for ans in backlog:
        f.assignment(session, ans=ans, auditor=busy, sample_date=DAY - dt.timedelta(days=2))
    _answers(session, "Ops", 10)
    _policy(session, sample_size=10, overlap_share=0.0)

    sampling.draw_sample(session, actor=None, sample_date=DAY, now=NOW)

    loads = _loads(session)
    assert loads[busy.id] == 7 and loads[idle.id] == 7  # busy had 4 pending: it gets 3, idle gets 7
    assert loads[inactive.id] == 0 and loads[sme.id] == 0


def test_an_auditor_never_gets_the_same_answer_twice(session: Session) -> None:
    first, second = f.user(session), f.user(session)
    ans = _answers(session, "Ops", 1, created_at=YESTERDAY_NOON - dt.timedelta(days=5))[0]
    gold = f.gold_answer(session, ans=ans)
    f.assignment(session, ans=ans, auditor=first, sample_date=DAY - dt.timedelta(days=3))
    _answers(session, "Ops", 1)  # one production answer: the day is not empty
    _policy(session, sample_size=2, gold_share=0.5, overlap_share=0.0)

    sampling.draw_sample(session, actor=None, sample_date=DAY, now=NOW)

    latest = session.scalars(select(SampleItem).where(SampleItem.gold_item_id == gold.id)).one()
    given_to = session.scalars(select(Assignment.auditor_id).where(Assignment.sample_item_id == latest.id)).all()
    assert given_to == [second.id]


def test_exclude_own_department(session: Session) -> None:
    ops, hr = f.department(session, "Ops"), f.department(session, "HR")
    ops_auditor = f.user(session, home_department=ops)
    hr_auditor = f.user(session, home_department=hr)
    ops_answers = {a.id for a in _answers(session, "Ops", 6)}
    hr_answers = {a.id for a in _answers(session, "HR", 6)}
    _policy(session, sample_size=12, overlap_share=0.0, exclude_own_department=True)

    sampling.draw_sample(session, actor=None, sample_date=DAY, now=NOW)

    got = {
        auditor_id: set(session.scalars(select(Assignment.answer_id).where(Assignment.auditor_id == auditor_id)))
        for auditor_id in (ops_auditor.id, hr_auditor.id)
    }
    assert got[ops_auditor.id] == hr_answers and got[hr_auditor.id] == ops_answers


def test_assign_fills_slots_left_open_when_auditors_were_missing(session: Session) -> None:
    f.user(session)
    _answers(session, "Ops", 10)
    _policy(session, sample_size=10, overlap_share=0.5, overlap_k=2)
    first = sampling.draw_sample(session, actor=None, sample_date=DAY, now=NOW)
    assert first.unfilled_slots == 5  # five overlap items found only one auditor
    f.user(session)
    result = sampling.assign_batch(session, actor=None, batch_id=first.batch_id, now=NOW)
    assert result.created == 5 and result.unfilled_slots == 0
    assert sampling.assign_batch(session, actor=None, batch_id=first.batch_id, now=NOW).created == 0


# ---------------------------------------------------------------- next item and locks


def test_next_item_lock_commits_without_waiting_for_the_wal_flush_on_postgresql(session: Session) -> None:
    """The lock is a lease: on PostgreSQL its transaction alone commits asynchronously."""
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("synchronous_commit is a PostgreSQL setting")
    auditor = f.user(session)
    f.assignment(session, ans=_answers(session, "Ops", 1)[0], auditor=auditor)
    assert session.scalar(text("SELECT current_setting('synchronous_commit')")) == "on"
    assert sampling.next_item(session, actor=auditor, now=NOW) is not None
    assert session.scalar(text("SELECT current_setting('synchronous_commit')")) == "off"
    with session.get_bind().engine.connect() as other:  # type: ignore[union-attr]
        assert other.scalar(text("SELECT current_setting('synchronous_commit')")) == "on"  # local to it
    assert session.scalar(select(Assignment.locked_until)) == NOW + dt.timedelta(minutes=30)


def test_next_item_hands_out_in_order_locks_and_counts_progress(session: Session) -> None:
    auditor = f.user(session)
    ans = _answers(session, "Ops", 3)
    for a in ans:
        f.assignment(session, ans=a, auditor=auditor)
    _policy(session, lock_minutes=30)

    item = sampling.next_item(session, actor=auditor, now=NOW)
    assert item is not None
    assert (item.answer_id, item.department, item.progress, item.number) == (
        ans[0].id,
        "Ops",
        sampling.Progress(0, 3),
        1,
    )
    assert item.question == ans[0].question and item.answer_text == ans[0].answer_text
    assert item.locked_until == NOW + dt.timedelta(minutes=30)
    assert not hasattr(item, "is_gold")  # auditors are blind to gold items

    again = sampling.next_item(session, actor=auditor, now=NOW + dt.timedelta(minutes=5))
    assert again is not None and again.assignment_id == item.assignment_id
    assert again.locked_until == NOW + dt.timedelta(minutes=35)

    ratings.submit_rating(
        session,
        actor=auditor,
        assignment_id=item.assignment_id,
        accuracy=4,
        completeness=4,
        relevance=4,
        coherence=4,
        now=NOW,
    )
    second = sampling.next_item(session, actor=auditor, now=NOW)
    assert second is not None and second.answer_id == ans[1].id and second.number == 2
    ratings.skip_assignment(session, actor=auditor, assignment_id=second.assignment_id, reason="not my field")
    third = sampling.next_item(session, actor=auditor, now=NOW)
    assert third is not None and third.progress == sampling.Progress(2, 3)
    ratings.submit_rating(
        session,
        actor=auditor,
        assignment_id=third.assignment_id,
        accuracy=5,
        completeness=None,
        relevance=None,
        coherence=None,
        now=NOW,
    )
    assert sampling.next_item(session, actor=auditor, now=NOW) is None


def test_next_item_shows_sources_with_document_title_and_outdated_flag(session: Session) -> None:
    auditor = f.user(session)
    dept = f.department(session, "HR")
    old = f.document(session, dept=dept, family="LEAVE", version=1, title="Leave policy")
    new = f.document(session, dept=dept, family="LEAVE", version=2, title="Leave policy")
    old.superseded_by_id = new.id
    ans = f.answer(
        session,
        dept=dept,
        model=f.model_version(session),
        sources=[
            {"document_id": "LEAVE@v1", "department": "HR", "score": 0.9},
            {"document_id": new.id, "department": "HR", "score": 0.5},
            {"document_id": "GONE@v1", "department": "IT", "score": 0.1},
        ],
    )
    f.assignment(session, ans=ans, auditor=auditor)
    item = sampling.next_item(session, actor=auditor, now=NOW)
    assert item is not None
    assert [(s.title, s.version, s.outdated, s.department, s.score) for s in item.sources] == [
        ("Leave policy", 1, True, "HR", 0.9),
        ("Leave policy", 2, False, "HR", 0.5),
        (None, None, False, "IT", 0.1),
    ]


def test_older_batches_come_first(session: Session) -> None:
    auditor = f.user(session)
    today, older = _answers(session, "Ops", 2)
    f.assignment(session, ans=older, auditor=auditor, sample_date=DAY - dt.timedelta(days=1))
    f.assignment(session, ans=today, auditor=auditor, sample_date=DAY)
    item = sampling.next_item(session, actor=auditor, now=NOW)
    assert item is not None and item.answer_id == older.id and item.sample_date == DAY - dt.timedelta(days=1)
    assert item.progress == sampling.Progress(0, 1)  # progress counts this batch only


def test_expired_lock_goes_to_another_auditor(session: Session) -> None:
    slow, other = f.user(session), f.user(session)
    opened, untouched = _answers(session, "Ops", 2)
    a_opened = f.assignment(session, ans=opened, auditor=slow)
    f.assignment(session, ans=untouched, auditor=slow)
    _policy(session, lock_minutes=30)
    assert sampling.next_item(session, actor=slow, now=NOW).assignment_id == a_opened.id  # type: ignore[union-attr]

    assert sampling.release_expired(session, NOW + dt.timedelta(minutes=29)).expired_assignment_ids == ()
    result = sampling.release_expired(session, NOW + dt.timedelta(minutes=31))

    assert result.expired_assignment_ids == (a_opened.id,) and result.reassigned == 1
    assert a_opened.status == "expired"
    moved = session.scalars(
        select(Assignment).where(Assignment.answer_id == opened.id, Assignment.status == "pending")
    ).one()
    assert moved.auditor_id == other.id and moved.sample_item_id == a_opened.sample_item_id
    # the slow auditor moves on to the untouched item and cannot rate the expired one any more
    following = sampling.next_item(session, actor=slow, now=NOW + dt.timedelta(minutes=32))
    assert following is not None and following.answer_id == untouched.id
    with pytest.raises(ConflictError, match="expired"):
        ratings.submit_rating(
            session, actor=slow, assignment_id=a_opened.id, accuracy=3, completeness=3, relevance=3, coherence=3
        )
    taken = sampling.next_item(session, actor=other, now=NOW + dt.timedelta(minutes=32))
    assert taken is not None and taken.answer_id == opened.id


def test_expired_lock_with_no_other_auditor_stays_unfilled(session: Session) -> None:
    only = f.user(session)
    a = f.assignment(session, ans=_answers(session, "Ops", 1)[0], auditor=only)
    sampling.next_item(session, actor=only, now=NOW)
    result = sampling.release_expired(session, NOW + dt.timedelta(hours=2))
    assert result.expired_assignment_ids == (a.id,) and result.reassigned == 0 and result.unfilled == 1


def test_a_deactivated_auditors_pending_items_go_back_to_the_pool(session: Session) -> None:
    from audit.org import service as org_service

    leaving, staying = f.user(session), f.user(session)
    done, left = _answers(session, "Ops", 2)
    finished = f.assignment(session, ans=done, auditor=leaving, status="submitted")
    pending = f.assignment(session, ans=left, auditor=leaving)

    org_service.set_active(session, actor=f.user(session, role="admin"), username=leaving.username, active=False)

    assert (finished.status, pending.status) == ("submitted", "expired")  # the history stays with them
    moved = session.scalars(select(Assignment).where(Assignment.answer_id == left.id, Assignment.status == "pending"))
    assert [a.auditor_id for a in moved] == [staying.id]


def _finish(session: Session, auditor, assignment: Assignment, at: dt.datetime, *, skip: bool = False) -> None:  # type: ignore[no-untyped-def]
    if skip:
        ratings.skip_assignment(session, actor=auditor, assignment_id=assignment.id, reason="not my field", now=at)
    else:
        ratings.submit_rating(
            session,
            actor=auditor,
            assignment_id=assignment.id,
            accuracy=4,
            completeness=4,
            relevance=4,
            coherence=4,
            now=at,
        )


def test_previous_item_walks_back_through_the_days_finished_items(session: Session) -> None:
    auditor = f.user(session)
    answers = _answers(session, "Ops", 4)
    yesterday, first, second, third = (f.assignment(session, ans=a, auditor=auditor) for a in answers)
    _finish(session, auditor, yesterday, NOW - dt.timedelta(days=1))
    _finish(session, auditor, first, NOW)
    _finish(session, auditor, second, NOW + dt.timedelta(minutes=5), skip=True)
    later = NOW + dt.timedelta(minutes=10)

    last = sampling.previous_item(session, actor=auditor, now=later)  # from the queue: the last one finished
    assert last is not None
    assert (last.assignment_id, last.status, last.skip_reason, last.locked_until) == (
        second.id,
        "skipped",
        "not my field",
        None,  # a finished item is shown, not locked
    )
    before = sampling.previous_item(session, actor=auditor, before_assignment_id=second.id, now=later)
    assert before is not None and (before.assignment_id, before.status) == (first.id, "submitted")
    assert (before.question, before.answer_id, before.progress) == (
        answers[1].question,
        answers[1].id,
        sampling.Progress(3, 4),
    )
    # yesterday's item is not reached (it can no longer be changed)
    assert sampling.previous_item(session, actor=auditor, before_assignment_id=first.id, now=later) is None
    # from a pending item (the one on screen): the last finished one
    current = sampling.previous_item(session, actor=auditor, before_assignment_id=third.id, now=later)
    assert current is not None and current.assignment_id == second.id
    assert third.locked_until is not None  # showing the pending one locked it, as next_item would
    # the next morning (UTC), nothing of yesterday's is shown
    assert sampling.previous_item(session, actor=auditor, now=dt.datetime(2026, 11, 29, 0, 1, tzinfo=dt.UTC)) is None


def test_an_item_is_shown_only_to_its_auditor_and_not_once_expired(session: Session) -> None:
    auditor, other = f.user(session), f.user(session)
    mine, gone = (f.assignment(session, ans=a, auditor=auditor) for a in _answers(session, "Ops", 2))
    _policy(session, lock_minutes=20)
    shown = sampling.item(session, actor=auditor, assignment_id=mine.id, now=NOW)
    assert (shown.status, shown.locked_until, shown.progress, shown.number) == (
        "pending",
        NOW + dt.timedelta(minutes=20),
        sampling.Progress(0, 2),
        1,
    )
    with pytest.raises(PermissionDenied, match=f"not assigned to {other.username}"):
        sampling.item(session, actor=other, assignment_id=mine.id, now=NOW)
    gone.status = "expired"
    session.flush()
    with pytest.raises(ConflictError, match="handed to another auditor"):
        sampling.item(session, actor=auditor, assignment_id=gone.id, now=NOW)
    with pytest.raises(NotFoundError):
        sampling.item(session, actor=auditor, assignment_id=gone.id + 1000, now=NOW)


def test_skipped_items_are_the_auditors_own_latest_first(session: Session) -> None:
    auditor, other = f.user(session), f.user(session)
    first, second, rated, theirs = _answers(session, "Ops", 4)
    older = f.assignment(session, ans=first, auditor=auditor, sample_date=DAY - dt.timedelta(days=1))
    newer = f.assignment(session, ans=second, auditor=auditor)
    _finish(session, auditor, older, NOW, skip=True)
    _finish(session, auditor, newer, NOW + dt.timedelta(minutes=1), skip=True)
    _finish(session, auditor, f.assignment(session, ans=rated, auditor=auditor), NOW)
    _finish(session, other, f.assignment(session, ans=theirs, auditor=other), NOW, skip=True)
    listed = sampling.skipped_items(session, actor=auditor)
    assert [(i.assignment_id, i.question, i.sample_date, i.reason, i.skipped_at) for i in listed] == [
        (newer.id, second.question, DAY, "not my field", NOW + dt.timedelta(minutes=1)),
        (older.id, first.question, DAY - dt.timedelta(days=1), "not my field", NOW),
    ]
    ratings.reopen_skipped(session, actor=auditor, assignment_id=newer.id)
    assert [i.assignment_id for i in sampling.skipped_items(session, actor=auditor)] == [older.id]


def test_queue_state_says_why_the_queue_is_empty(session: Session) -> None:
    auditor, other = f.user(session), f.user(session)
    assert sampling.queue_state(session, actor=auditor, today=DAY) == sampling.QueueState(
        today=DAY, sample_drawn=False, assigned=0, done=0
    )
    first, second = _answers(session, "Ops", 2)
    f.assignment(session, ans=first, auditor=other, sample_date=DAY)
    assert sampling.queue_state(session, actor=auditor, today=DAY).sample_drawn  # drawn, none of it theirs
    assert sampling.queue_state(session, actor=auditor, today=DAY).assigned == 0
    f.assignment(session, ans=second, auditor=auditor, sample_date=DAY, status="submitted")
    state = sampling.queue_state(session, actor=auditor, today=DAY)
    assert (state.assigned, state.done, state.last_sample_date, state.last_sample_assigned) == (1, 1, DAY, 1)


def test_queue_state_names_the_last_sample_an_auditor_finished(session: Session) -> None:
    """All of an older sample's items done and nothing today: the page says "Nothing left to rate", not
    only that no sample was drawn today."""
    auditor = f.user(session)
    earlier = DAY - dt.timedelta(days=3)
    for answer, status in zip(_answers(session, "Ops", 3), ("submitted", "skipped", "expired"), strict=True):
        f.assignment(session, ans=answer, auditor=auditor, sample_date=earlier, status=status)
    assert sampling.queue_state(session, actor=auditor, today=DAY) == sampling.QueueState(
        today=DAY, sample_drawn=False, assigned=0, done=0, last_sample_date=earlier, last_sample_assigned=2
    )
