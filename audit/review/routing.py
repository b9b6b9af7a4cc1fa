"""Routing: rules that turn current ratings into one review item per answer, reasons accumulated.

- ``reasons_for(ratings, gold, policy) -> tuple[str, ...]`` — the rules, pure.
- ``route_answer(session, answer_id, *, now=None) -> ReviewItem | None`` — after each submit or edit,
  for that one answer (a handful of indexed lookups). No permission check: it only derives state
  from ratings the caller was allowed to write.
- ``route(session, *, actor=None, since=None, now=None) -> RoutingSummary`` — every answer with a
  current rating (given since ``since``), e.g. after importing historical ratings.

Rules (only current ratings count): ``low_score`` accuracy <= low_accuracy_max; ``bias_flag`` any
flag (if route_bias_flags); ``disagreement`` two current ratings differ by >= disagreement_min on
some dimension; ``gold_miss`` a rating differs from the gold item's expected score by >= gold_miss_min
on some dimension. Reasons are only ever added; an item already confirmed or dismissed stays decided.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from audit.auditlog import service as auditlog
from audit.base import utcnow
from audit.errors import NotFoundError
from audit.org.models import User
from audit.permissions import require
from audit.ratings.models import DIMENSIONS
from audit.review import repository as repo
from audit.review.models import REVIEW_REASONS, ReviewItem
from audit.review.policy import RoutingPolicy, load_routing_policy
from audit.review.repository import CurrentScores
from audit.sampling.models import GoldItem

OPEN_STATUSES = ("open", "claimed")


@dataclass(frozen=True)
class RoutingSummary:
    answers_checked: int
    items_opened: int
    items_extended: int


def gold_expectation(gold: GoldItem | None) -> dict[str, int | None] | None:
    if gold is None:
        return None
    return {d: getattr(gold, f"expected_{d}") for d in DIMENSIONS}


def reasons_for(
    ratings: Sequence[CurrentScores], gold: Mapping[str, int | None] | None, policy: RoutingPolicy
) -> tuple[str, ...]:
    """The review reasons these current ratings (and the gold expectation, if any) give, in canonical order."""
    reasons: set[str] = set()
    for rating in ratings:
        if rating.accuracy is not None and rating.accuracy <= policy.low_accuracy_max:
            reasons.add("low_score")
        if policy.route_bias_flags and rating.bias_flag:
            reasons.add("bias_flag")
        if gold is not None:
            for dim, score in rating.scores().items():
                expected = gold.get(dim)
                if score is not None and expected is not None and abs(score - expected) >= policy.gold_miss_min:
                    reasons.add("gold_miss")
    for dim in DIMENSIONS:
        given = [score for rating in ratings if (score := rating.scores()[dim]) is not None]
        if len(given) >= 2 and max(given) - min(given) >= policy.disagreement_min:
            reasons.add("disagreement")
    return tuple(r for r in REVIEW_REASONS if r in reasons)


def _open_or_extend(
    session: Session,
    answer_id: int,
    reasons: tuple[str, ...],
    now: dt.datetime,
    *,
    department_id: int | None = None,
) -> tuple[ReviewItem, str | None]:
    """Create the answer's review item or add reasons to it; returns it and "opened"/"extended"/None."""
    item = repo.item_for_answer(session, answer_id)
    if item is None:
        department_id = department_id or repo.asker_department_id(session, answer_id)
        if department_id is None:
            raise NotFoundError(f"answer {answer_id} does not exist")
        item = ReviewItem(
            answer_id=answer_id,
            department_id=department_id,
            reasons=list(reasons),
            status="open",
            created_at=now,
            updated_at=now,
        )
        try:
            with session.begin_nested():
                session.add(item)
                session.flush()
        except IntegrityError:
            # another submit routed the same answer at the same moment: add to its item instead
            found = repo.item_for_answer(session, answer_id)
            if found is None:
                raise
            item = found
        else:
            auditlog.record(
                session,
                actor=None,
                actor_name="routing",
                action="review.open",
                entity_type="review_item",
                entity_id=item.id,
                details={"answer_id": answer_id, "reasons": list(reasons)},
            )
            return item, "opened"
    if item.status not in OPEN_STATUSES:
        return item, None
    merged = [r for r in REVIEW_REASONS if r in set(item.reasons) | set(reasons)]
    if merged == list(item.reasons):
        return item, None
    added = [r for r in merged if r not in item.reasons]
    item.reasons = merged
    item.updated_at = now
    session.flush()
    auditlog.record(
        session,
        actor=None,
        actor_name="routing",
        action="review.add_reasons",
        entity_type="review_item",
        entity_id=item.id,
        details={"answer_id": answer_id, "added": added},
    )
    return item, "extended"


def routing_policy_from(settings: Mapping[str, Any] | None) -> RoutingPolicy:
    """The routing policy from stored settings the caller read (None: nothing stored), as
    :func:`audit.review.policy.load_routing_policy` gives it: over the defaults, validated."""
    known = {f.name for f in fields(RoutingPolicy)}
    policy = RoutingPolicy(**{k: v for k, v in (settings or {}).items() if k in known})
    policy.validate()
    return policy


def route_answer(
    session: Session,
    answer_id: int,
    *,
    policy: RoutingPolicy | None = None,
    now: dt.datetime | None = None,
    locked_department_id: int | None = None,
) -> ReviewItem | None:
    """Apply the rules to one answer's current ratings; the review item if any rule fires.

    ``locked_department_id``: the caller already holds the answer's row lock (``FOR NO KEY UPDATE``,
    as :func:`audit.review.repository.lock_answer` takes it) and read the asker's department;
    routing then does not lock again.
    """
    policy = policy or load_routing_policy(session)
    department_id = locked_department_id
    if department_id is None:
        # serialise routing per answer: the scores read next then include every committed rating
        department_id = repo.lock_answer(session, answer_id)
    if department_id is None:
        raise NotFoundError(f"answer {answer_id} does not exist")
    scores, gold = repo.scores_and_gold(session, answer_id)
    if not scores:
        return None
    reasons = reasons_for(scores, gold, policy)
    if not reasons:
        return None
    item, _ = _open_or_extend(session, answer_id, reasons, now or utcnow(), department_id=department_id)
    return item


def route(
    session: Session, *, actor: User | None = None, since: dt.datetime | None = None, now: dt.datetime | None = None
) -> RoutingSummary:
    """Route every answer with a current rating (given at or after ``since``)."""
    require(actor, "run_sampling")
    policy = load_routing_policy(session)
    now = now or utcnow()
    answer_ids = repo.answers_with_current_ratings(session, since=since)
    opened = extended = 0
    for start in range(0, len(answer_ids), repo.CHUNK):
        chunk = answer_ids[start : start + repo.CHUNK]
        scores = repo.current_scores(session, chunk)
        golds = repo.gold_items(session, chunk)
        for answer_id in chunk:
            reasons = reasons_for(scores.get(answer_id, []), gold_expectation(golds.get(answer_id)), policy)
            if not reasons:
                continue
            _, outcome = _open_or_extend(session, answer_id, reasons, now)
            opened += outcome == "opened"
            extended += outcome == "extended"
    return RoutingSummary(answers_checked=len(answer_ids), items_opened=opened, items_extended=extended)
