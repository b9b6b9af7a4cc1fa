"""The SME review queue: list, claim, confirm or dismiss review items of the departments one covers.

Public functions (callers commit):

- ``review_queue(session, *, actor, reasons=None, department=None, max_age_days=None,
  statuses=("open", "claimed"), limit=500, now=None) -> list[QueueEntry]``
- ``review_item_detail(session, *, actor, item_id) -> ReviewItemDetail`` (answer, every current
  rating, sources with title/version/outdated, gold info, decision)
- ``claim(session, *, actor, item_id, now=None) -> ItemState`` / ``release(session, *, actor, item_id)``
- ``confirm(session, *, actor, item_id, root_cause, corrected_answer, note, expected_row_version,
  correct_document_id=None, now=None) -> DecisionView``
- ``dismiss(session, *, actor, item_id, note, expected_row_version, now=None) -> DecisionView``
- ``bulk_dismiss(session, *, actor, item_ids, note, now=None) -> BulkDismissResult``
- ``current_version(session, *, actor, item_id) -> int``
- ``my_decisions(session, *, actor, limit=200) -> list[MyDecision]`` — the SME's own, newest first

SMEs see and decide only items of the departments they cover; leads see every item but do not
decide. Two SMEs deciding one item at once: the first commit wins, the other gets ConflictError
"item N was decided by X at T" — from the row_version check (optimistic locking, StaleDataError)
or from the unique decision per item, whichever the race hits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from audit import checks
from audit.auditlog import service as auditlog
from audit.base import utcnow
from audit.errors import ConflictError, NotFoundError, PermissionDenied, ValidationError
from audit.knowledge.hashing import normalise_text
from audit.knowledge.models import Document
from audit.org.models import User
from audit.permissions import require
from audit.ratings import service as ratings_service
from audit.ratings.service import RatingView
from audit.review import repository as repo
from audit.review.models import CONTENT_ROOT_CAUSES, REVIEW_REASONS, REVIEW_STATUSES, ROOT_CAUSES, ReviewDecision
from audit.review.models import ReviewItem as ReviewItemRow
from audit.sampling import repository as sampling_repo
from audit.sampling.repository import SourceView

DECIDED = ("confirmed", "dismissed")
# a claim older than this no longer keeps other SMEs away (someone went home with it)
CLAIM_TIMEOUT = dt.timedelta(hours=8)
NOTE_MAX = 2_000
CORRECTED_ANSWER_MAX = 20_000


@dataclass(frozen=True)
class QueueEntry:
    item_id: int
    answer_id: int
    department: str
    reasons: tuple[str, ...]
    status: str
    claimed_by: str | None
    claimed_at: dt.datetime | None
    created_at: dt.datetime
    age_days: float
    question: str
    row_version: int


@dataclass(frozen=True)
class ItemState:
    item_id: int
    status: str
    claimed_by: str | None
    row_version: int


@dataclass(frozen=True)
class DecisionView:
    item_id: int
    decision: str  # confirm | dismiss
    root_cause: str | None
    corrected_answer: str | None
    correct_document_id: int | None
    note: str | None
    sme: str
    decided_at: dt.datetime
    row_version: int | None = None  # the item's version after the decision, when just made


@dataclass(frozen=True)
class GoldView:
    gold_item_id: int
    reference_answer: str
    expected: dict[str, int | None]
    reference_document_ids: tuple[str, ...]


@dataclass(frozen=True)
class ReviewItemDetail:
    item_id: int
    status: str
    reasons: tuple[str, ...]
    department: str
    row_version: int
    claimed_by: str | None
    claimed_at: dt.datetime | None
    created_at: dt.datetime
    answer_id: int
    answer_external_id: str
    question: str
    answer_text: str
    model_version_id: int
    answered_at: dt.datetime
    confidence: float | None
    sources: tuple[SourceView, ...]
    ratings: tuple[RatingView, ...]
    gold: GoldView | None
    decision: DecisionView | None


@dataclass(frozen=True)
class BulkDismissResult:
    dismissed: tuple[int, ...]
    conflicts: tuple[str, ...]  # one line per item someone else had already decided or changed


# ---------------------------------------------------------------- scope and loading


def _scope(session: Session, actor: User | None) -> set[int] | None:
    """Department ids an SME covers; None (= every department) for leads and the operator."""
    if actor is None or actor.role != "sme":
        return None
    return repo.covered_department_ids(session, actor.id)


def _require_sme(actor: User | None) -> User:
    require(actor, "review")
    if actor is None:
        raise ValidationError("a review decision needs an SME: pass the acting user")
    return actor


def _load(session: Session, actor: User | None, item_id: int) -> ReviewItemRow:
    wanted = checks.row_id("item_id", item_id)
    item = repo.item(session, wanted) if wanted is not None else None
    if item is None:
        raise NotFoundError(f"review item {item_id} does not exist")
    scope = _scope(session, actor)
    if scope is not None and item.department_id not in scope:
        assert actor is not None
        department = sampling_repo.department_names(session, [item.department_id]).get(item.department_id)
        raise PermissionDenied(f"{actor.username} does not cover department {department!r} (review item {item_id})")
    return item


def _decided_conflict(session: Session, item_id: int) -> ConflictError:
    found = repo.decision_with_sme(session, item_id)
    if found is not None:
        decision, sme = found
        return ConflictError(
            f"item {item_id} was decided by {sme} at {decision.created_at:%Y-%m-%d %H:%M:%S} UTC ({decision.decision})"
        )
    item = repo.item(session, item_id)
    status = item.status if item is not None else "gone"
    return ConflictError(f"item {item_id} was changed by someone else (now {status}); reload it and try again")


def _claimed_by_other(session: Session, item: ReviewItemRow, sme: User, now: dt.datetime) -> ConflictError | None:
    if item.status != "claimed" or item.claimed_by_id in (None, sme.id):
        return None
    if item.claimed_at is not None and item.claimed_at < now - CLAIM_TIMEOUT:
        return None
    holder = repo.username(session, item.claimed_by_id)
    since = f" since {item.claimed_at:%Y-%m-%d %H:%M} UTC" if item.claimed_at else ""
    return ConflictError(f"item {item.id} is claimed by {holder}{since}")


def _state(session: Session, item: ReviewItemRow) -> ItemState:
    return ItemState(
        item_id=item.id,
        status=item.status,
        claimed_by=repo.username(session, item.claimed_by_id),
        row_version=item.row_version,
    )


# ---------------------------------------------------------------- reading


# The review page lists at most this many items, the oldest (and says so when more wait).
QUEUE_SHOWN = 500


def review_queue(
    session: Session,
    *,
    actor: User | None,
    reasons: Sequence[str] | None = None,
    department: str | None = None,
    max_age_days: int | None = None,
    statuses: Sequence[str] = ("open", "claimed"),
    limit: int = QUEUE_SHOWN,
    now: dt.datetime | None = None,
) -> list[QueueEntry]:
    """Review items oldest first, limited to the SME's departments; ``reasons`` keeps items with any of them."""
    require(actor, "view_reviews")
    for reason in reasons or ():
        if reason not in REVIEW_REASONS:
            raise ValidationError(f"reason: {reason!r} is not one of {', '.join(REVIEW_REASONS)}")
    for status in statuses:
        if status not in REVIEW_STATUSES:
            raise ValidationError(f"status: {status!r} is not one of {', '.join(REVIEW_STATUSES)}")
    if max_age_days is not None and (isinstance(max_age_days, bool) or max_age_days < 0):
        raise ValidationError(f"max_age_days: {max_age_days!r} must be 0 or more")
    now = now or utcnow()
    scope = _scope(session, actor)
    if department is not None:
        department_id = repo.department_id_by_name(session, department)
        if department_id is None:
            raise NotFoundError(f"department {department!r} does not exist")
        if scope is not None and department_id not in scope:
            assert actor is not None
            raise PermissionDenied(f"{actor.username} does not cover department {department!r}")
        scope = {department_id}
    rows = repo.queue_rows(
        session,
        department_ids=scope,
        statuses=statuses,
        created_from=now - dt.timedelta(days=max_age_days) if max_age_days is not None else None,
    )
    wanted = set(reasons or ())
    entries: list[QueueEntry] = []
    for item, question, department_name, claimer in rows:
        if wanted and not wanted & set(item.reasons):
            continue
        entries.append(
            QueueEntry(
                item_id=item.id,
                answer_id=item.answer_id,
                department=department_name,
                reasons=tuple(item.reasons),
                status=item.status,
                claimed_by=claimer,
                claimed_at=item.claimed_at,
                created_at=item.created_at,
                age_days=(now - item.created_at).total_seconds() / 86400,
                question=question,
                row_version=item.row_version,
            )
        )
        if len(entries) >= limit:
            break
    return entries


