"""The daily sample, its assignment to auditors, and handing items out one at a time.

Public functions (callers commit):

- ``draw_sample(session, *, actor, sample_date, size=None, assign=True, now=None) -> SampleSummary``
  Idempotent per date: a second call returns the batch already drawn (``created=False``). With no
  answers in the window it raises NotFoundError and stores nothing, so the date can be drawn later.
- ``assign_batch(session, *, actor, batch_id, now=None) -> AssignmentSummary``
  Fills every item of a batch up to its ``overlap_k`` live assignments (e.g. after adding auditors).
- ``release_expired(session, now=None, *, actor=None) -> ReleaseSummary``
  Pending assignments whose lock ran out become ``expired`` and go to another auditor.
- ``return_to_pool(session, *, actor, auditor_id, now=None) -> ReleaseSummary``
  A deactivated auditor's pending assignments likewise.
- ``next_item(session, *, actor, now=None) -> NextItem | None`` — the auditor's next item, locked.
- ``item(session, *, actor, assignment_id, now=None) -> NextItem`` — one of the auditor's own items,
  pending (then locked) or done, e.g. to look at it again.
- ``previous_item(session, *, actor, before_assignment_id=None, now=None) -> NextItem | None`` — the
  item the auditor finished (rated or skipped) before that one, or their last, on the same UTC day.
- ``skipped_items(session, *, actor) -> list[SkippedItem]`` — the auditor's skipped items, to reopen.
- ``queue_state(session, *, actor, today=None) -> QueueState`` — why the queue is empty.
- ``auditor_progress(session, *, actor, batch_id) -> Progress``
- ``batch_summary(session, *, actor, sample_date) -> SampleSummary | None``

How a sample is drawn (``plan_sample``, pure):

1. Population: answers created in ``[D - window_days, D)`` (UTC midnights), never sampled before,
   not gold answers. Only (id, asker department, confidence) are read.
2. ``n_gold = min(round(gold_share * sample_size), gold items available)``, least-used gold first;
   ``n_prod = sample_size - n_gold``.
3. Departments get ``n_prod`` proportionally to their answer counts, each at least
   ``min(per_department_min, its count)`` (if the minimums alone exceed ``n_prod`` they win and the
   sample is larger than asked). Rounding by largest remainder.
4. Within a department, answers with confidence below the threshold (``low_confidence_threshold``,
   or the ``low_confidence_quantile`` of the population's confidences) form the "low" cell, the
   rest (NULL confidence included) the "normal" cell. ``round(low_confidence_share * n_prod)``
   low-confidence items are spread over departments in proportion to their allocation.
5. Each cell h (department × band) is a simple random sample without replacement of n_h of its
   N_h answers, so an item's inclusion probability is n_h / N_h and its **inclusion weight is
   N_h / n_h**. A production-weighted mean of a score y is ``sum(w_i * y_i) / sum(w_i)`` over the
   non-gold items (Horvitz–Thompson / Hájek); ``sum(w_i)`` over non-gold items equals the
   population size. Gold items have weight 1 and stratum ``"gold"``: leave them out of
   production estimates.
6. ``round(overlap_share * production items)`` production items get ``overlap_k`` auditors.
7. The random generator is seeded from the date (``YYYYMMDD``): the same population and policy give
   the same sample. Items are shuffled so gold and low-confidence items are not recognisable by order.

Assignment: each missing slot goes to the least-loaded eligible active auditor (load = pending
assignments), never one who had the answer before (DB-unique on answer × auditor), optionally
never an auditor of the asker's own department. An assignment's ``position`` is its sample item
id, so older batches come first and the hot path stays one index range scan.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from numpy.random import Generator, default_rng
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from audit.auditlog import service as auditlog
from audit.base import utcnow
from audit.errors import ConflictError, NotFoundError, PermissionDenied, ValidationError
from audit.org.models import User
from audit.permissions import require
from audit.sampling import repository as repo
from audit.sampling.models import Assignment, SampleBatch, SampleItem
from audit.sampling.policy import MAX_SAMPLE_SIZE, SamplingPolicy, load_sampling_policy, sampling_policy_from
from audit.sampling.repository import SourceView

STRATEGY = "stratified-department-confidence/v1"
GOLD_STRATUM = "gold"
LOW, NORMAL = "low", "normal"

K = TypeVar("K", bound=Hashable)

__all__ = [
    "AssignmentSummary",
    "NextItem",
    "PlannedItem",
    "Progress",
    "QueueState",
    "ReleaseSummary",
    "SampleSummary",
    "SkippedItem",
    "SourceView",
    "apportion",
    "assign_batch",
    "auditor_progress",
    "batch_summary",
    "draw_sample",
    "item",
    "next_item",
    "plan_sample",
    "previous_item",
    "queue_state",
    "release_expired",
    "return_to_pool",
    "skipped_items",
]


# ====================================================================== result types


@dataclass(frozen=True)
class SampleSummary:
    batch_id: int
    sample_date: dt.date
    created: bool  # False when the batch for this date already existed
    window_start: dt.datetime
    window_end: dt.datetime
    population: int  # answers eligible in the window
    items: int
    gold_items: int
    low_confidence_items: int
    overlap_items: int
    items_by_stratum: dict[str, int]
    weight_by_stratum: dict[str, float]
    low_confidence_threshold: float | None
    assignments_by_auditor: dict[str, int]
    unfilled_slots: int  # auditor slots no eligible auditor could take


@dataclass(frozen=True)
class AssignmentSummary:
    batch_id: int
    created: int
    unfilled_slots: int
    assignments_by_auditor: dict[str, int]


@dataclass(frozen=True)
class ReleaseSummary:
    expired_assignment_ids: tuple[int, ...]
    reassigned: int
    unfilled: int  # expired items no other auditor could take


@dataclass(frozen=True)
class Progress:
    done: int  # submitted or skipped
    total: int  # the auditor's live assignments in the batch

    @property
    def remaining(self) -> int:
        return self.total - self.done


@dataclass(frozen=True)
class NextItem:
    """Everything the rating page shows for one item. Gold status is deliberately absent (blind)."""

    assignment_id: int
    answer_id: int
    batch_id: int
    sample_date: dt.date
    question: str
    answer_text: str
    department: str  # the asker's department
    sources: tuple[SourceView, ...]
    answered_at: dt.datetime
    locked_until: dt.datetime | None  # None for an item already done (it is not locked again)
    progress: Progress
    status: str = "pending"  # or "submitted" / "skipped": an item the auditor finished, shown again
    skip_reason: str | None = None
    completed_at: dt.datetime | None = None

    @property
    def number(self) -> int:
        """1-based number of this item in the auditor's batch ("item n of m"), while it is pending."""
        return self.progress.done + 1


