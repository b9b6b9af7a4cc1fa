"""The rating page's hot path: what one next item and one submit send to the database, and that the
values they fold into one statement (policies, progress, gold, earlier ratings) are the stored ones."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
from collections.abc import Iterator
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from audit.auditlog.models import AuditLogEntry
from audit.policy import service as policy_service
from audit.ratings import service as ratings
from audit.ratings.models import Rating
from audit.review.models import ReviewItem
from audit.review.policy import RoutingPolicy
from audit.sampling import service as sampling
from audit.sampling.models import Assignment
from audit.sampling.policy import SamplingPolicy
from tests import factories as f

DAY = dt.date(2026, 11, 28)
NOW = dt.datetime(2026, 11, 28, 9, tzinfo=dt.UTC)
YESTERDAY_NOON = dt.datetime(2026, 11, 27, 12, tzinfo=dt.UTC)
SCORES = {"accuracy": 4, "completeness": 4, "relevance": 5, "coherence": 4}


@contextlib.contextmanager
def statements(session: Session) -> Iterator[list[str]]:
    """The SQL the session sends inside the block (savepoint bookkeeping left out)."""
    sent: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.lstrip().upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK")):
            sent.append(" ".join(statement.split()))

    connection = session.connection()
    event.listen(connection, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(connection, "before_cursor_execute", record)


def _drawn(session: Session, *, size: int = 12, lock_minutes: int = 30) -> list[Any]:
    """A drawn and assigned sample (so batches record their item id range), three active auditors."""
    model = f.model_version(session)
    for name in ("Ops", "HR"):
        dept = f.department(session, name)
        for i in range(10):
            f.answer(session, dept=dept, model=model, confidence=-1.0 * i, created_at=YESTERDAY_NOON)
    auditors = [f.user(session) for _ in range(3)]
    policy = SamplingPolicy(sample_size=size, per_department_min=0, gold_share=0.0, lock_minutes=lock_minutes)
    policy_service.save(session, actor=None, name="sampling", settings=policy)
    sampling.draw_sample(session, actor=None, sample_date=DAY, now=NOW)
    return auditors


def test_next_item_is_three_statements_and_submit_five(session: Session) -> None:
    auditor = _drawn(session)[0]
    session.flush()
    with statements(session) as sent:
        item = sampling.next_item(session, actor=auditor, now=NOW)
    assert item is not None
    # item + answer + policy + progress; the lock; the sources (none cited here: no statement)
    assert (len(sent), item.sources) == (2, ()), sent
    assert sent[1].startswith("UPDATE assignments SET locked_until")

    with statements(session) as sent:
        result = ratings.submit_rating(
            session, actor=auditor, assignment_id=item.assignment_id, **SCORES, idempotency_key="hot-1", now=NOW
        )
        session.flush()
    assert result.created
    # the assignment with key, previous rating and routing policy; the rating; the assignment;
    # scores and gold; the audit entry
    assert [s.split(" (")[0].split(" SET")[0] for s in sent[1:]] == [
        "INSERT INTO ratings",
        "UPDATE assignments",
        sent[3].split(" (")[0].split(" SET")[0],
        "INSERT INTO audit_log",
    ]
    assert len(sent) == 5 and sent[0].startswith("SELECT assignments.id"), sent
    assert session.scalar(select(Assignment.status).where(Assignment.id == item.assignment_id)) == "submitted"


def test_next_item_progress_from_the_batch_range_matches_a_count(session: Session) -> None:
    auditors = _drawn(session, size=12)
    auditor = auditors[0]
    mine = session.scalars(select(Assignment).where(Assignment.auditor_id == auditor.id)).all()
    assert len(mine) >= 3
    first = sampling.next_item(session, actor=auditor, now=NOW)
    assert first is not None and first.progress == sampling.Progress(done=0, total=len(mine))
    ratings.submit_rating(session, actor=auditor, assignment_id=first.assignment_id, **SCORES, now=NOW)
    second = sampling.next_item(session, actor=auditor, now=NOW)
    assert second is not None and second.assignment_id != first.assignment_id
    assert (second.progress, second.number) == (sampling.Progress(done=1, total=len(mine)), 2)
    ratings.skip_assignment(session, actor=auditor, assignment_id=second.assignment_id, reason="needs legal")
    third = sampling.next_item(session, actor=auditor, now=NOW)
    assert third is not None and third.progress == sampling.Progress(done=2, total=len(mine))
    assert third.progress == sampling.auditor_progress(session, actor=auditor, batch_id=third.batch_id)


def test_next_item_locks_for_the_stored_policy_minutes(session: Session) -> None:
    auditor = _drawn(session, lock_minutes=45)[0]
    item = sampling.next_item(session, actor=auditor, now=NOW)
    assert item is not None and item.locked_until == NOW + dt.timedelta(minutes=45)
    stored = session.scalar(select(Assignment.locked_until).where(Assignment.id == item.assignment_id))
    assert stored == NOW + dt.timedelta(minutes=45)


def test_submit_applies_the_stored_routing_policy(session: Session) -> None:
    auditor = _drawn(session)[0]
    item = sampling.next_item(session, actor=auditor, now=NOW)
    assert item is not None
    # accuracy 3 is not a low score by default (<= 2) but is under a stricter stored policy
    policy_service.save(session, actor=None, name="routing", settings=RoutingPolicy(low_accuracy_max=3))
    ratings.submit_rating(
        session, actor=auditor, assignment_id=item.assignment_id, **{**SCORES, "accuracy": 3}, now=NOW
    )
    review = session.scalars(select(ReviewItem).where(ReviewItem.answer_id == item.answer_id)).one()
    assert review.reasons == ["low_score"]


def test_submit_routes_a_gold_miss_and_logs_submit_then_open(session: Session) -> None:
    dept = f.department(session, "Ops")
    ans = f.answer(session, dept=dept, model=f.model_version(session))
    f.gold_answer(session, ans=ans, accuracy=5, completeness=5, relevance=5, coherence=5)
    auditor = f.user(session)
    assignment = f.assignment(session, ans=ans, auditor=auditor)
    result = ratings.submit_rating(
        session, actor=auditor, assignment_id=assignment.id, **{**SCORES, "completeness": 2}, now=NOW
    )
    review = session.scalars(select(ReviewItem).where(ReviewItem.answer_id == ans.id)).one()
    assert review.reasons == ["gold_miss"]  # completeness 2 vs expected 5; accuracy 4 is no low score
    entries = session.execute(select(AuditLogEntry.action, AuditLogEntry.entity_id).order_by(AuditLogEntry.id)).all()
    assert [(a, e) for a, e in entries if a in ("rating.submit", "review.open")] == [
        ("rating.submit", str(result.rating.id)),
        ("review.open", str(review.id)),
    ]


def test_submit_supersedes_the_auditors_imported_rating_and_sees_it_gone(session: Session) -> None:
    dept = f.department(session, "Ops")
    ans = f.answer(session, dept=dept, model=f.model_version(session))
    auditor, other = f.user(session), f.user(session)
    imported = f.rating(session, ans=ans, auditor=auditor, accuracy=1)
    f.rating(session, ans=ans, auditor=other, accuracy=5)  # another auditor's current rating stays
    assignment = f.assignment(session, ans=ans, auditor=auditor)
    result = ratings.submit_rating(session, actor=auditor, assignment_id=assignment.id, **SCORES, now=NOW)
    assert result.rating.supersedes_id == imported.id
    assert imported.is_current is False  # the copy in the session follows the UPDATE
    current = session.scalars(select(Rating.accuracy).where(Rating.answer_id == ans.id, Rating.is_current)).all()
    assert sorted(current) == [4, 5]
    # routing read both current ratings: 4 vs 5 is no disagreement; the imported 1 no longer counts
    assert session.scalars(select(ReviewItem).where(ReviewItem.answer_id == ans.id)).one_or_none() is None


def test_a_repeated_key_returns_the_stored_rating_before_anything_else(session: Session) -> None:
    auditor = _drawn(session)[0]
    item = sampling.next_item(session, actor=auditor, now=NOW)
    assert item is not None
    first = ratings.submit_rating(
        session, actor=auditor, assignment_id=item.assignment_id, **SCORES, idempotency_key="k-9", now=NOW
    )
    # a retry of the same form, even naming a wrong assignment, gets the stored rating back
    again = ratings.submit_rating(session, actor=auditor, assignment_id=999_999, **SCORES, idempotency_key="k-9")
    assert (again.created, again.rating.id) == (False, first.rating.id)
    assert dataclasses.replace(again.rating) == first.rating
