"""Rating an assigned answer, editing and skipping, and reading ratings without breaking blindness.

Public functions (callers commit):

- ``submit_rating(session, *, actor, assignment_id, accuracy, completeness, relevance, coherence,
  sources_correct=None, bias_flag=False, favoured_department=None, disfavoured_department=None,
  comment=None, suggested_correction=None, seconds_spent=None, idempotency_key=None, now=None)
  -> SubmitResult``. A double submit (same key, or the assignment already submitted) stores one
  rating and returns it with ``created=False``. Departments are given by name (or id).
- ``edit_rating(session, *, actor, rating_id, <the same fields>, now=None) -> SubmitResult``:
  own ratings, the same UTC day; writes a new row that supersedes the old one.
- ``skip_assignment(session, *, actor, assignment_id, reason, now=None) -> None``
- ``reopen_skipped(session, *, actor, assignment_id) -> None``: an own skipped item back to pending.
- ``undo_last(session, *, actor, assignment_id, now=None) -> Undone``: the actor's last submit or skip,
  which must be of that assignment. A skip is reopened; a submit is never deleted (ratings are
  append-only): its rating comes back, still current, for the page to show in the form again, and
  what the auditor sends then is an ``edit_rating`` that supersedes it. So a submit can be undone
  exactly while its rating can be edited (``can_change``).
- ``can_change(actor, rating, *, now=None) -> bool``: whether an edit (or undo) of it would be allowed.
- ``ratings_for_answer(session, *, actor, answer_id, auditor_id=None) -> list[RatingView]``
  (current ratings; an auditor sees only their own, asking for another's is PermissionDenied).
- ``rating_history(session, *, actor, answer_id, auditor_id=None) -> list[RatingView]`` (every row).
- ``my_ratings(session, *, actor, day) -> list[RatingView]`` (the actor's current ratings of a UTC day).

Each submit and edit routes its answer at once (``audit.review.routing.route_answer``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Literal, Protocol

from sqlalchemy.orm import Session

from audit import checks
from audit.auditlog import service as auditlog
from audit.base import utcnow
from audit.errors import AuditloopError, ConflictError, NotFoundError, PermissionDenied, ValidationError
from audit.org.models import User
from audit.permissions import can, require
from audit.ratings import repository as repo
from audit.ratings.models import DIMENSIONS, SOURCES_CORRECT, Rating
from audit.ratings.rubric import RUBRIC_VERSION
from audit.review import routing
from audit.sampling.models import Assignment

COMMENT_MAX = 2_000
CORRECTION_MAX = 10_000
SKIP_REASON_MAX = 500
IDEMPOTENCY_KEY_MAX = 64
SECONDS_MAX = 24 * 3600


@dataclass(frozen=True)
class RatingView:
    id: int
    answer_id: int
    auditor_id: int
    auditor: str
    assignment_id: int | None
    accuracy: int | None
    completeness: int | None
    relevance: int | None
    coherence: int | None
    sources_correct: str | None
    bias_flag: bool
    favoured_department: str | None
    disfavoured_department: str | None
    comment: str | None
    suggested_correction: str | None
    rubric_version: str
    seconds_spent: int | None
    origin: str
    is_current: bool
    supersedes_id: int | None
    created_at: dt.datetime
    question: str | None = None  # the rated answer's question, where a list shows it (``my_ratings``)

    @property
    def scores(self) -> dict[str, int | None]:
        return {d: getattr(self, d) for d in DIMENSIONS}


@dataclass(frozen=True)
class SubmitResult:
    rating: RatingView
    created: bool  # False when this was a repeat of a submit already stored


@dataclass(frozen=True)
class Undone:
    """What ``undo_last`` took back."""

    assignment_id: int
    action: Literal["skip", "submit"]
    # a submit's rating, still current: the form shows it again, and sending it changed supersedes it
    rating: RatingView | None


class _RatingState(Protocol):
    """What decides whether a rating can still be changed (a ``Rating`` row or a ``RatingView``)."""

    @property
    def id(self) -> int: ...
    @property
    def auditor_id(self) -> int: ...
    @property
    def is_current(self) -> bool: ...
    @property
    def created_at(self) -> dt.datetime: ...


@dataclass(frozen=True)
class _Fields:
    """Validated rating fields, departments resolved to ids."""

    accuracy: int | None
    completeness: int | None
    relevance: int | None
    coherence: int | None
    sources_correct: str | None
    bias_flag: bool
    favoured_department_id: int | None
    disfavoured_department_id: int | None
    comment: str | None
    suggested_correction: str | None
    seconds_spent: int | None


# ---------------------------------------------------------------- views


def _views(session: Session, rows: list[tuple[Rating, str]]) -> list[RatingView]:
    dept_ids = {d for rating, _ in rows for d in (rating.favoured_department_id, rating.disfavoured_department_id) if d}
    names = repo.department_names(session, dept_ids)
    return [
        RatingView(
            id=r.id,
            answer_id=r.answer_id,
            auditor_id=r.auditor_id,
            auditor=username,
            assignment_id=r.assignment_id,
            accuracy=r.accuracy,
            completeness=r.completeness,
            relevance=r.relevance,
            coherence=r.coherence,
            sources_correct=r.sources_correct,
            bias_flag=r.bias_flag,
            favoured_department=names.get(r.favoured_department_id) if r.favoured_department_id else None,
            disfavoured_department=names.get(r.disfavoured_department_id) if r.disfavoured_department_id else None,
            comment=r.comment,
            suggested_correction=r.suggested_correction,
            rubric_version=r.rubric_version,
            seconds_spent=r.seconds_spent,
            origin=r.origin,
            is_current=r.is_current,
            supersedes_id=r.supersedes_id,
            created_at=r.created_at,
        )
        for r, username in rows
    ]


def _view(session: Session, rating: Rating, username: str) -> RatingView:
    return _views(session, [(rating, username)])[0]


# ---------------------------------------------------------------- validation


def _text(field: str, value: str | None, limit: int) -> str | None:
    return checks.text(field, value, limit)


def _department(session: Session, field: str, ref: str | int | None) -> int | None:
    if ref is None or ref == "":
        return None
    if isinstance(ref, bool) or not isinstance(ref, str | int):
        raise ValidationError(f"{field}: expected a department name or id, got {type(ref).__name__}")
    if isinstance(ref, int) and checks.row_id(field, ref) is None:
        raise ValidationError(f"{field}: department {ref!r} does not exist")
    found = repo.department_id(session, ref)
    if found is None:
        raise ValidationError(f"{field}: department {ref!r} does not exist")
    return found


def _validate(
    session: Session,
    *,
    accuracy: int | None,
    completeness: int | None,
    relevance: int | None,
    coherence: int | None,
    sources_correct: str | None,
    bias_flag: bool,
    favoured_department: str | int | None,
    disfavoured_department: str | int | None,
    comment: str | None,
    suggested_correction: str | None,
    seconds_spent: int | None,
) -> _Fields:
    scores = {"accuracy": accuracy, "completeness": completeness, "relevance": relevance, "coherence": coherence}
    for field, score in scores.items():
        if score is None:
            continue
        if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5:
            raise ValidationError(f"{field}: {score!r} is not a whole number from 1 to 5")
    if all(score is None for score in scores.values()):
        raise ValidationError("scores: rate at least one of accuracy, completeness, relevance, coherence (or skip)")
    if sources_correct is not None and sources_correct not in SOURCES_CORRECT:
        raise ValidationError(f"sources_correct: {sources_correct!r} is not one of {', '.join(SOURCES_CORRECT)}")
    if not isinstance(bias_flag, bool):
        raise ValidationError(f"bias_flag: {bias_flag!r} is not true or false")
    favoured = _department(session, "favoured_department", favoured_department)
    disfavoured = _department(session, "disfavoured_department", disfavoured_department)
    if bias_flag and favoured is None and disfavoured is None:
        raise ValidationError("bias_flag: name the favoured and/or the disfavoured department")
    if not bias_flag and (favoured is not None or disfavoured is not None):
        raise ValidationError("favoured/disfavoured department given without bias_flag")
    if favoured is not None and favoured == disfavoured:
        raise ValidationError("favoured_department and disfavoured_department are the same department")
    if seconds_spent is not None and (
        isinstance(seconds_spent, bool) or not isinstance(seconds_spent, int) or not 0 <= seconds_spent <= SECONDS_MAX
    ):
        raise ValidationError(f"seconds_spent: {seconds_spent!r} is not a whole number from 0 to {SECONDS_MAX}")
    return _Fields(
        accuracy=accuracy,
        completeness=completeness,
        relevance=relevance,
        coherence=coherence,
        sources_correct=sources_correct,
        bias_flag=bias_flag,
        favoured_department_id=favoured,
        disfavoured_department_id=disfavoured,
        comment=_text("comment", comment, COMMENT_MAX),
        suggested_correction=_text("suggested_correction", suggested_correction, CORRECTION_MAX),
        seconds_spent=seconds_spent,
    )


def _check_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not isinstance(key, str) or not 1 <= len(key) <= IDEMPOTENCY_KEY_MAX:
        raise ValidationError(f"idempotency_key: must be 1 to {IDEMPOTENCY_KEY_MAX} characters")
    return key


def _repeat_of(session: Session, key: str | None, actor: User | None) -> SubmitResult | None:
    """The rating already stored under this idempotency key, if it is the actor's."""
    if key is None:
        return None
    existing = repo.by_idempotency_key(session, key)
    if existing is None:
        return None
    if actor is not None and existing.auditor_id != actor.id:
        raise ConflictError("idempotency_key: already used by another submit; generate a new key per form")
    owner = actor.username if actor is not None else _username(session, existing.auditor_id)
    return SubmitResult(rating=_view(session, existing, owner), created=False)