def _decision_view(decision: ReviewDecision, sme: str, row_version: int | None = None) -> DecisionView:
    return DecisionView(
        item_id=decision.review_item_id,
        decision=decision.decision,
        root_cause=decision.root_cause,
        corrected_answer=decision.corrected_answer,
        correct_document_id=decision.correct_document_id,
        note=decision.note,
        sme=sme,
        decided_at=decision.created_at,
        row_version=row_version,
    )


def review_item_detail(session: Session, *, actor: User | None, item_id: int) -> ReviewItemDetail:
    """Everything an SME needs to decide one item: every current rating (SMEs are not blind)."""
    require(actor, "view_reviews")
    item = _load(session, actor, item_id)
    found = sampling_repo.answer_with_department(session, item.answer_id)
    if found is None:
        raise NotFoundError(f"review item {item_id}: answer {item.answer_id} does not exist")
    answer, _asker_department = found
    department = sampling_repo.department_names(session, [item.department_id]).get(item.department_id, "")
    ratings = ratings_service.ratings_for_answer(session, actor=None, answer_id=item.answer_id)
    gold_row = repo.gold_items(session, [item.answer_id]).get(item.answer_id)
    gold = (
        GoldView(
            gold_item_id=gold_row.id,
            reference_answer=gold_row.reference_answer,
            expected={
                "accuracy": gold_row.expected_accuracy,
                "completeness": gold_row.expected_completeness,
                "relevance": gold_row.expected_relevance,
                "coherence": gold_row.expected_coherence,
            },
            reference_document_ids=tuple(gold_row.reference_document_ids or ()),
        )
        if gold_row is not None
        else None
    )
    decided = repo.decision_with_sme(session, item_id)
    return ReviewItemDetail(
        item_id=item.id,
        status=item.status,
        reasons=tuple(item.reasons),
        department=department,
        row_version=item.row_version,
        claimed_by=repo.username(session, item.claimed_by_id),
        claimed_at=item.claimed_at,
        created_at=item.created_at,
        answer_id=answer.id,
        answer_external_id=answer.external_id,
        question=answer.question,
        answer_text=answer.answer_text,
        model_version_id=answer.model_version_id,
        answered_at=answer.created_at,
        confidence=answer.confidence,
        sources=sampling_repo.source_views(session, answer.sources or []),
        ratings=tuple(ratings),
        gold=gold,
        decision=_decision_view(decided[0], decided[1]) if decided is not None else None,
    )