@dataclass(frozen=True)
class SkippedItem:
    """One of the auditor's skipped items, as the rating page lists them for reopening."""

    assignment_id: int
    answer_id: int
    sample_date: dt.date
    question: str
    reason: str
    skipped_at: dt.datetime | None


@dataclass(frozen=True)
class PlannedItem:
    answer_id: int
    department_id: int
    stratum: str
    inclusion_weight: float
    is_gold: bool = False
    gold_item_id: int | None = None
    low_confidence: bool = False
    overlap_k: int = 1


@dataclass(frozen=True)
class SamplePlan:
    items: tuple[PlannedItem, ...]
    population: int
    low_confidence_threshold: float | None
    cells: dict[str, dict[str, float]]  # stratum -> population, sampled, weight


# ====================================================================== pure allocation


def round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def apportion(
    total: int, weights: Mapping[K, float], *, lower: Mapping[K, int], upper: Mapping[K, int]
) -> dict[K, int]:
    """Integers n_k with lower_k <= n_k <= upper_k summing to ``total``, proportional to ``weights``
    as far as the bounds allow.

    Keys whose proportional quota falls below their lower bound (or above their upper bound) are
    fixed at that bound and the rest is re-shared among the others, until no quota violates a bound;
    the free quotas are then rounded by largest remainder (Hamilton's method). ``total`` is clipped
    to [sum(lower), sum(upper)].
    """
    keys = list(weights)
    if not keys:
        return {}
    total = max(sum(lower.values()), min(total, sum(upper.values())))
    fixed: dict[K, int] = {}
    quotas: dict[K, float] = {}
    while True:
        free = [k for k in keys if k not in fixed]
        if not free:
            break
        remaining = total - sum(fixed.values())
        weight_sum = sum(weights[k] for k in free)
        quotas = {k: remaining * weights[k] / weight_sum if weight_sum > 0 else remaining / len(free) for k in free}
        too_low = [k for k in free if quotas[k] < lower[k] - 1e-9]
        too_high = [k for k in free if quotas[k] > upper[k] + 1e-9]
        if not too_low and not too_high:
            break
        for k in too_low or too_high:
            fixed[k] = lower[k] if too_low else upper[k]
            quotas.pop(k)
    result = dict(fixed)
    for k, q in quotas.items():
        result[k] = min(upper[k], max(lower[k], math.floor(q + 1e-9)))
    # hand out what rounding left, largest fractional part first; then repair any bound clash
    leftover = total - sum(result.values())
    by_fraction = sorted(quotas, key=lambda k: (-(quotas[k] - math.floor(quotas[k] + 1e-9)), -quotas[k], keys.index(k)))
    order = by_fraction + [k for k in keys if k not in quotas]
    while leftover != 0:
        step = 1 if leftover > 0 else -1
        changed = False
        for k in order if step > 0 else reversed(order):
            if leftover == 0:
                break
            if (step > 0 and result[k] < upper[k]) or (step < 0 and result[k] > lower[k]):
                result[k] += step
                leftover -= step
                changed = True
        if not changed:
            break
    return {k: result[k] for k in keys}


