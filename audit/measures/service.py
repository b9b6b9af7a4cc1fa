"""The reports: quality, agreement, calibration, fairness, funnel, metrics-vs-humans, as JSON-ready dicts.

Each checks ``view_dashboards``, resolves the filters, asks the repository for aggregates and
finishes them with the pure measures. Read-only: nothing is written, nothing is committed.
"""

from __future__ import annotations

import datetime as dt
import math
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from audit.choices import REPORT_NAMES
from audit.errors import NotFoundError, ValidationError
from audit.measures import agreement as agreement_measures
from audit.measures import calibration as calibration_measures
from audit.measures import fairness as fairness_measures
from audit.measures import funnel as funnel_measures
from audit.measures import quality as quality_measures
from audit.measures import repository, text_metrics
from audit.measures.repository import Scope
from audit.org.models import ROLES, User
from audit.permissions import require
from audit.ratings.models import DIMENSIONS, RATING_ORIGINS

CONFIDENCE = 0.95
QUALITY_COLUMNS = [
    "day",
    "model_version",
    "department",
    "dimension",
    "n",
    "answers",
    "mean",
    "ci_low",
    "ci_high",
    "too_few_answers",
    "weighted_mean",
]


@dataclass(frozen=True)
class ReportFilters:
    """What the user asked for: whole UTC days from ``date_from`` to ``date_to`` (both included),
    one model version and one asker department by name; None means no limit."""

    date_from: dt.date | None = None
    date_to: dt.date | None = None
    model_version: str | None = None
    department: str | None = None


def resolve_scope(session: Session, filters: ReportFilters) -> Scope:
    """Turn names into ids and days into the half-open UTC window [from 00:00, to + 1 day 00:00)."""
    if filters.date_from and filters.date_to and filters.date_from > filters.date_to:
        raise ValidationError(f"the first day {filters.date_from} is after the last day {filters.date_to}")
    model_version_id = None
    if filters.model_version is not None:
        model_version_id = repository.model_version_id(session, filters.model_version)
        if model_version_id is None:
            raise NotFoundError(f"model version {filters.model_version!r} not found")
    department_id = None
    if filters.department is not None:
        department_id = repository.department_id(session, filters.department)
        if department_id is None:
            raise NotFoundError(f"department {filters.department!r} not found")
    return Scope(
        start=_midnight(filters.date_from) if filters.date_from else None,
        end=_midnight(filters.date_to + dt.timedelta(days=1)) if filters.date_to else None,
        model_version_id=model_version_id,
        department_id=department_id,
    )


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