def _username(session: Session, user_id: int) -> str:
    user = session.get(User, user_id)
    return user.username if user is not None else str(user_id)


# ---------------------------------------------------------------- who may change a rating


def _change_refusal(rating: _RatingState, actor: User | None, now: dt.datetime) -> AuditloopError | None:
    """Why ``actor`` may not change this rating (edit it, or undo its submit) at ``now``; None if they may.
    Only one's own current rating, on the UTC day it was given (after that, reports have used it)."""
    if actor is not None and rating.auditor_id != actor.id:
        return PermissionDenied(f"rating {rating.id} is not {actor.username}'s: only your own ratings can be edited")
    if not rating.is_current:
        return ConflictError(f"rating {rating.id} was already replaced by a newer rating; edit that one")
    if rating.created_at.astimezone(dt.UTC).date() != now.astimezone(dt.UTC).date():
        return ValidationError(
            f"rating {rating.id} was given on {rating.created_at.astimezone(dt.UTC).date().isoformat()} (UTC): "
            "ratings can only be edited on the day they were given"
        )
    return None


def _raise_unless_changeable(session: Session, rating: Rating, actor: User | None, now: dt.datetime) -> None:
    refusal = _change_refusal(rating, actor, now)
    if isinstance(refusal, ConflictError):  # name the rating that replaced it
        newer = repo.superseding_rating_id(session, rating.id)
        raise ConflictError(f"rating {rating.id} was already replaced by rating {newer}; edit that one")
    if refusal is not None:
        raise refusal