def linear_quantile(values: np.ndarray, q: float) -> float:
    """The q-quantile with linear interpolation between order statistics (numpy's default "linear"
    method, Hyndman & Fan type 7): with x sorted and h = (n - 1) q, x[floor h] + (h - floor h)(x[floor h + 1] - x[floor h]).
    Written out because ``np.quantile`` drags in ``numpy.ma`` on first use, a measurable share of a 1 s budget."""
    ordered = np.sort(values)
    h = (ordered.size - 1) * q
    low = math.floor(h)
    high = min(low + 1, ordered.size - 1)
    return float(ordered[low] + (h - low) * (ordered[high] - ordered[low]))


def _stratum_name(department: str, band: str) -> str:
    suffix = f"/{band}"
    return department[: 100 - len(suffix)] + suffix


def plan_sample(
    *,
    answer_ids: Sequence[int] | np.ndarray,
    department_ids: Sequence[int] | np.ndarray,
    confidences: Sequence[float | None] | np.ndarray,
    gold: Sequence[tuple[int, int, int]],
    department_names: Mapping[int, str],
    policy: SamplingPolicy,
    seed: int,
) -> SamplePlan:
    """Choose the day's items from the population (see the module docstring for the rules).

    ``gold`` is (gold item id, answer id, department id), in order of preference.
    """
    rng = default_rng(seed)
    ids = np.asarray(answer_ids, dtype=np.int64)
    departments = np.asarray(department_ids, dtype=np.int64)
    conf = np.asarray(confidences, dtype=np.float64)  # None becomes NaN
    population = len(ids)

    # low-confidence threshold: fixed, or a quantile of the population's known confidences
    known = conf[~np.isnan(conf)]
    if policy.low_confidence_threshold is not None:
        threshold: float | None = float(policy.low_confidence_threshold)
    elif known.size:
        threshold = linear_quantile(known, policy.low_confidence_quantile)
    else:
        threshold = None
    is_low = np.zeros(population, dtype=bool) if threshold is None else np.nan_to_num(conf, nan=np.inf) < threshold

    n_gold = min(round_half_up(policy.gold_share * policy.sample_size), len(gold))
    n_prod = policy.sample_size - n_gold

    # departments: proportional with a minimum
    dept_keys = [int(d) for d in np.unique(departments)]
    sizes = {d: int(np.count_nonzero(departments == d)) for d in dept_keys}
    minimums = {d: min(policy.per_department_min, sizes[d]) for d in dept_keys}
    if sum(minimums.values()) >= n_prod:
        per_department = minimums
    else:
        per_department = apportion(n_prod, {d: float(sizes[d]) for d in dept_keys}, lower=minimums, upper=sizes)

    # low/normal split of each department's allocation
    low_sizes = {d: int(np.count_nonzero((departments == d) & is_low)) for d in dept_keys}
    low_lower = {d: max(0, per_department[d] - (sizes[d] - low_sizes[d])) for d in dept_keys}
    low_upper = {d: min(per_department[d], low_sizes[d]) for d in dept_keys}
    low_target = round_half_up(policy.low_confidence_share * sum(per_department.values()))
    low_per_department = apportion(
        low_target, {d: float(per_department[d]) for d in dept_keys}, lower=low_lower, upper=low_upper
    )

    planned: list[PlannedItem] = []
    cells: dict[str, dict[str, float]] = {}
    for d in dept_keys:
        name = department_names.get(d, f"department {d}")
        for band, n_cell in ((LOW, low_per_department[d]), (NORMAL, per_department[d] - low_per_department[d])):
            mask = (departments == d) & (is_low if band == LOW else ~is_low)
            cell_ids = ids[mask]
            stratum = _stratum_name(name, band)
            if n_cell <= 0 or cell_ids.size == 0:
                if cell_ids.size:
                    cells[stratum] = {"population": int(cell_ids.size), "sampled": 0, "weight": 0.0}
                continue
            weight = cell_ids.size / n_cell
            cells[stratum] = {"population": int(cell_ids.size), "sampled": int(n_cell), "weight": weight}
            for answer_id in rng.choice(cell_ids, size=n_cell, replace=False):
                planned.append(
                    PlannedItem(
                        answer_id=int(answer_id),
                        department_id=d,
                        stratum=stratum,
                        inclusion_weight=weight,
                        low_confidence=band == LOW,
                    )
                )

    # overlap on production items
    n_overlap = round_half_up(policy.overlap_share * len(planned))
    for index in rng.choice(len(planned), size=min(n_overlap, len(planned)), replace=False):
        planned[int(index)] = dataclasses.replace(planned[int(index)], overlap_k=policy.overlap_k)

    for gold_item_id, answer_id, department_id in gold[:n_gold]:
        planned.append(
            PlannedItem(
                answer_id=answer_id,
                department_id=department_id,
                stratum=GOLD_STRATUM,
                inclusion_weight=1.0,
                is_gold=True,
                gold_item_id=gold_item_id,
            )
        )
    order = rng.permutation(len(planned))
    return SamplePlan(
        items=tuple(planned[int(i)] for i in order),
        population=population,
        low_confidence_threshold=threshold,
        cells=cells,
    )