@dataclass(frozen=True)
class MyDecision:
    item_id: int
    department: str
    question: str
    decision: str  # confirm | dismiss
    root_cause: str | None
    corrected_answer: str | None
    note: str | None
    decided_at: dt.datetime


def my_decisions(session: Session, *, actor: User | None, limit: int = 200) -> list[MyDecision]:
    """The acting SME's own decisions, newest first."""
    sme = _require_sme(actor)
    return [
        MyDecision(
            item_id=decision.review_item_id,
            department=department,
            question=question,
            decision=decision.decision,
            root_cause=decision.root_cause,
            corrected_answer=decision.corrected_answer,
            note=decision.note,
            decided_at=decision.created_at,
        )
        for decision, department, question in repo.decisions_by(session, sme.id, limit=limit)
    ]


def current_version(session: Session, *, actor: User | None, item_id: int) -> int:
    """The item's row_version now (what ``expected_row_version`` means "as I see it")."""
    require(actor, "view_reviews")
    return _load(session, actor, item_id).row_version


# ---------------------------------------------------------------- claiming


def claim(session: Session, *, actor: User | None, item_id: int, now: dt.datetime | None = None) -> ItemState:
    """Take an item so other SMEs see it is being worked on; claiming it again is a no-op."""
    sme = _require_sme(actor)
    now = now or utcnow()
    item = _load(session, sme, item_id)
    if item.status in DECIDED:
        raise _decided_conflict(session, item_id)
    if item.status == "claimed" and item.claimed_by_id == sme.id:
        return _state(session, item)
    conflict = _claimed_by_other(session, item, sme, now)
    if conflict is not None:
        raise conflict
    try:
        with session.begin_nested():
            item.status = "claimed"
            item.claimed_by_id = sme.id
            item.claimed_at = now
            item.updated_at = now
            session.flush()
    except StaleDataError:
        raise _decided_conflict(session, item_id) from None
    auditlog.record(session, actor=sme, action="review.claim", entity_type="review_item", entity_id=item_id)
    return _state(session, item)