def _number(value: Any) -> float | None:
    """A float for JSON, None for NaN/None (JSON has no NaN)."""
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts: numpy scalars become Python numbers and NaN becomes None."""
    return [
        {key: _number(value) if isinstance(value, float | np.floating) else value for key, value in row.items()}
        for row in frame.astype(object).to_dict("records")
    ]


# --- the reports -----------------------------------------------------------------------------------


def quality(session: Session, *, actor: User | None, filters: ReportFilters = ReportFilters()) -> dict[str, Any]:
    """Mean of each dimension per rating day × model version × asker department, with n (ratings),
    the answers they rate, the 95 % interval of the mean over answers (ratings of one answer are not
    independent; none below ``min_answers_for_interval`` answers, and ``too_few_answers`` says so)
    and the production-weighted (Hajek) mean; see ``quality_measures``."""
    require(actor, "view_dashboards")
    scope = resolve_scope(session, filters)
    cells = quality_measures.summarize_cells(repository.quality_cells(session, scope), confidence=CONFIDENCE)
    cells["model_version"] = cells["model_version_id"].map(repository.model_version_names(session))
    cells["department"] = cells["department_id"].map(repository.department_names(session))
    rows = _records(cells[QUALITY_COLUMNS].astype({"n": int, "answers": int, "too_few_answers": bool}))
    return {
        "confidence": CONFIDENCE,
        "interval": "over answers (clustered), on the 1-5 scale",
        "min_answers_for_interval": quality_measures.MIN_INTERVAL_ANSWERS,
        "rows": rows,
    }


@dataclass(frozen=True)
class RaterGroup:
    """Whose ratings the agreement report compares (experts vs crowd, app vs imported): auditors by
    username, a role, rating origins; None means everyone. ``min_shared_items`` is how many answers
    two auditors must share for their kappa to be reported; ``pairs=False`` leaves kappa out (rotating
    raters share few answers and make meaningless pairs)."""

    auditors: tuple[str, ...] | None = None
    role: str | None = None
    origins: tuple[str, ...] | None = None
    min_shared_items: int = agreement_measures.MIN_SHARED_ITEMS
    pairs: bool = True


def resolve_raters(session: Session, group: RaterGroup) -> repository.RaterScope:
    """Usernames to ids; unknown names, roles and origins are errors."""
    auditor_ids = None
    if group.auditors is not None:
        found = repository.user_ids_by_username(session, group.auditors)
        missing = [name for name in group.auditors if name not in found]
        if missing:
            raise NotFoundError(f"no such user: {', '.join(missing)}")
        auditor_ids = tuple(found[name] for name in group.auditors)
    if group.role is not None and group.role not in ROLES:
        raise ValidationError(f"role: {group.role!r} is not one of {', '.join(ROLES)}")
    for origin in group.origins or ():
        if origin not in RATING_ORIGINS:
            raise ValidationError(f"origin: {origin!r} is not one of {', '.join(RATING_ORIGINS)}")
    if group.min_shared_items < 1:
        raise ValidationError(f"min_shared_items: {group.min_shared_items} must be 1 or more")
    return repository.RaterScope(auditor_ids=auditor_ids, role=group.role, origins=group.origins)


def agreement(
    session: Session,
    *,
    actor: User | None,
    filters: ReportFilters = ReportFilters(),
    group: RaterGroup = RaterGroup(),
) -> dict[str, Any]:
    """Krippendorff's alpha per dimension (ordinal and interval) over every answer at least two
    auditors of the ``group`` rated, and quadratic-weighted kappa per auditor pair sharing
    ``group.min_shared_items`` (20) or more answers, unless ``group.pairs`` is False."""
    require(actor, "view_dashboards")
    raters = resolve_raters(session, group)
    ratings = repository.multi_rated_ratings(session, resolve_scope(session, filters), raters)
    by_dimension, pairs = agreement_measures.agreement(
        ratings, dimensions=DIMENSIONS, min_shared_items=group.min_shared_items if group.pairs else sys.maxsize
    )
    return {
        "group": {
            "auditors": list(group.auditors) if group.auditors is not None else None,
            "role": group.role,
            "origins": list(group.origins) if group.origins is not None else None,
        },
        "min_shared_items": group.min_shared_items if group.pairs else None,
        "dimensions": {name: asdict(values) for name, values in by_dimension.items()},
        "pairs": [
            {
                "auditor_a": pair.auditor_a,
                "auditor_b": pair.auditor_b,
                "dimension": pair.dimension,
                "kappa": pair.kappa,
                "items": pair.items,
            }
            for pair in pairs
        ],
    }


def calibration(session: Session, *, actor: User | None, filters: ReportFilters = ReportFilters()) -> dict[str, Any]:
    """Per auditor and dimension (and pooled, ``"all"``): mean signed and absolute error against the
    gold items' expected scores, the share within ±1, and n."""
    require(actor, "view_dashboards")
    sums = repository.calibration_sums(session, resolve_scope(session, filters))
    table = calibration_measures.calibration_table(sums, dimensions=DIMENSIONS)
    rows = [
        {
            "auditor": row["auditor"],
            "dimension": row["dimension"],
            "n": int(row["n"]),
            "mean_error": _number(row["mean_error"]),
            "mean_abs_error": _number(row["mean_abs_error"]),
            "within_one_share": _number(row["within_one_share"]),
        }
        for row in table.to_dict("records")
    ]
    return {"rows": rows}