# ====================================================================== drawing


def _window(sample_date: dt.date, days: int) -> tuple[dt.datetime, dt.datetime]:
    end = dt.datetime.combine(sample_date, dt.time(0), tzinfo=dt.UTC)
    return end - dt.timedelta(days=days), end


def _seed(sample_date: dt.date) -> int:
    return int(sample_date.strftime("%Y%m%d"))


def _ordered_gold(session: Session, rng: Generator) -> list[tuple[int, int, int]]:
    """Gold candidates, least sampled first, ties in a date-seeded random order."""
    rows = list(repo.gold_candidates(session))
    shuffled = [rows[int(i)] for i in rng.permutation(len(rows))]
    shuffled.sort(key=lambda r: int(r[3]))
    return [(int(r[0]), int(r[1]), int(r[2])) for r in shuffled]


def draw_sample(
    session: Session,
    *,
    actor: User | None,
    sample_date: dt.date,
    size: int | None = None,
    assign: bool = True,
    now: dt.datetime | None = None,
) -> SampleSummary:
    """Draw (and by default assign) the sample for ``sample_date``; return the existing one if drawn."""
    require(actor, "run_sampling")
    existing = repo.batch_for_date(session, sample_date)
    if existing is not None:
        return _summary(session, existing, created=False)
    policy = load_sampling_policy(session)
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_SAMPLE_SIZE:
            raise ValidationError(f"size: {size!r} is not a whole number between 1 and {MAX_SAMPLE_SIZE}")
        policy = dataclasses.replace(policy, sample_size=size)
    now = now or utcnow()
    start, end = _window(sample_date, policy.window_days)

    frame = repo.sampling_frame(session, start=start, end=end)
    gold = _ordered_gold(session, default_rng(_seed(sample_date) + 1))
    plan = plan_sample(
        answer_ids=frame.answer_ids,
        department_ids=frame.department_ids,
        confidences=frame.confidences,
        gold=gold,
        department_names=repo.department_names(session),
        policy=policy,
        seed=_seed(sample_date),
    )

    if plan.population == 0:
        # drawing an empty batch would lock the date: answers ingested later could never be sampled
        raise NotFoundError(
            f"no answers to sample between {start:%Y-%m-%d %H:%M} and {end:%Y-%m-%d %H:%M} UTC "
            "(not ingested yet, or all sampled already)"
        )
    batch = SampleBatch(
        sample_date=sample_date,
        strategy=STRATEGY,
        parameters={
            "policy": dataclasses.asdict(policy),
            "seed": _seed(sample_date),
            "low_confidence_threshold": plan.low_confidence_threshold,
            "cells": plan.cells,
        },
        window_start=start,
        window_end=end,
        population=plan.population,
        created_by_id=actor.id if actor is not None else None,
        created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(batch)
            session.flush()
    except IntegrityError:
        # someone drew this date at the same moment: theirs stands
        existing = repo.batch_for_date(session, sample_date)
        if existing is None:
            raise
        return _summary(session, existing, created=False)

    # Core executemany, not one ORM INSERT per row: a day's sample is hundreds of rows
    session.execute(
        insert(SampleItem),
        [
            {
                "batch_id": batch.id,
                "answer_id": item.answer_id,
                "stratum": item.stratum,
                "inclusion_weight": item.inclusion_weight,
                "is_gold": item.is_gold,
                "gold_item_id": item.gold_item_id,
                "low_confidence": item.low_confidence,
                "overlap_k": item.overlap_k,
                "created_at": now,
            }
            for item in plan.items
        ],
    )
    item_range = repo.batch_item_range(session, batch.id)
    if item_range is not None:
        # assignment positions are item ids: this range bounds the progress count on the hot path
        batch.parameters = {**batch.parameters, "item_id_range": list(item_range)}
        session.flush()
    auditlog.record(
        session,
        actor=actor,
        action="sample.draw",
        entity_type="sample_batch",
        entity_id=batch.id,
        details={
            "sample_date": sample_date.isoformat(),
            "population": plan.population,
            "items": len(plan.items),
            "gold": sum(i.is_gold for i in plan.items),
        },
    )
    if assign:
        assign_batch(session, actor=actor, batch_id=batch.id, now=now)
    return _summary(session, batch, created=True)


def batch_summary(session: Session, *, actor: User | None, sample_date: dt.date) -> SampleSummary | None:
    """The batch drawn for a date, or None."""
    require(actor, "run_sampling")
    batch = repo.batch_for_date(session, sample_date)
    return None if batch is None else _summary(session, batch, created=False)


def _summary(session: Session, batch: SampleBatch, *, created: bool) -> SampleSummary:
    items = repo.batch_items(session, batch.id)
    live = repo.live_assignment_counts(session, batch.id)
    by_stratum: dict[str, int] = {}
    weights: dict[str, float] = {}
    for item in items:
        by_stratum[item.stratum] = by_stratum.get(item.stratum, 0) + 1
        weights[item.stratum] = item.inclusion_weight
    threshold = batch.parameters.get("low_confidence_threshold")
    return SampleSummary(
        batch_id=batch.id,
        sample_date=batch.sample_date,
        created=created,
        window_start=batch.window_start,
        window_end=batch.window_end,
        population=batch.population,
        items=len(items),
        gold_items=sum(1 for i in items if i.is_gold),
        low_confidence_items=sum(1 for i in items if i.low_confidence),
        overlap_items=sum(1 for i in items if i.overlap_k > 1),
        items_by_stratum=dict(sorted(by_stratum.items())),
        weight_by_stratum=dict(sorted(weights.items())),
        low_confidence_threshold=float(threshold) if threshold is not None else None,
        assignments_by_auditor=dict(sorted(repo.assignments_per_auditor(session, batch.id).items())),
        unfilled_slots=sum(max(0, i.overlap_k - live.get(i.id, 0)) for i in items),
    )


# ====================================================================== assignment


class _Pool:
    """Active auditors with their loads; picks the least-loaded eligible one for an answer."""

    def __init__(self, session: Session, *, exclude_own_department: bool, seed: int) -> None:
        self.auditors = list(repo.active_auditors(session))
        self.load = repo.pending_load(session, [a[0] for a in self.auditors])
        self.exclude_own_department = exclude_own_department
        tiebreak = default_rng(seed).permutation(len(self.auditors))
        self.tiebreak = {a[0]: int(rank) for a, rank in zip(self.auditors, tiebreak, strict=True)}
        self.usernames = {a[0]: a[1] for a in self.auditors}

    def pick(self, *, seen: set[int], department_id: int | None) -> int | None:
        best: int | None = None
        best_key: tuple[int, int] | None = None
        for auditor_id, _username, home_department_id in self.auditors:
            if auditor_id in seen:
                continue
            if self.exclude_own_department and home_department_id is not None and home_department_id == department_id:
                continue
            key = (self.load.get(auditor_id, 0), self.tiebreak[auditor_id])
            if best_key is None or key < best_key:
                best, best_key = auditor_id, key
        if best is not None:
            self.load[best] = self.load.get(best, 0) + 1
            seen.add(best)
        return best


def _assignment_row(
    sample_item_id: int, answer_id: int, auditor_id: int, *, position: int, now: dt.datetime
) -> dict[str, object]:
    return {
        "sample_item_id": sample_item_id,
        "answer_id": answer_id,
        "auditor_id": auditor_id,
        "status": "pending",
        "position": position,
        "assigned_at": now,
    }


def assign_batch(
    session: Session, *, actor: User | None, batch_id: int, now: dt.datetime | None = None
) -> AssignmentSummary:
    """Give every item of the batch up to ``overlap_k`` live assignments, least-loaded auditor first."""
    require(actor, "run_sampling")
    batch = session.get(SampleBatch, batch_id)
    if batch is None:
        raise NotFoundError(f"sample batch {batch_id} does not exist")
    now = now or utcnow()
    policy = load_sampling_policy(session)
    items = repo.batch_items(session, batch_id)
    live = repo.live_assignment_counts(session, batch_id)
    missing = [(item, item.overlap_k - live.get(item.id, 0)) for item in items if item.overlap_k > live.get(item.id, 0)]
    answer_ids = [item.answer_id for item, _ in missing]
    seen = repo.auditors_by_answer(session, answer_ids)
    departments = repo.answer_departments(session, answer_ids) if policy.exclude_own_department else {}
    pool = _Pool(session, exclude_own_department=policy.exclude_own_department, seed=_seed(batch.sample_date))
    rows: list[dict[str, object]] = []
    unfilled = 0
    for item, slots in missing:
        for _ in range(slots):
            auditor_id = pool.pick(
                seen=seen.setdefault(item.answer_id, set()), department_id=departments.get(item.answer_id)
            )
            if auditor_id is None:
                unfilled += 1
                continue
            rows.append(_assignment_row(item.id, item.answer_id, auditor_id, position=item.id, now=now))
    if rows:
        session.execute(insert(Assignment), rows)
    created = len(rows)
    if created or unfilled:
        auditlog.record(
            session,
            actor=actor,
            action="sample.assign",
            entity_type="sample_batch",
            entity_id=batch_id,
            details={"created": created, "unfilled_slots": unfilled},
        )
    return AssignmentSummary(
        batch_id=batch_id,
        created=created,
        unfilled_slots=unfilled,
        assignments_by_auditor=dict(sorted(repo.assignments_per_auditor(session, batch_id).items())),
    )


def release_expired(session: Session, now: dt.datetime | None = None, *, actor: User | None = None) -> ReleaseSummary:
    """Expire pending assignments opened and left longer than the lock; hand each to another auditor.

    The original auditor keeps the expired row (history) and can never get that answer again.
    """
    require(actor, "run_sampling")
    now = now or utcnow()
    stale = list(repo.expired_locks(session, now))
    if not stale:
        return ReleaseSummary(expired_assignment_ids=(), reassigned=0, unfilled=0)
    summary = _hand_over(session, stale, now=now)
    auditlog.record(
        session,
        actor=actor,
        action="assignment.release_expired",
        entity_type="assignment",
        details={
            "expired": list(summary.expired_assignment_ids),
            "reassigned": summary.reassigned,
            "unfilled": summary.unfilled,
        },
    )
    return summary


def return_to_pool(
    session: Session, *, actor: User | None, auditor_id: int, now: dt.datetime | None = None
) -> ReleaseSummary:
    """Hand a (deactivated) auditor's pending items to the other active auditors, as expired locks
    are: the auditor keeps the expired rows (history)."""
    require(actor, "run_sampling")
    pending = list(repo.pending_assignments(session, auditor_id))
    if not pending:
        return ReleaseSummary(expired_assignment_ids=(), reassigned=0, unfilled=0)
    summary = _hand_over(session, pending, now=now or utcnow())
    auditlog.record(
        session,
        actor=actor,
        action="assignment.return_to_pool",
        entity_type="user",
        entity_id=auditor_id,
        details={
            "expired": list(summary.expired_assignment_ids),
            "reassigned": summary.reassigned,
            "unfilled": summary.unfilled,
        },
    )
    return summary


def _hand_over(session: Session, stale: Sequence[Assignment], *, now: dt.datetime) -> ReleaseSummary:
    """Expire these pending assignments and give each answer to the least-loaded active auditor who has
    not had it (none: unfilled)."""
    policy = load_sampling_policy(session)
    answer_ids = [a.answer_id for a in stale]
    seen = repo.auditors_by_answer(session, answer_ids)
    departments = repo.answer_departments(session, answer_ids) if policy.exclude_own_department else {}
    pool = _Pool(session, exclude_own_department=policy.exclude_own_department, seed=_seed(now.date()))
    rows: list[dict[str, object]] = []
    unfilled = 0
    for old in stale:
        old.status = "expired"
        pool.load[old.auditor_id] = max(0, pool.load.get(old.auditor_id, 0) - 1)
        auditor_id = pool.pick(seen=seen.setdefault(old.answer_id, set()), department_id=departments.get(old.answer_id))
        if auditor_id is None:
            unfilled += 1
            continue
        rows.append(_assignment_row(old.sample_item_id, old.answer_id, auditor_id, position=old.position, now=now))
    session.flush()
    if rows:
        session.execute(insert(Assignment), rows)
    return ReleaseSummary(expired_assignment_ids=tuple(a.id for a in stale), reassigned=len(rows), unfilled=unfilled)


# ====================================================================== the auditor's queue


def _require_auditor(actor: User | None) -> User:
    require(actor, "rate")
    if actor is None:
        raise ValidationError("an auditor is needed: assignments belong to a person")
    return actor


def _progress(
    session: Session, *, auditor_id: int, batch_id: int, item_range: tuple[int, int] | None = None
) -> Progress:
    item_range = item_range or repo.batch_item_range(session, batch_id)
    if item_range is None:
        return Progress(done=0, total=0)
    counts = repo.progress_counts(session, auditor_id=auditor_id, batch_id=batch_id, item_range=item_range)
    done = counts.get("submitted", 0) + counts.get("skipped", 0)
    return Progress(done=done, total=done + counts.get("pending", 0))


@dataclass(frozen=True)
class QueueState:
    """Why an auditor's queue is empty: no sample drawn for today, nothing of it assigned to them, or
    all of their share done — of today's sample, or of the last sample they had items in."""

    today: dt.date
    sample_drawn: bool
    assigned: int  # the auditor's live assignments in today's sample
    done: int
    # the latest sample (by date) holding live assignments of the auditor's, and how many: the share
    # they finished when today's sample has none of theirs (None: they never had an item)
    last_sample_date: dt.date | None = None
    last_sample_assigned: int = 0


def queue_state(session: Session, *, actor: User, today: dt.date | None = None) -> QueueState:
    """Today's sample (UTC date, as ``auditloop sample`` draws it) as the auditor sees it, and the
    latest sample they had items in."""
    auditor = _require_auditor(actor)
    today = today or utcnow().date()
    batch = repo.batch_for_date(session, today)
    progress = _progress(session, auditor_id=auditor.id, batch_id=batch.id) if batch is not None else None
    last = repo.latest_batch_of(session, auditor.id)
    last_progress = None
    if last is not None:
        same = batch is not None and last.id == batch.id
        last_progress = progress if same else _progress(session, auditor_id=auditor.id, batch_id=last.id)
    return QueueState(
        today=today,
        sample_drawn=batch is not None,
        assigned=progress.total if progress else 0,
        done=progress.done if progress else 0,
        last_sample_date=last.sample_date if last is not None else None,
        last_sample_assigned=last_progress.total if last_progress else 0,
    )


def auditor_progress(session: Session, *, actor: User, batch_id: int) -> Progress:
    """How many of the auditor's items in a batch are done."""
    auditor = _require_auditor(actor)
    return _progress(session, auditor_id=auditor.id, batch_id=batch_id)


def next_item(session: Session, *, actor: User, now: dt.datetime | None = None) -> NextItem | None:
    """The auditor's next pending item (oldest batch first), locked for ``lock_minutes``; None when done.

    Asking again before finishing returns the same item and renews the lock. Three statements: the
    item with its answer, policy and progress; the lock; the answer's sources (when it cites any).
    On PostgreSQL the transaction commits without waiting for the WAL flush (the lock is a lease:
    see ``repository.lock_assignment``), so call it in a unit of work of its own.
    """
    auditor = _require_auditor(actor)
    found = repo.next_for_rating(session, auditor.id)
    if found is None:
        return None
    now = now or utcnow()
    policy = sampling_policy_from(found.policy_settings)
    locked_until = now + dt.timedelta(minutes=policy.lock_minutes)
    repo.lock_assignment(session, found.assignment_id, locked_until)
    if found.done is not None and found.total is not None:
        progress = Progress(done=found.done, total=found.total)
    else:  # a batch drawn before item id ranges were recorded
        progress = _progress(session, auditor_id=auditor.id, batch_id=found.batch_id)
    return _next_item(session, found, locked_until=locked_until, progress=progress)


def _next_item(
    session: Session,
    found: repo.PendingItem,
    *,
    locked_until: dt.datetime | None,
    progress: Progress,
    status: str = "pending",
    skip_reason: str | None = None,
    completed_at: dt.datetime | None = None,
) -> NextItem:
    return NextItem(
        assignment_id=found.assignment_id,
        answer_id=found.answer_id,
        batch_id=found.batch_id,
        sample_date=found.sample_date,
        question=found.question,
        answer_text=found.answer_text,
        department=found.department,
        sources=repo.source_views(session, found.sources) if found.sources else (),
        answered_at=found.answered_at,
        locked_until=locked_until,
        progress=progress,
        status=status,
        skip_reason=skip_reason,
        completed_at=completed_at,
    )


def item(session: Session, *, actor: User, assignment_id: int, now: dt.datetime | None = None) -> NextItem:
    """One of the auditor's own items by assignment id: a pending one is locked as ``next_item`` locks
    it; a done one (rated or skipped) is shown as it is. Another auditor's is refused (blind rating),
    and an expired one is gone to someone else."""
    auditor = _require_auditor(actor)
    found = repo.assigned_item(session, assignment_id) if isinstance(assignment_id, int) else None
    if found is None:
        raise NotFoundError(f"assignment {assignment_id} does not exist")
    if found.auditor_id != auditor.id:
        raise PermissionDenied(f"assignment {assignment_id} is not assigned to {auditor.username}")
    if found.status == "expired":
        raise ConflictError(
            f"assignment {assignment_id} expired (not finished within the lock time) and was handed to another auditor"
        )
    pending = found.item
    if pending.done is not None and pending.total is not None:
        progress = Progress(done=pending.done, total=pending.total)
    else:  # a batch drawn before item id ranges were recorded
        progress = _progress(session, auditor_id=auditor.id, batch_id=pending.batch_id)
    locked_until = None
    if found.status == "pending":
        now = now or utcnow()
        locked_until = now + dt.timedelta(minutes=sampling_policy_from(pending.policy_settings).lock_minutes)
        repo.lock_assignment(session, assignment_id, locked_until)
    return _next_item(
        session,
        pending,
        locked_until=locked_until,
        progress=progress,
        status=found.status,
        skip_reason=found.skip_reason,
        completed_at=found.completed_at,
    )


def previous_item(
    session: Session, *, actor: User, before_assignment_id: int | None = None, now: dt.datetime | None = None
) -> NextItem | None:
    """The item the auditor finished (rated or skipped) just before ``before_assignment_id`` — or the
    last one they finished, without it, or when that item is not finished — on the current UTC day;
    None when there is none. "Previous item" on the rating page: a rating can be changed on the day
    it was given (``audit.ratings.service.edit_rating``), so the walk back stops at midnight."""
    auditor = _require_auditor(actor)
    now = now or utcnow()
    since = dt.datetime.combine(now.astimezone(dt.UTC).date(), dt.time(0), tzinfo=dt.UTC)
    before = None
    if before_assignment_id is not None:
        current = item(session, actor=auditor, assignment_id=before_assignment_id, now=now)
        if current.completed_at is not None and current.status != "pending":
            before = (current.completed_at, current.assignment_id)
    found = repo.previous_done(session, auditor_id=auditor.id, since=since, before=before)
    return None if found is None else item(session, actor=auditor, assignment_id=found, now=now)


SKIPPED_LISTED = 200  # the skipped items the rating page lists at most (the latest first)


def skipped_items(session: Session, *, actor: User) -> list[SkippedItem]:
    """The auditor's own skipped items, the latest skipped first (at most ``SKIPPED_LISTED``)."""
    auditor = _require_auditor(actor)
    return [
        SkippedItem(
            assignment_id=row.assignment_id,
            answer_id=row.answer_id,
            sample_date=row.sample_date,
            question=row.question,
            reason=row.reason,
            skipped_at=row.skipped_at,
        )
        for row in repo.skipped_assignments(session, auditor.id, limit=SKIPPED_LISTED)
    ]