def can_change(actor: User | None, rating: _RatingState, *, now: dt.datetime | None = None) -> bool:
    """Whether ``actor`` may still edit this rating, or undo the submit that gave it: the rating page
    offers the form only then; ``edit_rating`` and ``undo_last`` refuse otherwise."""
    return can(actor, "rate") and _change_refusal(rating, actor, now or utcnow()) is None


# ---------------------------------------------------------------- writing


def submit_rating(
    session: Session,
    *,
    actor: User | None,
    assignment_id: int,
    accuracy: int | None,
    completeness: int | None,
    relevance: int | None,
    coherence: int | None,
    sources_correct: str | None = None,
    bias_flag: bool = False,
    favoured_department: str | int | None = None,
    disfavoured_department: str | int | None = None,
    comment: str | None = None,
    suggested_correction: str | None = None,
    seconds_spent: int | None = None,
    idempotency_key: str | None = None,
    now: dt.datetime | None = None,
) -> SubmitResult:
    """Store the rating for an assignment of the actor's (``actor=None``: on behalf of its auditor)."""
    require(actor, "rate")
    key = _check_key(idempotency_key)
    wanted = checks.row_id("assignment_id", assignment_id)
    # one statement: the assignment and its answer (row-locked), the idempotency key's rating, the
    # auditor's current rating of the answer, the routing policy
    target = repo.submit_target(session, wanted, key) if wanted is not None else None
    if target is None or target.repeat_rating_id is not None:
        repeat = _repeat_of(session, key, actor)
        if repeat is not None:
            return repeat
    if target is None:
        raise NotFoundError(f"assignment {assignment_id} does not exist")
    if actor is not None and target.auditor_id != actor.id:
        raise PermissionDenied(f"assignment {assignment_id} is not assigned to {actor.username}")
    auditor_name = actor.username if actor is not None else _username(session, target.auditor_id)
    if target.status == "submitted":
        stored = repo.current_rating(session, answer_id=target.answer_id, auditor_id=target.auditor_id)
        if stored is not None:
            return SubmitResult(rating=_view(session, stored, auditor_name), created=False)
        raise ConflictError(f"assignment {assignment_id} was already submitted")
    if target.status == "skipped":
        raise ConflictError(f"assignment {assignment_id} was skipped; it cannot be rated any more")
    if target.status == "expired":
        raise ConflictError(
            f"assignment {assignment_id} expired (not finished within the lock time) and was handed to another auditor"
        )
    fields = _validate(
        session,
        accuracy=accuracy,
        completeness=completeness,
        relevance=relevance,
        coherence=coherence,
        sources_correct=sources_correct,
        bias_flag=bias_flag,
        favoured_department=favoured_department,
        disfavoured_department=disfavoured_department,
        comment=comment,
        suggested_correction=suggested_correction,
        seconds_spent=seconds_spent,
    )
    policy = routing.routing_policy_from(target.routing_settings)
    now = now or utcnow()
    # a historical (imported) rating by the same auditor is superseded, keeping one current row
    if target.previous_rating_id is not None:
        repo.retire_rating(session, target.previous_rating_id)
    rating = Rating(
        answer_id=target.answer_id,
        auditor_id=target.auditor_id,
        assignment_id=target.assignment_id,
        **dataclasses.asdict(fields),
        rubric_version=RUBRIC_VERSION,
        origin="app",
        is_current=True,
        supersedes_id=target.previous_rating_id,
        idempotency_key=key,
        created_at=now,
    )
    session.add(rating)
    session.flush()
    repo.close_assignment(session, target.assignment_id, status="submitted", completed_at=now)
    auditlog.record(
        session,
        actor=actor,
        action="rating.submit",
        entity_type="rating",
        entity_id=rating.id,
        details={"assignment_id": target.assignment_id, "answer_id": target.answer_id},
    )
    # the entry above is inserted at commit, with any routing adds (one INSERT)
    with session.no_autoflush:
        routing.route_answer(
            session, target.answer_id, policy=policy, now=now, locked_department_id=target.asker_department_id
        )
    return SubmitResult(rating=_view(session, rating, auditor_name), created=True)