def fairness(
    session: Session,
    *,
    actor: User | None,
    filters: ReportFilters = ReportFilters(),
    min_group_size: int = fairness_measures.MIN_GROUP_SIZE,
) -> dict[str, Any]:
    """Each metric by asker department with MetricFrame's between-department difference (max − min)
    and ratio (min / max); departments under ``min_group_size`` ratings are marked unreliable, and
    the same disparities over the reliable ones only are under ``reliable_only``. Plus the
    cited-source view and the asker × favoured (and disfavoured) department flag counts."""
    require(actor, "view_dashboards")
    scope = resolve_scope(session, filters)
    sums = repository.fairness_sums(session, scope)
    report: dict[str, Any] = {"by_department": {}, "min_group_size": min_group_size}
    if not sums.empty:
        result = fairness_measures.disparities(sums)
        for department, row in sums.iterrows():
            metrics = result.by_group.loc[department]
            report["by_department"][str(department)] = {
                "ratings": int(row["ratings"]),
                **{name: _number(metrics[name]) for name in fairness_measures.METRICS},
                "reliable": bool(row["ratings"] >= min_group_size),
                "answers": int(row["answers"]),
                "cites_other_share": _ratio(row["answers_citing_other"], row["answers"]),
                "accuracy_when_citing_other": _ratio(
                    row["accuracy_citing_other_total"], row["accuracy_citing_other_count"]
                ),
                "accuracy_when_citing_own": _ratio(row["accuracy_citing_own_total"], row["accuracy_citing_own_count"]),
            }
        report["overall"] = {name: _number(result.overall[name]) for name in fairness_measures.METRICS}
        report.update(_differences(result))
        reliable = sums.index[sums["ratings"] >= min_group_size]
        report["reliable_only"] = {"departments": [str(d) for d in reliable]}
        if len(reliable):
            report["reliable_only"].update(_differences(fairness_measures.disparities(sums, groups=reliable)))
    else:
        report["overall"] = dict.fromkeys(fairness_measures.METRICS)
        report.update(
            {f"{name}_{kind}": None for name in fairness_measures.METRICS for kind in ("difference", "ratio")}
        )
        report["reliable_only"] = {"departments": []}
    report["flag_matrix"] = _matrix(repository.bias_flag_matrix(session, scope, side="favoured"))
    report["disfavoured_matrix"] = _matrix(repository.bias_flag_matrix(session, scope, side="disfavoured"))
    return report


def _ratio(total: float, count: float) -> float | None:
    return float(total) / float(count) if count else None


def _differences(result: fairness_measures.Disparities) -> dict[str, float | None]:
    values: dict[str, float | None] = {}
    for name in fairness_measures.METRICS:
        values[f"{name}_difference"] = _number(result.difference[name])
        values[f"{name}_ratio"] = _number(result.ratio[name])
    return values


def _matrix(counts: pd.DataFrame) -> dict[str, dict[str, int]]:
    matrix: dict[str, dict[str, int]] = {}
    for row in counts.itertuples(index=False):
        matrix.setdefault(str(row.asker), {})[str(row.named)] = int(row.flags)
    return matrix


def funnel(session: Session, *, actor: User | None, filters: ReportFilters = ReportFilters()) -> dict[str, Any]:
    """Answers sampled in the window and how many got rated, flagged, reviewed, confirmed, fixed,
    into a trained model and into a promoted one, with the median hours each step took."""
    require(actor, "view_dashboards")
    scope = resolve_scope(session, filters)
    head = repository.funnel_head(session, scope)
    events = repository.funnel_events(session, scope)
    events["confirmed_at"] = events["reviewed_at"].where(events["decision"] == "confirm")
    models = funnel_measures.first_models_with_fix(
        events["fix_dataset_number"].where(events["fixed_at"].notna()), repository.succeeded_jobs(session)
    )
    events = events.join(models)
    steps = funnel_measures.funnel(events, head=head)
    return {
        "steps": [
            {
                "step": row["step"],
                "count": int(row["count"]),
                "share_of_previous": _number(row["share_of_previous"]),
                "median_hours": _number(row["median_hours"]),
                "median_hours_from_sampled": _number(row["median_hours_from_sampled"]),
            }
            for row in steps.to_dict("records")
        ]
    }


@dataclass(frozen=True)
class MetricsOptions:
    """metrics-vs-humans: which human score the automatic ones are compared with, and how many
    answers to score (None: every answer in the window that has a reference and a rating)."""

    dimension: str = "accuracy"
    sample: int | None = None