def release(session: Session, *, actor: User | None, item_id: int, now: dt.datetime | None = None) -> ItemState:
    """Give back an item one has claimed (it returns to the open queue)."""
    sme = _require_sme(actor)
    item = _load(session, sme, item_id)
    if item.status != "claimed" or item.claimed_by_id != sme.id:
        raise ConflictError(f"item {item_id} is not claimed by {sme.username}")
    try:
        with session.begin_nested():
            item.status = "open"
            item.claimed_by_id = None
            item.claimed_at = None
            item.updated_at = now or utcnow()
            session.flush()
    except StaleDataError:
        raise _decided_conflict(session, item_id) from None
    auditlog.record(session, actor=sme, action="review.release", entity_type="review_item", entity_id=item_id)
    return _state(session, item)


# ---------------------------------------------------------------- deciding


def _note(note: str | None) -> str | None:
    return checks.text("note", note, NOTE_MAX)


def _decide(
    session: Session,
    *,
    sme: User,
    item_id: int,
    decision: str,
    root_cause: str | None,
    corrected_answer: str | None,
    correct_document_id: int | None,
    note: str | None,
    expected_row_version: int,
    now: dt.datetime,
) -> DecisionView:
    item = _load(session, sme, item_id)
    if item.status in DECIDED:
        raise _decided_conflict(session, item_id)
    conflict = _claimed_by_other(session, item, sme, now)
    if conflict is not None:
        raise conflict
    if item.row_version != expected_row_version:
        raise ConflictError(
            f"item {item_id} changed since you loaded it (version {expected_row_version}, now {item.row_version}); "
            "reload it and decide again"
        )
    row = ReviewDecision(
        review_item_id=item.id,
        sme_id=sme.id,
        decision=decision,
        root_cause=root_cause,
        corrected_answer=corrected_answer,
        correct_document_id=correct_document_id,
        note=note,
        created_at=now,
    )
    try:
        with session.begin_nested():
            # the UPDATE ... WHERE row_version = v goes first (review_items before review_decisions):
            # a concurrent decision makes it match no row, which SQLAlchemy reports as StaleDataError
            item.status = "confirmed" if decision == "confirm" else "dismissed"
            if item.claimed_by_id is None:
                item.claimed_by_id = sme.id
                item.claimed_at = now
            item.updated_at = now
            session.add(row)
            session.flush()
    except (StaleDataError, IntegrityError):
        raise _decided_conflict(session, item_id) from None
    auditlog.record(
        session,
        actor=sme,
        action=f"review.{decision}",
        entity_type="review_item",
        entity_id=item_id,
        details={"root_cause": root_cause, "answer_id": item.answer_id, "correct_document_id": correct_document_id},
    )
    return _decision_view(row, sme.username, row_version=item.row_version)


