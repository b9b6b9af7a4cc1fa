"""Every role × every workflow service function: forbidden cells raise PermissionDenied in the service.

The expected cells come from the one matrix in ``audit.permissions``; allowed cells are called too, to
show the refusal is the matrix's and not an accident of the test data.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy.orm import Session

from audit.db import make_engine
from audit.errors import AuditloopError, PermissionDenied
from audit.org.models import ROLES, User
from audit.permissions import ROLE_ACTIONS
from audit.policy import service as policy_service
from audit.ratings import service as ratings
from audit.review import routing
from audit.review import service as review
from audit.review.policy import RoutingPolicy
from audit.sampling import service as sampling
from audit.sampling.models import SampleItem
from audit.sampling.policy import SamplingPolicy
from tests import factories as f

NOW = dt.datetime(2026, 11, 28, 9, tzinfo=dt.UTC)
SCORES = {"accuracy": 3, "completeness": 3, "relevance": 3, "coherence": 3}


@dataclasses.dataclass(frozen=True)
class World:
    answer_id: int
    assignment_id: int
    rating_id: int
    batch_id: int
    item_id: int
    row_version: int


def build_world(session: Session, actor: User) -> World:
    """Data the actor would legitimately act on: their own assignment and rating, an item in their department."""
    dept = f.department(session, "HR")
    model = f.model_version(session)
    ans = f.answer(session, dept=dept, model=model)
    assignment = f.assignment(session, ans=ans, auditor=actor)
    rated = f.answer(session, dept=dept, model=model)
    rating = f.rating(session, ans=rated, auditor=actor, created_at=NOW)
    flagged = f.answer(session, dept=dept, model=model)
    f.rating(session, ans=flagged, auditor=f.user(session), accuracy=1)
    item = routing.route_answer(session, flagged.id, now=NOW)
    assert item is not None
    batch_id = session.get_one(SampleItem, assignment.sample_item_id).batch_id
    return World(ans.id, assignment.id, rating.id, batch_id, item.id, item.row_version)


Call = Callable[[Session, User, World], Any]

# (name, the actions any one of which allows it, the call)
CELLS: list[tuple[str, tuple[str, ...], Call]] = [
    (
        "sampling.draw_sample",
        ("run_sampling",),
        lambda s, a, w: sampling.draw_sample(s, actor=a, sample_date=dt.date(2026, 12, 1), assign=False),
    ),
    (
        "sampling.assign_batch",
        ("run_sampling",),
        lambda s, a, w: sampling.assign_batch(s, actor=a, batch_id=w.batch_id),
    ),
    ("sampling.release_expired", ("run_sampling",), lambda s, a, w: sampling.release_expired(s, NOW, actor=a)),
    (
        "sampling.batch_summary",
        ("run_sampling",),
        lambda s, a, w: sampling.batch_summary(s, actor=a, sample_date=dt.date(2026, 11, 28)),
    ),
    ("sampling.next_item", ("rate",), lambda s, a, w: sampling.next_item(s, actor=a, now=NOW)),
    (
        "sampling.auditor_progress",
        ("rate",),
        lambda s, a, w: sampling.auditor_progress(s, actor=a, batch_id=w.batch_id),
    ),
    (
        "ratings.submit_rating",
        ("rate",),
        lambda s, a, w: ratings.submit_rating(s, actor=a, assignment_id=w.assignment_id, **SCORES, now=NOW),
    ),
    (
        "ratings.edit_rating",
        ("rate",),
        lambda s, a, w: ratings.edit_rating(s, actor=a, rating_id=w.rating_id, **SCORES, now=NOW),
    ),
    (
        "ratings.skip_assignment",
        ("rate",),
        lambda s, a, w: ratings.skip_assignment(s, actor=a, assignment_id=w.assignment_id, reason="unclear"),
    ),
    ("ratings.my_ratings", ("rate",), lambda s, a, w: ratings.my_ratings(s, actor=a, day=NOW.date())),
    (
        "ratings.ratings_for_answer",
        ("rate", "view_ratings_all"),
        lambda s, a, w: ratings.ratings_for_answer(s, actor=a, answer_id=w.answer_id),
    ),
    (
        "ratings.rating_history",
        ("rate", "view_ratings_all"),
        lambda s, a, w: ratings.rating_history(s, actor=a, answer_id=w.answer_id),
    ),
    ("routing.route", ("run_sampling",), lambda s, a, w: routing.route(s, actor=a, now=NOW)),
    ("review.review_queue", ("view_reviews",), lambda s, a, w: review.review_queue(s, actor=a, now=NOW)),
    (
        "review.review_item_detail",
        ("view_reviews",),
        lambda s, a, w: review.review_item_detail(s, actor=a, item_id=w.item_id),
    ),
    (
        "review.current_version",
        ("view_reviews",),
        lambda s, a, w: review.current_version(s, actor=a, item_id=w.item_id),
    ),
    ("review.claim", ("review",), lambda s, a, w: review.claim(s, actor=a, item_id=w.item_id, now=NOW)),
    ("review.release", ("review",), lambda s, a, w: review.release(s, actor=a, item_id=w.item_id)),
    (
        "review.confirm",
        ("review",),
        lambda s, a, w: review.confirm(
            s,
            actor=a,
            item_id=w.item_id,
            root_cause="department_bias",
            corrected_answer=None,
            note=None,
            expected_row_version=w.row_version,
        ),
    ),
    (
        "review.dismiss",
        ("review",),
        lambda s, a, w: review.dismiss(s, actor=a, item_id=w.item_id, note=None, expected_row_version=w.row_version),
    ),
    (
        "review.bulk_dismiss",
        ("review",),
        lambda s, a, w: review.bulk_dismiss(s, actor=a, item_ids=[w.item_id], note="ok"),
    ),
    (
        "policy.save sampling",
        ("manage_policies",),
        lambda s, a, w: policy_service.save(s, actor=a, name="sampling", settings=SamplingPolicy()),
    ),
    (
        "policy.save routing",
        ("manage_policies",),
        lambda s, a, w: policy_service.save(s, actor=a, name="routing", settings=RoutingPolicy()),
    ),
]


def _allowed(role: str, actions: tuple[str, ...]) -> bool:
    return any(action in ROLE_ACTIONS[role] for action in actions)


FORBIDDEN = [(name, role, call) for name, actions, call in CELLS for role in ROLES if not _allowed(role, actions)]
ALLOWED = [(name, role, call) for name, actions, call in CELLS for role in ROLES if _allowed(role, actions)]


@pytest.fixture
def sqlite_session(sqlite_url: str) -> Iterator[Session]:
    """Permission checks do not depend on the backend: SQLite only, to keep this matrix fast."""
    engine = make_engine(sqlite_url)
    connection = engine.connect()
    outer = connection.begin()
    session = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    yield session
    session.close()
    outer.rollback()
    connection.close()
    engine.dispose()


def _actor(session: Session, role: str, *, active: bool = True) -> User:
    return f.user(session, role=role, departments=[f.department(session, "HR")], active=active)


@pytest.mark.parametrize(("name", "role", "call"), FORBIDDEN, ids=[f"{n}-{r}" for n, r, _ in FORBIDDEN])
def test_forbidden_cell_is_refused_by_the_service(sqlite_session: Session, name: str, role: str, call: Call) -> None:
    actor = _actor(sqlite_session, role)
    world = build_world(sqlite_session, actor)
    with pytest.raises(PermissionDenied):
        call(sqlite_session, actor, world)


@pytest.mark.parametrize(("name", "role", "call"), ALLOWED, ids=[f"{n}-{r}" for n, r, _ in ALLOWED])
def test_allowed_cell_passes_the_permission_check(sqlite_session: Session, name: str, role: str, call: Call) -> None:
    actor = _actor(sqlite_session, role)
    world = build_world(sqlite_session, actor)
    try:
        call(sqlite_session, actor, world)
    except PermissionDenied as exc:  # pragma: no cover - the failure message is the point
        pytest.fail(f"{name} refused {role}: {exc}")
    except AuditloopError:
        pass  # refused for another reason (e.g. nothing to do) is fine here


@pytest.mark.parametrize(("name", "role", "call"), ALLOWED, ids=[f"{n}-{r}" for n, r, _ in ALLOWED])
def test_inactive_users_are_refused_everything(sqlite_session: Session, name: str, role: str, call: Call) -> None:
    actor = _actor(sqlite_session, role, active=False)
    world = build_world(sqlite_session, actor)
    with pytest.raises(PermissionDenied):
        call(sqlite_session, actor, world)


def test_every_role_is_forbidden_something_and_every_function_forbids_someone() -> None:
    assert {role for _, role, _ in FORBIDDEN} == set(ROLES)
    assert {name for name, _, _ in FORBIDDEN} == {name for name, _, _ in CELLS} - {
        "ratings.ratings_for_answer",
        "ratings.rating_history",
    }  # every active role may read ratings (auditors only their own: see test_ratings)