def edit_rating(
    session: Session,
    *,
    actor: User | None,
    rating_id: int,
    accuracy: int | None,
    completeness: int | None,
    relevance: int | None,
    coherence: int | None,
    sources_correct: str | None = None,
    bias_flag: bool = False,
    favoured_department: str | int | None = None,
    disfavoured_department: str | int | None = None,
    comment: str | None = None,
    suggested_correction: str | None = None,
    seconds_spent: int | None = None,
    idempotency_key: str | None = None,
    now: dt.datetime | None = None,
) -> SubmitResult:
    """Replace one's own current rating, on the (UTC) day it was given; the old row stays as history."""
    require(actor, "rate")
    key = _check_key(idempotency_key)
    repeat = _repeat_of(session, key, actor)
    if repeat is not None:
        return repeat
    wanted = checks.row_id("rating_id", rating_id)
    old = repo.rating_for_update(session, wanted) if wanted is not None else None
    if old is None:
        raise NotFoundError(f"rating {rating_id} does not exist")
    now = now or utcnow()
    _raise_unless_changeable(session, old, actor, now)
    fields = _validate(
        session,
        accuracy=accuracy,
        completeness=completeness,
        relevance=relevance,
        coherence=coherence,
        sources_correct=sources_correct,
        bias_flag=bias_flag,
        favoured_department=favoured_department,
        disfavoured_department=disfavoured_department,
        comment=comment,
        suggested_correction=suggested_correction,
        seconds_spent=seconds_spent,
    )
    old.is_current = False
    session.flush()  # the partial unique index allows one current row: clear the old one first
    new = Rating(
        answer_id=old.answer_id,
        auditor_id=old.auditor_id,
        assignment_id=old.assignment_id,
        **dataclasses.asdict(fields),
        rubric_version=RUBRIC_VERSION,
        origin="app",
        is_current=True,
        supersedes_id=old.id,
        idempotency_key=key,
        created_at=now,
    )
    session.add(new)
    session.flush()
    auditlog.record(
        session,
        actor=actor,
        action="rating.edit",
        entity_type="rating",
        entity_id=new.id,
        details={"supersedes": old.id, "answer_id": old.answer_id},
    )
    routing.route_answer(session, old.answer_id, now=now)
    owner = actor.username if actor is not None else _username(session, new.auditor_id)
    return SubmitResult(rating=_view(session, new, owner), created=True)


