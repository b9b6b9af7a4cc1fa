"""SME review: department scoping, claims, confirm/dismiss rules, and two SMEs deciding at once."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from audit.db import make_engine
from audit.errors import ConflictError, NotFoundError, PermissionDenied, ValidationError
from audit.org.models import User
from audit.review import routing
from audit.review import service as review
from audit.review.models import ReviewDecision, ReviewItem
from tests import factories as f

NOW = dt.datetime(2026, 11, 28, 9, tzinfo=dt.UTC)


def _flagged_answer(session: Session, dept, *, accuracy: int = 1, created_at: dt.datetime = NOW) -> ReviewItem:  # type: ignore[no-untyped-def]
    ans = f.answer(session, dept=dept, model=f.model_version(session))
    f.rating(session, ans=ans, auditor=f.user(session), accuracy=accuracy)
    item = routing.route_answer(session, ans.id, now=created_at)
    assert item is not None
    return item


@pytest.fixture
def world(session: Session):  # type: ignore[no-untyped-def]
    hr, legal = f.department(session, "HR"), f.department(session, "Legal")
    hr_sme = f.user(session, role="sme", departments=[hr])
    other_hr_sme = f.user(session, role="sme", departments=[hr, legal])
    legal_sme = f.user(session, role="sme", departments=[legal])
    hr_item = _flagged_answer(session, hr)
    legal_item = _flagged_answer(session, legal, created_at=NOW - dt.timedelta(days=10))
    return {
        "hr": hr,
        "legal": legal,
        "hr_sme": hr_sme,
        "other_hr_sme": other_hr_sme,
        "legal_sme": legal_sme,
        "hr_item": hr_item,
        "legal_item": legal_item,
    }


def test_smes_see_only_the_departments_they_cover(session: Session, world) -> None:  # type: ignore[no-untyped-def]
    hr_only = review.review_queue(session, actor=world["hr_sme"], now=NOW)
    assert [e.item_id for e in hr_only] == [world["hr_item"].id]
    assert hr_only[0].department == "HR" and hr_only[0].reasons == ("low_score",)
    both = review.review_queue(session, actor=world["other_hr_sme"], now=NOW)
    assert [e.item_id for e in both] == [world["legal_item"].id, world["hr_item"].id]  # oldest first
    lead = f.user(session, role="lead")
    assert len(review.review_queue(session, actor=lead, now=NOW)) == 2
    with pytest.raises(PermissionDenied, match="does not cover department 'Legal'"):
        review.review_queue(session, actor=world["hr_sme"], department="Legal")
    with pytest.raises(PermissionDenied, match="does not cover"):
        review.review_item_detail(session, actor=world["hr_sme"], item_id=world["legal_item"].id)
    with pytest.raises(PermissionDenied, match="does not cover"):
        review.claim(session, actor=world["hr_sme"], item_id=world["legal_item"].id)
    with pytest.raises(PermissionDenied, match="does not cover"):
        review.dismiss(
            session, actor=world["hr_sme"], item_id=world["legal_item"].id, note=None, expected_row_version=1
        )


def test_queue_filters_by_reason_department_and_age(session: Session, world) -> None:  # type: ignore[no-untyped-def]
    actor = world["other_hr_sme"]
    assert [e.item_id for e in review.review_queue(session, actor=actor, max_age_days=5, now=NOW)] == [
        world["hr_item"].id
    ]
    assert [e.item_id for e in review.review_queue(session, actor=actor, department="Legal", now=NOW)] == [
        world["legal_item"].id
    ]
    assert review.review_queue(session, actor=actor, reasons=["bias_flag"], now=NOW) == []
    assert len(review.review_queue(session, actor=actor, reasons=["bias_flag", "low_score"], now=NOW)) == 2
    with pytest.raises(ValidationError, match="reason"):
        review.review_queue(session, actor=actor, reasons=["ugly"])


def test_detail_shows_answer_every_current_rating_sources_and_gold(session: Session, world) -> None:  # type: ignore[no-untyped-def]
    hr = world["hr"]
    old = f.document(session, dept=hr, family="PAY", version=1, title="Pay rules")
    new = f.document(session, dept=hr, family="PAY", version=2, title="Pay rules")
    old.superseded_by_id = new.id
    ans = f.answer(
        session,
        dept=hr,
        model=f.model_version(session),
        text="Pay is monthly.",
        sources=[{"document_id": old.external_id, "department": "HR", "score": 0.8}],
    )
    f.gold_answer(session, ans=ans, accuracy=5, reference="Pay is twice a month.")
    one, two = f.user(session, username="ann"), f.user(session, username="bob")
    f.rating(session, ans=ans, auditor=one, accuracy=2)
    stale = f.rating(session, ans=ans, auditor=two, accuracy=1)
    stale.is_current = False
    session.flush()
    f.rating(session, ans=ans, auditor=two, accuracy=5, supersedes_id=stale.id)
    item = routing.route_answer(session, ans.id, now=NOW)
    assert item is not None

    detail = review.review_item_detail(session, actor=world["hr_sme"], item_id=item.id)

    assert (detail.answer_text, detail.department, detail.status, detail.decision) == (
        "Pay is monthly.",
        "HR",
        "open",
        None,
    )
    assert detail.reasons == ("low_score", "disagreement", "gold_miss")
    assert sorted((r.auditor, r.accuracy) for r in detail.ratings) == [("ann", 2), ("bob", 5)]
    assert [(s.title, s.version, s.outdated) for s in detail.sources] == [("Pay rules", 1, True)]
    assert detail.gold is not None and detail.gold.reference_answer == "Pay is twice a month."
    assert detail.gold.expected["accuracy"] == 5


def test_claims_are_exclusive_until_released_or_stale(session: Session, world) -> None:  # type: ignore[no-untyped-def]
    item = world["hr_item"]
    state = review.claim(session, actor=world["hr_sme"], item_id=item.id, now=NOW)
    assert (state.status, state.claimed_by) == ("claimed", world["hr_sme"].username)
    assert review.claim(session, actor=world["hr_sme"], item_id=item.id, now=NOW) == state  # again: no-op
    with pytest.raises(ConflictError, match=f"claimed by {world['hr_sme'].username}"):
        review.claim(session, actor=world["other_hr_sme"], item_id=item.id, now=NOW + dt.timedelta(hours=1))
    with pytest.raises(ConflictError, match="claimed by"):
        review.dismiss(
            session,
            actor=world["other_hr_sme"],
            item_id=item.id,
            note=None,
            expected_row_version=state.row_version,
            now=NOW + dt.timedelta(hours=1),
        )
    taken = review.claim(session, actor=world["other_hr_sme"], item_id=item.id, now=NOW + dt.timedelta(hours=9))
    assert taken.claimed_by == world["other_hr_sme"].username
    released = review.release(session, actor=world["other_hr_sme"], item_id=item.id)
    assert (released.status, released.claimed_by) == ("open", None)


def test_confirm_requires_a_root_cause_and_a_correction_for_content_causes(session: Session, world) -> None:  # type: ignore[no-untyped-def]
    item, sme = world["hr_item"], world["hr_sme"]
    with pytest.raises(ValidationError, match="root_cause"):
        review.confirm(
            session,
            actor=sme,
            item_id=item.id,
            root_cause="laziness",
            corrected_answer="x",
            note=None,
            expected_row_version=item.row_version,
        )
    for cause in ("wrong_training_data", "outdated_source", "hallucination"):
        with pytest.raises(ValidationError, match=f"corrected_answer: required when the root cause is {cause}"):
            review.confirm(
                session,
                actor=sme,
                item_id=item.id,
                root_cause=cause,
                corrected_answer="  ",
                note=None,
                expected_row_version=item.row_version,
            )
    for cause in ("wrong_training_data", "outdated_source", "hallucination"):
        # the answer itself (here "The answer.") as its correction, however spaced or cased: it would
        # become a training example of the error just confirmed
        with pytest.raises(ValidationError, match="corrected_answer: the same as the answer"):
            review.confirm(
                session,
                actor=sme,
                item_id=item.id,
                root_cause=cause,
                corrected_answer="  the   ANSWER.\n",
                note=None,
                expected_row_version=item.row_version,
            )
    with pytest.raises(ValidationError, match="document 999999 does not exist"):
        review.confirm(
            session,
            actor=sme,
            item_id=item.id,
            root_cause="retrieval_error",
            corrected_answer=None,
            note=None,
            correct_document_id=999_999,
            expected_row_version=item.row_version,
        )
    with pytest.raises(ConflictError, match="changed since you loaded it"):
        review.confirm(
            session,
            actor=sme,
            item_id=item.id,
            root_cause="department_bias",
            corrected_answer=None,
            note=None,
            expected_row_version=item.row_version + 1,
        )
    assert session.scalar(select(func.count()).select_from(ReviewDecision)) == 0

    decision = review.confirm(
        session,
        actor=sme,
        item_id=item.id,
        root_cause="hallucination",
        corrected_answer=" The real answer. ",
        note="made up",
        expected_row_version=1,
        now=NOW,
    )

    assert (decision.decision, decision.root_cause, decision.corrected_answer, decision.sme) == (
        "confirm",
        "hallucination",
        "The real answer.",
        sme.username,
    )
    assert item.status == "confirmed" and decision.row_version == 2
    with pytest.raises(ConflictError, match=f"item {item.id} was decided by {sme.username} at 2026-11-28 09:00:00"):
        review.dismiss(session, actor=world["other_hr_sme"], item_id=item.id, note=None, expected_row_version=2)
    mine = review.my_decisions(session, actor=sme)
    assert [(d.item_id, d.department, d.decision, d.root_cause) for d in mine] == [
        (item.id, "HR", "confirm", "hallucination")
    ]
    assert review.my_decisions(session, actor=world["other_hr_sme"]) == []  # one's own only


def test_dismiss_and_bulk_dismiss(session: Session, world) -> None:  # type: ignore[no-untyped-def]
    hr = world["hr"]
    sme = world["other_hr_sme"]
    more = [_flagged_answer(session, hr) for _ in range(2)]
    decided = _flagged_answer(session, hr)
    review.dismiss(session, actor=world["hr_sme"], item_id=decided.id, note="fine", expected_row_version=1)
    with pytest.raises(ValidationError, match="note"):
        review.bulk_dismiss(session, actor=sme, item_ids=[m.id for m in more], note="")

    result = review.bulk_dismiss(session, actor=sme, item_ids=[m.id for m in more] + [decided.id], note="all fine")

    assert result.dismissed == tuple(m.id for m in more)
    assert (
        len(result.conflicts) == 1
        and f"item {decided.id} was decided by {world['hr_sme'].username}" in result.conflicts[0]
    )
    assert {m.status for m in more} == {"dismissed"}
    with pytest.raises(PermissionDenied):
        review.bulk_dismiss(session, actor=world["hr_sme"], item_ids=[world["legal_item"].id], note="x")
    assert world["legal_item"].status == "open"
    with pytest.raises(NotFoundError):
        review.claim(session, actor=sme, item_id=987_654)


# ---------------------------------------------------------------- two SMEs at once (real commits)


def _committed_item(url: str) -> tuple[int, int, int]:
    engine = make_engine(url)
    with Session(engine) as session:
        hr = f.department(session, "HR")
        first = f.user(session, role="sme", departments=[hr])
        second = f.user(session, role="sme", departments=[hr])
        item = _flagged_answer(session, hr)
        session.commit()
        ids = (item.id, first.id, second.id)
    engine.dispose()
    return ids


def _decide_in_thread(engine, item_id: int, sme_id: int, barrier: threading.Barrier, outcomes: dict) -> None:  # type: ignore[no-untyped-def]
    with Session(engine, expire_on_commit=False) as session:
        sme = session.get(User, sme_id)
        session.commit()  # end the read: on SQLite every transaction holds the write lock (BEGIN IMMEDIATE)
        barrier.wait()
        try:
            review.confirm(
                session,
                actor=sme,
                item_id=item_id,
                root_cause="hallucination",
                corrected_answer=f"answer by {sme_id}",
                note=None,
                expected_row_version=1,
            )
            session.commit()
            outcomes[sme_id] = "won"
        except ConflictError as exc:
            session.rollback()
            outcomes[sme_id] = str(exc)


def _race(url: str) -> None:
    item_id, first, second = _committed_item(url)
    engine = make_engine(url)
    barrier = threading.Barrier(2)
    outcomes: dict[int, str] = {}
    threads = [
        threading.Thread(target=_decide_in_thread, args=(engine, item_id, sme, barrier, outcomes))
        for sme in (first, second)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    with Session(engine) as session:
        decisions = session.scalars(select(ReviewDecision).where(ReviewDecision.review_item_id == item_id)).all()
        winner = decisions[0].sme_id
        loser_message = outcomes[second if winner == first else first]
        names = {u.id: u.username for u in session.scalars(select(User))}
    engine.dispose()
    assert len(decisions) == 1 and outcomes[winner] == "won"
    assert loser_message.startswith(f"item {item_id} was decided by {names[winner]} at ")
    assert decisions[0].corrected_answer == f"answer by {winner}"


def test_two_smes_deciding_at_once_on_sqlite(sqlite_url: str) -> None:
    _race(sqlite_url)


@pytest.mark.postgres
def test_two_smes_deciding_at_once_on_postgres(migrated_postgres_url: str) -> None:
    _race(migrated_postgres_url)


@pytest.mark.postgres
def test_a_decision_landing_between_read_and_write_is_a_conflict_not_a_lost_update(migrated_postgres_url: str) -> None:
    """The second SME has read the item (version 1, open) when the first one commits: the optimistic
    version check turns the late UPDATE into ConflictError."""
    item_id, first, second = _committed_item(migrated_postgres_url)
    engine = make_engine(migrated_postgres_url)
    late_has_read, early_committed = threading.Event(), threading.Event()
    outcomes: dict[int, str] = {}

    def late() -> None:
        with Session(engine) as session:

            @event.listens_for(session, "before_flush")
            def wait_for_the_other_sme(*_args) -> None:  # type: ignore[no-untyped-def]
                if not late_has_read.is_set():
                    late_has_read.set()
                    early_committed.wait(timeout=30)

            try:
                review.dismiss(
                    session, actor=session.get(User, second), item_id=item_id, note="late", expected_row_version=1
                )
                session.commit()
                outcomes[second] = "won"
            except ConflictError as exc:
                session.rollback()
                outcomes[second] = str(exc)

    def early() -> None:
        late_has_read.wait(timeout=30)
        with Session(engine) as session:
            review.confirm(
                session,
                actor=session.get(User, first),
                item_id=item_id,
                root_cause="department_bias",
                corrected_answer=None,
                note=None,
                expected_row_version=1,
            )
            session.commit()
        early_committed.set()

    threads = [threading.Thread(target=late), threading.Thread(target=early)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    with Session(engine) as session:
        decisions = session.scalars(select(ReviewDecision).where(ReviewDecision.review_item_id == item_id)).all()
        first_name = session.get(User, first).username  # type: ignore[union-attr]
    engine.dispose()
    assert [d.decision for d in decisions] == ["confirm"]
    assert outcomes[second].startswith(f"item {item_id} was decided by {first_name} at ")
