"""Daily sampling: allocation rules, inclusion weights, gold and low-confidence shares, idempotency, speed."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from audit.answers.models import Answer
from audit.auditlog.models import AuditLogEntry
from audit.db import make_engine
from audit.errors import NotFoundError, ValidationError
from audit.policy import service as policy_service
from audit.sampling import service as sampling
from audit.sampling.models import SampleBatch, SampleItem
from audit.sampling.policy import SamplingPolicy, load_sampling_policy
from tests import factories as f

DAY = dt.date(2026, 11, 28)
YESTERDAY_NOON = dt.datetime(2026, 11, 27, 12, tzinfo=dt.UTC)


# ---------------------------------------------------------------- pure allocation


def test_apportion_is_proportional_when_no_bound_binds() -> None:
    assert sampling.apportion(
        10, {"a": 50, "b": 30, "c": 20}, lower=dict.fromkeys("abc", 0), upper=dict.fromkeys("abc", 99)
    ) == {
        "a": 5,
        "b": 3,
        "c": 2,
    }


def test_apportion_lifts_small_strata_to_their_minimum_and_reshares_the_rest() -> None:
    # quotas 18 / 1.6 / 0.4: B and C are lifted to 5, A gets the remaining 10
    sizes = {"A": 900, "B": 80, "C": 20}
    assert sampling.apportion(20, sizes, lower=dict.fromkeys(sizes, 5), upper=sizes) == {"A": 10, "B": 5, "C": 5}


def test_apportion_rounds_by_largest_remainder() -> None:
    # 10 over three equal weights: 3.33 each, the one left goes to the first key
    result = sampling.apportion(
        10, {"a": 1, "b": 1, "c": 1}, lower=dict.fromkeys("abc", 0), upper=dict.fromkeys("abc", 10)
    )
    assert result == {"a": 4, "b": 3, "c": 3}
    # 7 over 0.6/0.4: quotas 4.2 and 2.8 -> 4 and 3 (2.8 has the larger remainder)
    assert sampling.apportion(7, {"x": 0.6, "y": 0.4}, lower={"x": 0, "y": 0}, upper={"x": 9, "y": 9}) == {
        "x": 4,
        "y": 3,
    }


def test_apportion_respects_upper_bounds() -> None:
    assert sampling.apportion(10, {"a": 1, "b": 1}, lower={"a": 0, "b": 0}, upper={"a": 2, "b": 100}) == {
        "a": 2,
        "b": 8,
    }


def test_apportion_clips_an_unreachable_total_to_the_bounds() -> None:
    assert sampling.apportion(50, {"a": 1, "b": 1}, lower={"a": 0, "b": 0}, upper={"a": 3, "b": 4}) == {"a": 3, "b": 4}


@given(
    cells=st.lists(
        st.tuples(st.integers(0, 5), st.integers(0, 50), st.floats(0, 100, allow_nan=False)), min_size=1, max_size=8
    ),
    total=st.integers(0, 300),
)
def test_apportion_always_sums_to_the_clipped_total_within_bounds(cells, total) -> None:  # type: ignore[no-untyped-def]
    keys = range(len(cells))
    lower = {k: lo for k, (lo, _, _) in zip(keys, cells, strict=True)}
    upper = {k: lo + extra for k, (lo, extra, _) in zip(keys, cells, strict=True)}
    weights = {k: w for k, (_, _, w) in zip(keys, cells, strict=True)}
    result = sampling.apportion(total, weights, lower=lower, upper=upper)
    assert sum(result.values()) == max(sum(lower.values()), min(total, sum(upper.values())))
    assert all(lower[k] <= result[k] <= upper[k] for k in keys)


HAND_POLICY = SamplingPolicy(
    sample_size=5,
    per_department_min=2,
    low_confidence_share=0.4,
    low_confidence_threshold=-2.0,
    gold_share=0.0,
    overlap_share=0.0,
)


def _hand_plan(seed: int = 7) -> sampling.SamplePlan:
    # Legal (1): 6 answers, 2 below -2.0; HR (2): 4 answers, 1 below -2.0, one without confidence
    return sampling.plan_sample(
        answer_ids=list(range(1, 11)),
        department_ids=[1] * 6 + [2] * 4,
        confidences=[-3, -2.5, -1, -0.5, -0.4, -0.3, -2.8, -0.2, -0.1, None],
        gold=[],
        department_names={1: "Legal", 2: "HR"},
        policy=HAND_POLICY,
        seed=seed,
    )


def test_inclusion_weights_hand_computed_small_case() -> None:
    # departments: 5 proportional to 6:4 -> 3 and 2 (both above the minimum of 2)
    # low items: round(0.4 * 5) = 2, spread 3:2 -> quotas 1.2 / 0.8 -> Legal 1, HR 1
    # cells: Legal/low 1 of 2 (w 2), Legal/normal 2 of 4 (w 2), HR/low 1 of 1 (w 1), HR/normal 1 of 3 (w 3)
    plan = _hand_plan()
    by_stratum: dict[str, list[sampling.PlannedItem]] = {}
    for item in plan.items:
        by_stratum.setdefault(item.stratum, []).append(item)
    assert {s: len(items) for s, items in by_stratum.items()} == {
        "Legal/low": 1,
        "Legal/normal": 2,
        "HR/low": 1,
        "HR/normal": 1,
    }
    assert {s: items[0].inclusion_weight for s, items in by_stratum.items()} == {
        "Legal/low": 2.0,
        "Legal/normal": 2.0,
        "HR/low": 1.0,
        "HR/normal": 3.0,
    }
    assert {i.answer_id for i in by_stratum["HR/low"]} == {7}
    assert {i.answer_id for i in by_stratum["Legal/low"]} <= {1, 2}
    # Horvitz-Thompson: the weights add up to the population
    assert sum(i.inclusion_weight for i in plan.items) == pytest.approx(10)
    assert plan.cells["HR/normal"] == {"population": 3, "sampled": 1, "weight": 3.0}


def test_plan_is_deterministic_for_a_seed() -> None:
    assert _hand_plan(seed=20261128) == _hand_plan(seed=20261128)


def test_low_confidence_threshold_defaults_to_a_population_quantile() -> None:
    plan = sampling.plan_sample(
        answer_ids=list(range(1, 11)),
        department_ids=[1] * 10,
        confidences=[float(c) for c in range(1, 11)],
        gold=[],
        department_names={1: "Legal"},
        policy=SamplingPolicy(sample_size=10, per_department_min=0, gold_share=0, overlap_share=0),
        seed=1,
    )
    # numpy's linear 20th percentile of 1..10 is 2.8: answers 1 and 2 are "low"
    assert plan.low_confidence_threshold == pytest.approx(2.8)
    assert {i.answer_id for i in plan.items if i.low_confidence} == {1, 2}


@pytest.mark.parametrize(
    ("field", "value"),
    [("sample_size", 0), ("gold_share", 1.5), ("overlap_k", 1), ("lock_minutes", 0), ("window_days", "2")],
)
def test_policy_validation_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        dataclasses.replace(SamplingPolicy(), **{field: value}).validate()


# ---------------------------------------------------------------- drawing from the database


def _population(session: Session, *, counts: dict[str, int], gold: int = 0) -> dict[str, int]:
    """Answers created yesterday per department (confidence spread evenly), plus gold answers."""
    model = f.model_version(session)
    ids = {}
    for name, n in counts.items():
        dept = f.department(session, name)
        ids[name] = dept.id
        for i in range(n):
            f.answer(session, dept=dept, model=model, confidence=-5.0 + 5.0 * i / n, created_at=YESTERDAY_NOON)
    gold_dept = f.department(session, "Gold")
    for _ in range(gold):
        f.gold_answer(session, ans=f.answer(session, dept=gold_dept, model=model, created_at=YESTERDAY_NOON))
    return ids


def _save_policy(session: Session, **changes: object) -> None:
    policy_service.save(session, actor=None, name="sampling", settings=dataclasses.replace(SamplingPolicy(), **changes))


def test_sample_meets_minimums_shares_and_records_population(session: Session) -> None:
    ids = _population(session, counts={"Ops": 100, "HR": 30, "Legal": 5}, gold=12)
    model = f.model_version(session)
    dept = f.department(session, "Ops")
    f.answer(session, dept=dept, model=model, created_at=YESTERDAY_NOON - dt.timedelta(days=1))  # before the window
    f.answer(session, dept=dept, model=model, created_at=dt.datetime(2026, 11, 28, 0, tzinfo=dt.UTC))  # after it
    _save_policy(session, sample_size=40)

    summary = sampling.draw_sample(session, actor=None, sample_date=DAY, assign=False)

    assert summary.created and summary.population == 135
    assert summary.window_start == dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
    assert summary.window_end == dt.datetime(2026, 11, 28, tzinfo=dt.UTC)
    items = session.scalars(select(SampleItem).where(SampleItem.batch_id == summary.batch_id)).all()
    dept_of = dict(session.execute(select(Answer.id, Answer.asker_department_id)).all())
    production = [i for i in items if not i.is_gold]
    per_dept = {name: sum(1 for i in production if dept_of[i.answer_id] == did) for name, did in ids.items()}
    # gold: round(0.05 * 40) = 2; 38 production: Legal all 5, HR lifted to its minimum 10, Ops the other 23
    assert summary.gold_items == 2 and len(items) == 40
    assert per_dept == {"Ops": 23, "HR": 10, "Legal": 5}
    # low confidence: round(0.25 * 38) = 10 (the 20th-percentile threshold leaves enough low answers)
    assert summary.low_confidence_items == 10
    # overlap: round(0.2 * 38) = 8 production items with k = 2, gold items rated once
    assert summary.overlap_items == 8
    assert all(i.overlap_k == 2 for i in items if i.overlap_k > 1)
    assert all(i.overlap_k == 1 and i.stratum == "gold" and i.inclusion_weight == 1.0 for i in items if i.is_gold)
    # weights restore each department's population
    for name, did in ids.items():
        weight = sum(i.inclusion_weight for i in production if dept_of[i.answer_id] == did)
        assert weight == pytest.approx({"Ops": 100, "HR": 30, "Legal": 5}[name])
    assert session.scalar(select(func.count()).where(AuditLogEntry.action == "sample.draw")) == 1


def test_sampling_again_for_the_same_date_returns_the_same_batch(session: Session) -> None:
    _population(session, counts={"Ops": 50, "HR": 20})
    _save_policy(session, sample_size=20)
    first = sampling.draw_sample(session, actor=None, sample_date=DAY, assign=False)
    before = session.scalars(select(SampleItem.answer_id).order_by(SampleItem.id)).all()
    again = sampling.draw_sample(session, actor=None, sample_date=DAY, size=5, assign=False)
    assert not again.created and again.batch_id == first.batch_id and again.items == first.items == 20
    assert session.scalars(select(SampleItem.answer_id).order_by(SampleItem.id)).all() == before
    assert session.scalar(select(func.count()).select_from(SampleBatch)) == 1


def test_an_answer_is_never_sampled_twice(session: Session) -> None:
    _population(session, counts={"Ops": 30})
    _save_policy(session, sample_size=20, window_days=2, per_department_min=0)
    first = sampling.draw_sample(session, actor=None, sample_date=DAY, assign=False)
    second = sampling.draw_sample(session, actor=None, sample_date=DAY + dt.timedelta(days=1), assign=False)
    assert first.population == 30 and second.population == 10 and second.items == 10
    answer_ids = session.scalars(select(SampleItem.answer_id)).all()
    assert len(answer_ids) == len(set(answer_ids)) == 30


def test_size_option_overrides_the_policy_and_is_validated(session: Session) -> None:
    _population(session, counts={"Ops": 30})
    with pytest.raises(ValidationError, match="size"):
        sampling.draw_sample(session, actor=None, sample_date=DAY, size=0)
    summary = sampling.draw_sample(session, actor=None, sample_date=DAY, size=12, assign=False)
    assert summary.items == 12
    batch = session.get(SampleBatch, summary.batch_id)
    assert batch is not None and batch.parameters["policy"]["sample_size"] == 12


def test_stored_policy_is_loaded_over_defaults(session: Session) -> None:
    _save_policy(session, sample_size=77, lock_minutes=5)
    policy = load_sampling_policy(session)
    assert (policy.sample_size, policy.lock_minutes, policy.per_department_min) == (77, 5, 10)


@pytest.mark.slow
def test_sampling_a_day_of_fifty_thousand_answers_fills_every_slot(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with Session(engine) as session:
        model = f.model_version(session)
        departments = [f.department(session, f"D{i}") for i in range(8)]
        rows = [
            {
                "external_id": f"perf-{i}",
                "question": "q " * 20,
                "answer_text": "a " * 200,
                "asker_department_id": departments[i % 8].id,
                "model_version_id": model.id,
                "sources": [],
                "cites_other_department": False,
                "confidence": -(i % 997) / 100,
                "created_at": YESTERDAY_NOON + dt.timedelta(seconds=i % 40000),
                "content_hash": f"{i:064d}",
                "ingested_at": YESTERDAY_NOON,
            }
            for i in range(50_000)
        ]
        session.execute(insert(Answer), rows)
        for _ in range(20):
            f.user(session, role="auditor")
        session.commit()
    with Session(engine) as session:
        summary = sampling.draw_sample(session, actor=None, sample_date=DAY)
        session.commit()
    with Session(engine) as session:
        again = sampling.draw_sample(session, actor=None, sample_date=DAY)
    engine.dispose()
    # The ≤ 1 s target for this size is measured by `make bench` (the sampling scenario), not here: a
    # timed unit test on a shared machine measures its neighbours.
    assert summary.population == 50_000 and summary.items == 200 and summary.unfilled_slots == 0
    assert not again.created and (again.items, again.population) == (summary.items, summary.population)


def test_an_empty_window_is_refused_and_leaves_the_date_free(session: Session) -> None:
    with pytest.raises(NotFoundError, match="no answers to sample between 2026-11-27 00:00 and 2026-11-28 00:00"):
        sampling.draw_sample(session, actor=None, sample_date=DAY)
    _population(session, counts={"Ops": 3})
    assert sampling.draw_sample(session, actor=None, sample_date=DAY, assign=False).items == 3