def skip_assignment(
    session: Session, *, actor: User | None, assignment_id: int, reason: str, now: dt.datetime | None = None
) -> None:
    """Mark an own pending assignment skipped, with a reason (e.g. "needs legal knowledge")."""
    require(actor, "rate")
    cleaned = _text("reason", reason, SKIP_REASON_MAX)
    if cleaned is None:
        raise ValidationError("reason: say why the item is skipped")
    assignment = _own_assignment(session, actor, assignment_id)
    if assignment.status == "skipped":
        return
    if assignment.status != "pending":
        raise ConflictError(f"assignment {assignment_id} is {assignment.status}; only a pending item can be skipped")
    now = now or utcnow()
    assignment.status = "skipped"
    assignment.skip_reason = cleaned
    assignment.completed_at = now
    assignment.locked_until = None
    session.flush()
    auditlog.record(
        session,
        actor=actor,
        action="assignment.skip",
        entity_type="assignment",
        entity_id=assignment.id,
        details={"answer_id": assignment.answer_id, "reason": cleaned},
    )


def _own_assignment(session: Session, actor: User | None, assignment_id: int) -> Assignment:
    """The assignment, row-locked, if it is the actor's (``actor=None``: anyone's)."""
    wanted = checks.row_id("assignment_id", assignment_id)
    assignment = repo.assignment_for_update(session, wanted) if wanted is not None else None
    if assignment is None:
        raise NotFoundError(f"assignment {assignment_id} does not exist")
    if actor is not None and assignment.auditor_id != actor.id:
        raise PermissionDenied(f"assignment {assignment_id} is not assigned to {actor.username}")
    return assignment


def _reopen(session: Session, actor: User | None, assignment: Assignment, *, via: str) -> None:
    reason = assignment.skip_reason
    assignment.status = "pending"
    assignment.skip_reason = None
    assignment.completed_at = None
    assignment.locked_until = None  # locked again when it is opened
    session.flush()
    auditlog.record(
        session,
        actor=actor,
        action="assignment.reopen",
        entity_type="assignment",
        entity_id=assignment.id,
        details={"answer_id": assignment.answer_id, "skip_reason": reason, "via": via},
    )


def reopen_skipped(session: Session, *, actor: User | None, assignment_id: int) -> None:
    """Put an own skipped item back in the queue, to be rated after all (the skip and its reason stay in
    the audit log). A pending item is left as it is; a rated or expired one cannot be reopened."""
    require(actor, "rate")
    assignment = _own_assignment(session, actor, assignment_id)
    if assignment.status == "pending":
        return
    if assignment.status != "skipped":
        raise ConflictError(f"assignment {assignment_id} is {assignment.status}; only a skipped item can be reopened")
    _reopen(session, actor, assignment, via="reopen")