def confirm(
    session: Session,
    *,
    actor: User | None,
    item_id: int,
    root_cause: str,
    corrected_answer: str | None,
    note: str | None,
    expected_row_version: int,
    correct_document_id: int | None = None,
    now: dt.datetime | None = None,
) -> DecisionView:
    """Confirm a problem with its root cause; content causes need the corrected answer, and one that
    differs from the answer (whitespace and case aside)."""
    sme = _require_sme(actor)
    if root_cause not in ROOT_CAUSES:
        raise ValidationError(f"root_cause: {root_cause!r} is not one of {', '.join(ROOT_CAUSES)}")
    corrected = checks.text("corrected_answer", corrected_answer, CORRECTED_ANSWER_MAX)
    if root_cause in CONTENT_ROOT_CAUSES and not corrected:
        raise ValidationError(f"corrected_answer: required when the root cause is {root_cause}")
    if root_cause in CONTENT_ROOT_CAUSES and corrected:
        # the correction becomes a training example: the answer itself as its correction would teach
        # the model the very error the SME confirms
        answer = sampling_repo.answer_with_department(session, _load(session, sme, item_id).answer_id)
        if answer is not None and normalise_text(corrected) == normalise_text(answer[0].answer_text):
            raise ValidationError(
                f"corrected_answer: the same as the answer; write the answer as it should have been ({root_cause})"
            )
    if correct_document_id is not None:
        document_id = checks.row_id("correct_document_id", correct_document_id)
        if document_id is None or session.get(Document, document_id) is None:
            raise ValidationError(f"correct_document_id: document {correct_document_id} does not exist")
    return _decide(
        session,
        sme=sme,
        item_id=item_id,
        decision="confirm",
        root_cause=root_cause,
        corrected_answer=corrected or None,
        correct_document_id=correct_document_id,
        note=_note(note),
        expected_row_version=expected_row_version,
        now=now or utcnow(),
    )


def dismiss(
    session: Session,
    *,
    actor: User | None,
    item_id: int,
    note: str | None,
    expected_row_version: int,
    now: dt.datetime | None = None,
) -> DecisionView:
    """Dismiss an item: the answer is fine (the note says why)."""
    sme = _require_sme(actor)
    return _decide(
        session,
        sme=sme,
        item_id=item_id,
        decision="dismiss",
        root_cause=None,
        corrected_answer=None,
        correct_document_id=None,
        note=_note(note),
        expected_row_version=expected_row_version,
        now=now or utcnow(),
    )


def bulk_dismiss(
    session: Session, *, actor: User | None, item_ids: Sequence[int], note: str, now: dt.datetime | None = None
) -> BulkDismissResult:
    """Dismiss several items with one note. Every item must be in the SME's departments (else nothing
    happens); items someone else decided or holds are reported, not overwritten."""
    sme = _require_sme(actor)
    cleaned = _note(note)
    if cleaned is None:
        raise ValidationError("note: say why these items are dismissed")
    now = now or utcnow()
    items = [_load(session, sme, item_id) for item_id in dict.fromkeys(item_ids)]
    dismissed: list[int] = []
    conflicts: list[str] = []
    for item in items:
        try:
            dismiss(session, actor=sme, item_id=item.id, note=cleaned, expected_row_version=item.row_version, now=now)
        except ConflictError as exc:
            conflicts.append(str(exc))
        else:
            dismissed.append(item.id)
    return BulkDismissResult(dismissed=tuple(dismissed), conflicts=tuple(conflicts))
