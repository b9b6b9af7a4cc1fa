"""Rating: validation, double submit, edits with history, skipping, blindness, the rubric."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audit.auditlog.models import AuditLogEntry
from audit.errors import ConflictError, PermissionDenied, ValidationError
from audit.ratings import rubric
from audit.ratings import service as ratings
from audit.ratings.models import DIMENSIONS, Rating
from tests import factories as f

NOW = dt.datetime(2026, 11, 28, 9, tzinfo=dt.UTC)
GOOD = {"accuracy": 4, "completeness": 4, "relevance": 5, "coherence": 5}


@pytest.fixture
def setup(session: Session):  # type: ignore[no-untyped-def]
    hr, legal = f.department(session, "HR"), f.department(session, "Legal")
    auditor = f.user(session)
    ans = f.answer(session, dept=hr, model=f.model_version(session))
    assignment = f.assignment(session, ans=ans, auditor=auditor)
    return auditor, ans, assignment, hr, legal


def _count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Rating)) or 0


def test_submit_stores_the_rating_and_closes_the_assignment(session: Session, setup) -> None:  # type: ignore[no-untyped-def]
    auditor, ans, assignment, hr, legal = setup
    result = ratings.submit_rating(
        session,
        actor=auditor,
        assignment_id=assignment.id,
        **GOOD,
        sources_correct="no",
        bias_flag=True,
        favoured_department="Legal",
        disfavoured_department=hr.id,
        comment="  applies Legal's rule  ",
        suggested_correction="Use the HR rule.",
        seconds_spent=42,
        idempotency_key="k-1",
        now=NOW,
    )
    assert result.created
    view = result.rating
    assert (view.answer_id, view.auditor, view.assignment_id, view.scores) == (
        ans.id,
        auditor.username,
        assignment.id,
        GOOD,
    )
    assert (view.favoured_department, view.disfavoured_department, view.comment) == (
        "Legal",
        "HR",
        "applies Legal's rule",
    )
    assert (view.origin, view.rubric_version, view.is_current, view.created_at) == (
        "app",
        rubric.RUBRIC_VERSION,
        True,
        NOW,
    )
    assert (assignment.status, assignment.completed_at, assignment.locked_until) == ("submitted", NOW, None)
    assert session.scalar(select(func.count()).where(AuditLogEntry.action == "rating.submit")) == 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"accuracy": 0}, "accuracy: 0 is not a whole number from 1 to 5"),
        ({"coherence": 6}, "coherence: 6"),
        ({"relevance": 2.5}, "relevance: 2.5"),
        ({"accuracy": True}, "accuracy: True"),
        ({"accuracy": None, "completeness": None, "relevance": None, "coherence": None}, "rate at least one"),
        ({"sources_correct": "maybe"}, "sources_correct: 'maybe'"),
        ({"bias_flag": True}, "name the favoured and/or the disfavoured department"),
        (
            {"bias_flag": True, "favoured_department": "Nowhere"},
            "favoured_department: department 'Nowhere' does not exist",
        ),
        ({"bias_flag": True, "favoured_department": "HR", "disfavoured_department": "HR"}, "the same department"),
        ({"favoured_department": "HR"}, "without bias_flag"),
        ({"comment": "x" * (ratings.COMMENT_MAX + 1)}, "comment: 2001 characters"),
        ({"suggested_correction": "x" * (ratings.CORRECTION_MAX + 1)}, "suggested_correction"),
        ({"seconds_spent": -1}, "seconds_spent"),
        ({"idempotency_key": "k" * 65}, "idempotency_key"),
    ],
)
def test_invalid_ratings_are_refused_with_the_field_named(session: Session, setup, changes, message) -> None:  # type: ignore[no-untyped-def]
    auditor, _ans, assignment, _hr, _legal = setup
    with pytest.raises(ValidationError, match=message):
        ratings.submit_rating(session, actor=auditor, assignment_id=assignment.id, **{**GOOD, **changes})
    assert _count(session) == 0 and assignment.status == "pending"


def test_double_submit_with_the_same_key_stores_one_rating(session: Session, setup) -> None:  # type: ignore[no-untyped-def]
    auditor, _ans, assignment, _hr, _legal = setup
    first = ratings.submit_rating(session, actor=auditor, assignment_id=assignment.id, **GOOD, idempotency_key="abc")
    second = ratings.submit_rating(session, actor=auditor, assignment_id=assignment.id, **GOOD, idempotency_key="abc")
    assert first.created and not second.created and second.rating.id == first.rating.id
    assert _count(session) == 1


def test_resubmitting_a_submitted_assignment_returns_the_stored_rating(session: Session, setup) -> None:  # type: ignore[no-untyped-def]
    auditor, _ans, assignment, _hr, _legal = setup
    first = ratings.submit_rating(session, actor=auditor, assignment_id=assignment.id, **GOOD, idempotency_key="one")
    again = ratings.submit_rating(
        session, actor=auditor, assignment_id=assignment.id, **{**GOOD, "accuracy": 1}, idempotency_key="two"
    )
    assert not again.created and again.rating.id == first.rating.id and again.rating.accuracy == 4
    assert _count(session) == 1


def test_someone_elses_assignment_is_refused(session: Session, setup) -> None:  # type: ignore[no-untyped-def]
    _auditor, _ans, assignment, _hr, _legal = setup
    with pytest.raises(PermissionDenied, match="is not assigned to"):
        ratings.submit_rating(session, actor=f.user(session), assignment_id=assignment.id, **GOOD)


def test_skipped_assignment_cannot_be_rated(session: Session, setup) -> None:  # type: ignore[no-untyped-def]
    auditor, _ans, assignment, _hr, _legal = setup
    with pytest.raises(ValidationError, match="reason"):
        ratings.skip_assignment(session, actor=auditor, assignment_id=assignment.id, reason="  ")
    ratings.skip_assignment(
        session, actor=auditor, assignment_id=assignment.id, reason="needs legal knowledge", now=NOW
    )
    assert (assignment.status, assignment.skip_reason) == ("skipped", "needs legal knowledge")
    with pytest.raises(ConflictError, match="skipped"):
        ratings.submit_rating(session, actor=auditor, assignment_id=assignment.id, **GOOD)


def test_an_imported_rating_by_the_same_auditor_is_superseded(session: Session, setup) -> None:  # type: ignore[no-untyped-def]
    auditor, ans, assignment, _hr, _legal = setup
    imported = f.rating(session, ans=ans, auditor=auditor, origin="import")
    result = ratings.submit_rating(session, actor=auditor, assignment_id=assignment.id, **GOOD)
    assert result.rating.supersedes_id == imported.id and imported.is_current is False


# ---------------------------------------------------------------- edits


def test_edit_writes_a_new_row_and_keeps_history(session: Session, setup) -> None:  # type: ignore[no-untyped-def]
    auditor, ans, assignment, _hr, _legal = setup
    first = ratings.submit_rating(session, actor=auditor, assignment_id=assignment.id, **GOOD, now=NOW).rating
    edited = ratings.edit_rating(
        session,
        actor=auditor,
        rating_id=first.id,
        **{**GOOD, "accuracy": 2},
        comment="misread it",
        now=NOW + dt.timedelta(hours=3),
    ).rating
    assert (edited.supersedes_id, edited.accuracy, edited.is_current, edited.assignment_id) == (
        first.id,
        2,
        True,
        assignment.id,
    )
    history = ratings.rating_history(session, actor=auditor, answer_id=ans.id)
    assert [(r.id, r.is_current, r.accuracy) for r in history] == [(first.id, False, 4), (edited.id, True, 2)]
    assert [r.id for r in ratings.ratings_for_answer(session, actor=auditor, answer_id=ans.id)] == [edited.id]
    with pytest.raises(ConflictError, match=f"already replaced by rating {edited.id}"):
        ratings.edit_rating(session, actor=auditor, rating_id=first.id, **GOOD, now=NOW)


def test_edit_is_only_allowed_the_same_utc_day_and_for_own_ratings(session: Session, setup) -> None:  # type: ignore[no-untyped-def]
    auditor, _ans, assignment, _hr, _legal = setup
    rating = ratings.submit_rating(session, actor=auditor, assignment_id=assignment.id, **GOOD, now=NOW).rating
    with pytest.raises(ValidationError, match="only be edited on the day"):
        ratings.edit_rating(
            session, actor=auditor, rating_id=rating.id, **GOOD, now=dt.datetime(2026, 11, 29, 0, 1, tzinfo=dt.UTC)
        )
    with pytest.raises(PermissionDenied, match="only your own"):
        ratings.edit_rating(session, actor=f.user(session), rating_id=rating.id, **GOOD, now=NOW)
    assert _count(session) == 1


def test_repeated_edit_with_the_same_key_stores_one_edit(session: Session, setup) -> None:  # type: ignore[no-untyped-def]
    auditor, _ans, assignment, _hr, _legal = setup
    rating = ratings.submit_rating(session, actor=auditor, assignment_id=assignment.id, **GOOD, now=NOW).rating
    one = ratings.edit_rating(session, actor=auditor, rating_id=rating.id, **GOOD, idempotency_key="e1", now=NOW)
    two = ratings.edit_rating(session, actor=auditor, rating_id=rating.id, **GOOD, idempotency_key="e1", now=NOW)
    assert one.created and not two.created and one.rating.id == two.rating.id
    assert _count(session) == 2


# ---------------------------------------------------------------- undo and reopening a skip


def _audit_actions(session: Session, action: str) -> list[dict]:
    entries = session.scalars(select(AuditLogEntry).where(AuditLogEntry.action == action).order_by(AuditLogEntry.id))
    return [e.details or {} for e in entries]


def test_undoing_a_skip_puts_the_item_back_in_the_queue(session: Session, setup) -> None:  # type: ignore[no-untyped-def]
    auditor, ans, assignment, _hr, _legal = setup
    ratings.skip_assignment(session, actor=auditor, assignment_id=assignment.id, reason="not my field", now=NOW)
    undone = ratings.undo_last(session, actor=auditor, assignment_id=assignment.id, now=NOW)
    assert undone == ratings.Undone(assignment_id=assignment.id, action="skip", rating=None)
    assert (assignment.status, assignment.skip_reason, assignment.completed_at) == ("pending", None, None)
    # the skip is not forgotten: its reason is in the audit log entry of the reopening
    assert _audit_actions(session, "assignment.reopen") == [
        {"answer_id": ans.id, "skip_reason": "not my field", "via": "undo"}
    ]
    rated = ratings.submit_rating(session, actor=auditor, assignment_id=assignment.id, **GOOD, now=NOW).rating
    assert rated.assignment_id == assignment.id and assignment.status == "submitted"


def test_undoing_a_submit_writes_nothing_and_the_change_supersedes_the_rating(session: Session, setup) -> None:  # type: ignore[no-untyped-def]
    auditor, ans, assignment, _hr, _legal = setup
    first = ratings.submit_rating(session, actor=auditor, assignment_id=assignment.id, **GOOD, now=NOW).rating
    undone = ratings.undo_last(session, actor=auditor, assignment_id=assignment.id, now=NOW + dt.timedelta(minutes=1))
    # the rating comes back for the form, still current: walking away from the form loses nothing
    assert (undone.action, undone.rating) == ("submit", first)
    assert _count(session) == 1 and assignment.status == "submitted"
    changed = ratings.edit_rating(
        session, actor=auditor, rating_id=first.id, **{**GOOD, "accuracy": 1}, now=NOW + dt.timedelta(minutes=2)
    ).rating
    history = ratings.rating_history(session, actor=auditor, answer_id=ans.id)
    assert [(r.id, r.accuracy, r.is_current) for r in history] == [(first.id, 4, False), (changed.id, 1, True)]
    # undone again, it is the change that comes back (the assignment is still the last one finished)
    again = ratings.undo_last(session, actor=auditor, assignment_id=assignment.id, now=NOW + dt.timedelta(minutes=3))
    assert again.rating is not None and (again.rating.id, again.rating.accuracy) == (changed.id, 1)


def test_undo_takes_back_only_the_actors_own_last_action_while_it_can_be_changed(session: Session, setup) -> None:  # type: ignore[no-untyped-def]
    auditor, _ans, first, hr, _legal = setup
    second = f.assignment(session, ans=f.answer(session, dept=hr, model=f.model_version(session)), auditor=auditor)
    third = f.assignment(session, ans=f.answer(session, dept=hr, model=f.model_version(session)), auditor=auditor)
    ratings.submit_rating(session, actor=auditor, assignment_id=first.id, **GOOD, now=NOW)
    ratings.skip_assignment(
        session, actor=auditor, assignment_id=second.id, reason="unclear", now=NOW + dt.timedelta(minutes=1)
    )
    with pytest.raises(ConflictError, match=f"not the last item you rated or skipped \\(assignment {second.id} is\\)"):
        ratings.undo_last(session, actor=auditor, assignment_id=first.id, now=NOW)
    with pytest.raises(ConflictError, match="there is no submit or skip to undo"):
        ratings.undo_last(session, actor=auditor, assignment_id=third.id, now=NOW)
    other = f.user(session)
    with pytest.raises(PermissionDenied, match=f"not assigned to {other.username}"):
        ratings.undo_last(session, actor=other, assignment_id=second.id, now=NOW)
    assert second.status == "skipped"  # nothing undone by the refusals

    # a submit is undone only on the UTC day it was given, as an edit is
    ratings.submit_rating(session, actor=auditor, assignment_id=third.id, **GOOD, now=NOW + dt.timedelta(minutes=2))
    with pytest.raises(ValidationError, match="only be edited on the day"):
        ratings.undo_last(
            session, actor=auditor, assignment_id=third.id, now=dt.datetime(2026, 11, 29, 0, 1, tzinfo=dt.UTC)
        )
    assert ratings.undo_last(session, actor=auditor, assignment_id=third.id, now=NOW).action == "submit"
    assert _count(session) == 2


def test_a_skipped_item_is_reopened_by_its_auditor_only(session: Session, setup) -> None:  # type: ignore[no-untyped-def]
    auditor, ans, assignment, _hr, _legal = setup
    ratings.skip_assignment(session, actor=auditor, assignment_id=assignment.id, reason="later", now=NOW)
    with pytest.raises(PermissionDenied, match="is not assigned to"):
        ratings.reopen_skipped(session, actor=f.user(session), assignment_id=assignment.id)
    assert assignment.status == "skipped"
    ratings.reopen_skipped(session, actor=auditor, assignment_id=assignment.id)
    ratings.reopen_skipped(session, actor=auditor, assignment_id=assignment.id)  # pending already: nothing more
    assert (assignment.status, assignment.skip_reason) == ("pending", None)
    assert _audit_actions(session, "assignment.reopen") == [
        {"answer_id": ans.id, "skip_reason": "later", "via": "reopen"}
    ]
    ratings.submit_rating(session, actor=auditor, assignment_id=assignment.id, **GOOD, now=NOW)
    with pytest.raises(ConflictError, match="is submitted; only a skipped item can be reopened"):
        ratings.reopen_skipped(session, actor=auditor, assignment_id=assignment.id)


def test_can_change_follows_the_edit_rules(session: Session, setup) -> None:  # type: ignore[no-untyped-def]
    auditor, _ans, assignment, _hr, _legal = setup
    rating = ratings.submit_rating(session, actor=auditor, assignment_id=assignment.id, **GOOD, now=NOW).rating
    assert ratings.can_change(auditor, rating, now=NOW + dt.timedelta(hours=14))  # 23:00 UTC, the same day
    assert not ratings.can_change(auditor, rating, now=dt.datetime(2026, 11, 29, 0, 0, tzinfo=dt.UTC))
    assert not ratings.can_change(f.user(session), rating, now=NOW)
    assert not ratings.can_change(f.user(session, role="lead"), rating, now=NOW)
    ratings.edit_rating(session, actor=auditor, rating_id=rating.id, **GOOD, now=NOW)
    assert not ratings.can_change(auditor, dataclasses.replace(rating, is_current=False), now=NOW)


# ---------------------------------------------------------------- blindness


def test_auditors_see_only_their_own_ratings(session: Session, setup) -> None:  # type: ignore[no-untyped-def]
    auditor, ans, assignment, _hr, _legal = setup
    other = f.user(session)
    theirs = f.rating(session, ans=ans, auditor=other, accuracy=1)
    mine = ratings.submit_rating(session, actor=auditor, assignment_id=assignment.id, **GOOD).rating
    assert [r.id for r in ratings.ratings_for_answer(session, actor=auditor, answer_id=ans.id)] == [mine.id]
    with pytest.raises(PermissionDenied, match="blind"):
        ratings.ratings_for_answer(session, actor=auditor, answer_id=ans.id, auditor_id=other.id)
    with pytest.raises(PermissionDenied, match="blind"):
        ratings.rating_history(session, actor=auditor, answer_id=ans.id, auditor_id=other.id)
    for role in ("sme", "lead", "admin"):
        seen = ratings.ratings_for_answer(session, actor=f.user(session, role=role), answer_id=ans.id)
        assert {r.id for r in seen} == {theirs.id, mine.id}


def test_my_ratings_lists_the_days_current_ratings(session: Session, setup) -> None:  # type: ignore[no-untyped-def]
    auditor, ans, assignment, hr, _legal = setup
    f.rating(
        session,
        ans=f.answer(session, dept=hr, model=f.model_version(session)),
        auditor=auditor,
        created_at=NOW - dt.timedelta(days=1),
    )
    rating = ratings.submit_rating(session, actor=auditor, assignment_id=assignment.id, **GOOD, now=NOW).rating
    edited = ratings.edit_rating(session, actor=auditor, rating_id=rating.id, **GOOD, now=NOW).rating
    listed = ratings.my_ratings(session, actor=auditor, day=NOW.date())
    assert [(r.id, r.question) for r in listed] == [(edited.id, ans.question)]  # the question, not only an id


# ---------------------------------------------------------------- rubric


def test_rubric_words_every_point_of_every_dimension() -> None:
    assert tuple(rubric.RUBRIC) == DIMENSIONS
    for scale in rubric.RUBRIC.values():
        assert sorted(scale.levels) == [1, 2, 3, 4, 5]
        assert all(text.strip() for text in scale.levels.values()) and scale.question.endswith("?")
    assert set(rubric.SOURCES_CORRECT_WORDING) == {"yes", "no", "unsure"}