def undo_last(session: Session, *, actor: User | None, assignment_id: int, now: dt.datetime | None = None) -> Undone:
    """Take back the actor's last submit or skip, which must be of ``assignment_id`` (the item the page
    says it undoes: if another item was finished since, in another tab, nothing is undone in its place).

    A skip: the item is pending again. A submit: nothing is written — the rating stays current and is
    returned for the form to show again; what the auditor then sends is an ``edit_rating``, which
    supersedes it and keeps it in the history, or nothing, and the rating stands. So a submit can be
    undone exactly while it can be edited: one's own current rating, on the UTC day it was given."""
    require(actor, "rate")
    if actor is None:
        raise ValidationError("undo takes back an auditor's own last action: name the auditor")
    assignment = _own_assignment(session, actor, assignment_id)
    if assignment.status not in ("submitted", "skipped"):
        raise ConflictError(f"assignment {assignment_id} is {assignment.status}: there is no submit or skip to undo")
    last = repo.last_finished_assignment_id(session, actor.id)
    if last != assignment.id:
        raise ConflictError(
            f"assignment {assignment_id} is not the last item you rated or skipped (assignment {last} is): "
            "only the last can be undone; open earlier items with Previous item"
        )
    if assignment.status == "skipped":
        _reopen(session, actor, assignment, via="undo")
        return Undone(assignment_id=assignment.id, action="skip", rating=None)
    rating = repo.current_rating(session, answer_id=assignment.answer_id, auditor_id=actor.id)
    if rating is None or rating.assignment_id != assignment.id:
        raise ConflictError(f"assignment {assignment_id} has no current rating of yours to undo")
    _raise_unless_changeable(session, rating, actor, now or utcnow())
    return Undone(assignment_id=assignment.id, action="submit", rating=_view(session, rating, actor.username))


# ---------------------------------------------------------------- reading (blind for auditors)


def _auditor_scope(actor: User | None, auditor_id: int | None) -> int | None:
    """Which auditor's ratings the actor may read: anyone's with view_ratings_all, else only their own."""
    if can(actor, "view_ratings_all"):
        return auditor_id
    require(actor, "rate")
    assert actor is not None  # can() allows everything for None, so we only get here with a user
    if auditor_id is not None and auditor_id != actor.id:
        raise PermissionDenied(f"{actor.username} may not read other auditors' ratings (rating is blind)")
    return actor.id


def ratings_for_answer(
    session: Session, *, actor: User | None, answer_id: int, auditor_id: int | None = None
) -> list[RatingView]:
    """Current ratings of an answer. Auditors get only their own; SMEs, leads and admins get all."""
    scope = _auditor_scope(actor, auditor_id)
    rows = repo.ratings_with_auditor(session, answer_id=answer_id, auditor_id=scope, current_only=True)
    return _views(session, [(r, u) for r, u in rows])


def rating_history(
    session: Session, *, actor: User | None, answer_id: int, auditor_id: int | None = None
) -> list[RatingView]:
    """Every rating row of an answer (superseded ones included), oldest first; blind like ratings_for_answer."""
    scope = _auditor_scope(actor, auditor_id)
    rows = repo.ratings_with_auditor(session, answer_id=answer_id, auditor_id=scope, current_only=False)
    return _views(session, [(r, u) for r, u in rows])


def my_ratings(session: Session, *, actor: User, day: dt.date) -> list[RatingView]:
    """The actor's current ratings given on a UTC day, oldest first, each with its answer's question."""
    require(actor, "rate")
    if actor is None:
        raise ValidationError("my_ratings needs an auditor")
    start = dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC)
    rows = repo.ratings_with_auditor(
        session,
        auditor_id=actor.id,
        current_only=True,
        created_from=start,
        created_before=start + dt.timedelta(days=1),
    )
    views = _views(session, [(r, u) for r, u in rows])
    questions = repo.answer_questions(session, {v.answer_id for v in views})
    return [dataclasses.replace(v, question=questions.get(v.answer_id)) for v in views]
