"""Routing rules, each on a hand-built case: low score, bias flag, disagreement, gold miss."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audit.policy import service as policy_service
from audit.ratings import service as ratings
from audit.review import routing
from audit.review.models import ReviewItem
from audit.review.policy import RoutingPolicy
from audit.review.repository import CurrentScores
from tests import factories as f

NOW = dt.datetime(2026, 11, 28, 9, tzinfo=dt.UTC)
POLICY = RoutingPolicy()


def scores(accuracy=4, completeness=4, relevance=4, coherence=4, bias=False, auditor=1) -> CurrentScores:  # type: ignore[no-untyped-def]
    return CurrentScores(auditor, accuracy, completeness, relevance, coherence, bias)


@pytest.mark.parametrize(
    ("rows", "gold", "expected"),
    [
        ([scores(accuracy=2)], None, ("low_score",)),
        ([scores(accuracy=3)], None, ()),
        ([scores(bias=True)], None, ("bias_flag",)),
        ([scores(accuracy=5), scores(accuracy=3, auditor=2)], None, ("disagreement",)),
        ([scores(coherence=5), scores(coherence=4, auditor=2)], None, ()),
        ([scores(relevance=None), scores(relevance=1, auditor=2)], None, ()),  # an unrated dimension is no vote
        (
            [scores(relevance=5), scores(relevance=None, auditor=2), scores(relevance=3, auditor=3)],
            None,
            ("disagreement",),
        ),
        (
            [scores(completeness=3)],
            {"accuracy": 4, "completeness": 5, "relevance": None, "coherence": None},
            ("gold_miss",),
        ),
        ([scores(completeness=4)], {"accuracy": 4, "completeness": 5, "relevance": None, "coherence": None}, ()),
        (
            [scores(accuracy=1, bias=True), scores(accuracy=4, auditor=2)],
            {"accuracy": 5, "completeness": None, "relevance": None, "coherence": None},
            ("low_score", "bias_flag", "disagreement", "gold_miss"),
        ),
    ],
)
def test_reasons_for_each_rule(rows, gold, expected) -> None:  # type: ignore[no-untyped-def]
    assert routing.reasons_for(rows, gold, POLICY) == expected


def test_policy_thresholds_change_the_rules() -> None:
    strict = RoutingPolicy(low_accuracy_max=3, disagreement_min=1, gold_miss_min=1, route_bias_flags=False)
    assert routing.reasons_for([scores(accuracy=3, bias=True)], None, strict) == ("low_score",)
    assert routing.reasons_for([scores(), scores(coherence=5, auditor=2)], None, strict) == ("disagreement",)


@pytest.fixture
def answer_setup(session: Session):  # type: ignore[no-untyped-def]
    hr = f.department(session, "HR")
    ops = f.department(session, "Ops")
    ans = f.answer(session, dept=hr, model=f.model_version(session))
    return ans, hr, ops


def _item(session: Session, answer_id: int) -> ReviewItem | None:
    return session.scalars(select(ReviewItem).where(ReviewItem.answer_id == answer_id)).one_or_none()


def test_a_low_score_submit_opens_an_item_in_the_askers_department(session: Session, answer_setup) -> None:  # type: ignore[no-untyped-def]
    ans, hr, ops = answer_setup
    auditor = f.user(session, home_department=ops)
    assignment = f.assignment(session, ans=ans, auditor=auditor)
    ratings.submit_rating(
        session,
        actor=auditor,
        assignment_id=assignment.id,
        accuracy=2,
        completeness=4,
        relevance=4,
        coherence=4,
        now=NOW,
    )
    item = _item(session, ans.id)
    assert item is not None
    assert (item.reasons, item.department_id, item.status, item.created_at) == (["low_score"], hr.id, "open", NOW)


def test_reasons_accumulate_on_one_item_per_answer(session: Session, answer_setup) -> None:  # type: ignore[no-untyped-def]
    ans, _hr, ops = answer_setup
    first, second = f.user(session), f.user(session)
    a1 = f.assignment(session, ans=ans, auditor=first, overlap_k=2)
    a2 = f.assignment(session, ans=ans, auditor=second)
    ratings.submit_rating(
        session, actor=first, assignment_id=a1.id, accuracy=2, completeness=5, relevance=5, coherence=5
    )
    ratings.submit_rating(
        session,
        actor=second,
        assignment_id=a2.id,
        accuracy=3,
        completeness=3,
        relevance=5,
        coherence=5,
        bias_flag=True,
        disfavoured_department=ops.id,
    )
    assert session.scalar(select(func.count()).select_from(ReviewItem)) == 1
    item = _item(session, ans.id)
    assert item is not None and item.reasons == ["low_score", "bias_flag", "disagreement"]


def test_only_current_ratings_count(session: Session, answer_setup) -> None:  # type: ignore[no-untyped-def]
    ans, _hr, _ops = answer_setup
    auditor = f.user(session)
    old = f.rating(session, ans=ans, auditor=auditor, accuracy=1)
    old.is_current = False
    session.flush()
    f.rating(session, ans=ans, auditor=auditor, accuracy=4, supersedes_id=old.id)
    assert routing.route_answer(session, ans.id) is None
    assert routing.route(session).items_opened == 0


def test_gold_miss_uses_the_gold_items_expected_scores(session: Session, answer_setup) -> None:  # type: ignore[no-untyped-def]
    ans, _hr, _ops = answer_setup
    f.gold_answer(session, ans=ans, accuracy=5, completeness=5, relevance=None, coherence=None)
    f.rating(session, ans=ans, auditor=f.user(session), accuracy=3, completeness=5, relevance=1, coherence=1)
    item = routing.route_answer(session, ans.id, now=NOW)
    # relevance and coherence have no expectation; accuracy 3 vs 5 misses by 2
    assert item is not None and item.reasons == ["gold_miss"]


def test_bias_flags_are_not_routed_when_the_policy_says_so(session: Session, answer_setup) -> None:  # type: ignore[no-untyped-def]
    ans, _hr, ops = answer_setup
    policy_service.save(
        session, actor=None, name="routing", settings=dataclasses.replace(POLICY, route_bias_flags=False)
    )
    f.rating(session, ans=ans, auditor=f.user(session), bias_flag=True, favoured_department_id=ops.id)
    assert routing.route_answer(session, ans.id) is None


def test_a_decided_item_is_left_alone(session: Session, answer_setup) -> None:  # type: ignore[no-untyped-def]
    ans, _hr, _ops = answer_setup
    f.rating(session, ans=ans, auditor=f.user(session), accuracy=1)
    item = routing.route_answer(session, ans.id)
    assert item is not None
    item.status = "dismissed"
    session.flush()
    f.rating(
        session,
        ans=ans,
        auditor=f.user(session),
        accuracy=5,
        bias_flag=True,
        favoured_department_id=ans.asker_department_id,
    )
    again = routing.route_answer(session, ans.id)
    assert again is not None and again.id == item.id and again.reasons == ["low_score"] and again.status == "dismissed"


def test_route_checks_every_answer_with_current_ratings(session: Session, answer_setup) -> None:  # type: ignore[no-untyped-def]
    ans, hr, _ops = answer_setup
    model = f.model_version(session)
    fine = f.answer(session, dept=hr, model=model)
    low = f.answer(session, dept=hr, model=model)
    a, b = f.user(session), f.user(session)
    f.rating(session, ans=fine, auditor=a, created_at=NOW)
    f.rating(session, ans=low, auditor=a, accuracy=1, created_at=NOW)
    f.rating(session, ans=ans, auditor=a, accuracy=5, created_at=NOW - dt.timedelta(days=2))
    f.rating(session, ans=ans, auditor=b, accuracy=2, created_at=NOW - dt.timedelta(days=2))

    recent = routing.route(session, since=NOW - dt.timedelta(hours=1), now=NOW)
    assert (recent.answers_checked, recent.items_opened, recent.items_extended) == (2, 1, 0)
    everything = routing.route(session, now=NOW)
    assert (everything.answers_checked, everything.items_opened) == (3, 1)
    item = _item(session, ans.id)
    assert item is not None and item.reasons == ["low_score", "disagreement"]
    assert routing.route(session, now=NOW).items_opened == 0  # routing twice changes nothing