def metrics_vs_humans(
    session: Session,
    *,
    actor: User | None,
    filters: ReportFilters = ReportFilters(),
    options: MetricsOptions = MetricsOptions(),
) -> dict[str, Any]:
    """Rank agreement (Spearman's ρ and Kendall's τ-b) between automatic scores (ROUGE-L, token F1)
    of answers against their references and the answers' mean human ``options.dimension`` rating:
    per answer (item level) and per model version (system level: the versions' mean automatic
    score against their mean human score). An answer's references are those ingested for it, an
    SME's correction and its gold reference; its score is the best over them (the highest, as
    multi-reference ROUGE takes it). Every answer in the window is scored, or a fixed random sample
    of ``options.sample`` answers; the report says which."""
    require(actor, "view_dashboards")
    if options.dimension not in DIMENSIONS:
        raise ValidationError(f"dimension: {options.dimension!r} is not one of {', '.join(DIMENSIONS)}")
    if options.sample is not None and options.sample < 1:
        raise ValidationError(f"sample: {options.sample} must be 1 or more")
    pairs = repository.answers_with_references(session, resolve_scope(session, filters), dimension=options.dimension)
    answers = pairs.drop_duplicates("answer_id")[["answer_id", "model_version_id", "answer_text", "human"]]
    total = len(answers)
    if options.sample is not None and total > options.sample:
        answers = answers.sample(n=options.sample, random_state=0).sort_values("answer_id")
    scored = answers.set_index("answer_id").sort_index()
    scored["references"] = _references_of(pairs, scored.index)
    scores = text_metrics.best_scores(scored["answer_text"].tolist(), scored["references"].tolist())
    for name, values in scores.items():
        scored[name] = values
    systems = scored.groupby("model_version_id")[["human", *scores]].mean()
    names = repository.model_version_names(session)
    return {
        "dimension": options.dimension,
        "answers": total,
        "scored": len(scored),
        "sample": options.sample if options.sample is not None and total > options.sample else None,
        "references": {kind: int((pairs["reference_kind"] == kind).sum()) for kind in repository.REFERENCE_KINDS},
        "reference_rule": "best of the answer's references (the highest score)",
        "metrics": [
            asdict(text_metrics.rank_agreement(name, scored[name].tolist(), scored["human"].tolist()))
            for name in scores
        ],
        "systems": [
            asdict(text_metrics.rank_agreement(name, systems[name].tolist(), systems["human"].tolist()))
            for name in scores
        ],
        "by_model_version": [
            {
                "model_version": names.get(int(version_id)),
                "answers": int((scored["model_version_id"] == version_id).sum()),
                "human": _number(row["human"]),
                **{name: _number(row[name]) for name in scores},
            }
            for version_id, row in systems.iterrows()
        ],
    }


def _references_of(pairs: pd.DataFrame, answer_ids: pd.Index) -> list[list[str]]:
    """Each answer's references, in the order of ``pairs``' rows: one pass over two columns. A
    pandas ``groupby(...).apply(list)`` builds a Series per answer, a tenth of a second at 5,200
    answers (1M answers, a month)."""
    found: dict[int, list[str]] = {}
    for answer_id, reference in zip(pairs["answer_id"].tolist(), pairs["reference"].tolist(), strict=True):
        found.setdefault(answer_id, []).append(reference)
    return [found[answer_id] for answer_id in answer_ids.tolist()]


REPORTS: dict[str, Callable[..., dict[str, Any]]] = {
    "quality": quality,
    "agreement": agreement,
    "calibration": calibration,
    "fairness": fairness,
    "funnel": funnel,
    "metrics-vs-humans": metrics_vs_humans,
}


def report(
    session: Session,
    *,
    actor: User | None,
    name: str,
    filters: ReportFilters = ReportFilters(),
    group: RaterGroup | None = None,
    metrics: MetricsOptions | None = None,
) -> dict[str, Any]:
    """The report called ``name`` (one of ``REPORT_NAMES``); ``group`` only for agreement, ``metrics``
    only for metrics-vs-humans."""
    if name not in REPORTS:
        raise ValidationError(f"unknown report {name!r}: choose one of {', '.join(REPORT_NAMES)}")
    if group is not None:
        if name != "agreement":
            raise ValidationError(
                "a rater group (auditors, role, origin, shared items, pairs) applies only to agreement"
            )
        return agreement(session, actor=actor, filters=filters, group=group)
    if metrics is not None:
        if name != "metrics-vs-humans":
            raise ValidationError("a dimension or a sample size applies only to metrics-vs-humans")
        return metrics_vs_humans(session, actor=actor, filters=filters, options=metrics)
    return REPORTS[name](session, actor=actor, filters=filters)
