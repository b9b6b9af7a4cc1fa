"""``auditloop report NAME``: the quality, agreement, calibration, fairness, funnel and
metrics-vs-humans reports as tables, or as JSON with ``--json``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import click

from app.cli.context import AppContext, emit, pass_app, table, user_errors
from audit.choices import DIMENSIONS, MIN_SHARED_ITEMS, RATING_ORIGINS, REPORT_NAMES, ROLES

# Domain code is imported inside the commands, so `--help` loads none of it (see app/cli/main.py).


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _quality_text(data: dict[str, Any]) -> str:
    minimum = data["min_answers_for_interval"]
    rows = [
        {
            **row,
            "mean": _fmt(row["mean"], 2),
            "95% CI": f"< {minimum} answers"
            if row["too_few_answers"]
            else f"{_fmt(row['ci_low'], 2)}..{_fmt(row['ci_high'], 2)}",
            "weighted": _fmt(row["weighted_mean"], 2),
        }
        for row in data["rows"]
    ]
    columns = ["day", "model_version", "department", "dimension", "n", "answers", "mean", "95% CI", "weighted"]
    return (
        f"95% intervals over answers (ratings of one answer are not independent); none below {minimum} answers\n"
        + table(rows, columns)
    )


def _agreement_text(data: dict[str, Any]) -> str:
    dimensions = [
        {"dimension": name, **{k: _fmt(v) for k, v in values.items()}} for name, values in data["dimensions"].items()
    ]
    pairs = [{**pair, "kappa": _fmt(pair["kappa"])} for pair in data["pairs"]]
    group = data["group"]
    named = [
        f"auditors {', '.join(group['auditors'])}" if group["auditors"] else "",
        f"role {group['role']}" if group["role"] else "",
        f"origin {', '.join(group['origins'])}" if group["origins"] else "",
    ]
    text = (
        f"Raters: {'; '.join(n for n in named if n) or 'everyone'}\n"
        "Krippendorff's alpha (answers rated by two or more of them)\n"
        + table(dimensions, ["dimension", "alpha_ordinal", "alpha_interval", "items", "ratings"])
    )
    if data["min_shared_items"] is None:
        return text
    return (
        text
        + f"\n\nQuadratic-weighted Cohen's kappa (pairs sharing {data['min_shared_items']}+ answers)\n"
        + table(pairs, ["auditor_a", "auditor_b", "dimension", "kappa", "items"])
    )


def _calibration_text(data: dict[str, Any]) -> str:
    rows = [{k: _fmt(v) for k, v in row.items()} for row in data["rows"]]
    return table(rows, ["auditor", "dimension", "n", "mean_error", "mean_abs_error", "within_one_share"])


def _fairness_text(data: dict[str, Any]) -> str:
    metrics = ["accuracy_mean", "completeness_mean", "relevance_mean", "coherence_mean"]
    metrics += ["bias_flag_rate", "sources_correct_rate"]
    departments = [
        {"department": name, **{k: _fmt(v) for k, v in values.items()}}
        for name, values in data["by_department"].items()
    ]
    gaps = [
        {"metric": m, "difference": _fmt(data[f"{m}_difference"]), "ratio": _fmt(data[f"{m}_ratio"])} for m in metrics
    ]
    flags = [
        {"asker": asker, "favoured": named, "flags": count}
        for asker, row in data["flag_matrix"].items()
        for named, count in row.items()
    ]
    return (
        f"By asker department (reliable: {data['min_group_size']}+ ratings)\n"
        + table(departments, ["department", "ratings", "reliable", *metrics])
        + "\n\nCited sources\n"
        + table(
            departments,
            ["department", "answers", "cites_other_share", "accuracy_when_citing_other", "accuracy_when_citing_own"],
        )
        + "\n\nBetween departments (difference = max - min, ratio = min / max)\n"
        + table(gaps, ["metric", "difference", "ratio"])
        + "\n\nBias flags: asker department x favoured department\n"
        + table(flags, ["asker", "favoured", "flags"])
    )


def _funnel_text(data: dict[str, Any]) -> str:
    rows = [{k: _fmt(v, 1) for k, v in row.items()} for row in data["steps"]]
    return table(rows, ["step", "count", "share_of_previous", "median_hours", "median_hours_from_sampled"])


def _metrics_text(data: dict[str, Any]) -> str:
    columns = ["metric", "n", "spearman", "spearman_p", "kendall", "kendall_p"]
    items = [{k: _fmt(v) for k, v in row.items()} for row in data["metrics"]]
    systems = [{k: _fmt(v) for k, v in row.items()} for row in data["systems"]]
    versions = [{k: _fmt(v) for k, v in row.items()} for row in data["by_model_version"]]
    references = ", ".join(f"{kind}: {n}" for kind, n in data["references"].items())
    scored = f"a random sample of {data['scored']} scored" if data["sample"] else f"all {data['scored']} scored"
    return (
        f"{data['answers']} answers with a reference and a {data['dimension']} rating ({scored}); "
        f"references: {references}; each answer scored against the {data['reference_rule']}\n"
        f"\nPer answer: rank agreement with the mean human {data['dimension']} rating\n"
        + table(items, columns)
        + "\n\nPer model version (system level)\n"
        + table(systems, columns)
        + "\n"
        + table(versions, ["model_version", "answers", "human", "rougeL", "token_f1"])
    )


HUMAN: dict[str, Callable[[dict[str, Any]], str]] = {
    "quality": _quality_text,
    "agreement": _agreement_text,
    "calibration": _calibration_text,
    "fairness": _fairness_text,
    "funnel": _funnel_text,
    "metrics-vs-humans": _metrics_text,
}


@click.command("report")
@click.argument("name", type=click.Choice(REPORT_NAMES))
@click.option("--from", "date_from", type=click.DateTime(["%Y-%m-%d"]), help="First day (UTC, YYYY-MM-DD).")
@click.option("--to", "date_to", type=click.DateTime(["%Y-%m-%d"]), help="Last day, included (UTC, YYYY-MM-DD).")
@click.option("--model-version", help="Only answers of this model version (by name).")
@click.option("--department", help="Only answers asked from this department (by name).")
@click.option("--auditors", metavar="A,B,...", help="agreement: only these auditors' ratings (usernames).")
@click.option("--role", type=click.Choice(ROLES), help="agreement: only ratings by users with this role.")
@click.option(
    "--origin",
    "origins",
    multiple=True,
    type=click.Choice(RATING_ORIGINS),
    help="agreement: only ratings of this origin (repeatable).",
)
@click.option(
    "--min-shared-items",
    type=click.IntRange(1),
    default=MIN_SHARED_ITEMS,
    show_default=True,
    help="agreement: a pair's kappa needs this many answers rated by both.",
)
@click.option("--no-pairs", is_flag=True, help="agreement: alpha only, no kappa per pair (rotating raters).")
@click.option(
    "--dimension",
    type=click.Choice(DIMENSIONS),
    default=None,
    help="metrics-vs-humans: the human rating compared with (default: accuracy).",
)
@click.option(
    "--sample",
    type=click.IntRange(1),
    default=None,
    help="metrics-vs-humans: score a fixed random sample of this many answers (default: every answer).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
@user_errors
def report(
    app: AppContext,
    name: str,
    date_from: dt.datetime | None,
    date_to: dt.datetime | None,
    model_version: str | None,
    department: str | None,
    auditors: str | None,
    role: str | None,
    origins: tuple[str, ...],
    min_shared_items: int,
    no_pairs: bool,
    dimension: str | None,
    sample: int | None,
    as_json: bool,
) -> None:
    """Print report NAME over current ratings (imported and simulated included) made from --from to --to.

    \b
    quality            mean per day x model version x department, 95% CI, production-weighted mean
    agreement          Krippendorff's alpha per dimension, Cohen's kappa per auditor pair
    calibration        each auditor's error against gold items
    fairness           metrics by asker department, between-department gaps, bias-flag matrix
    funnel             sampled -> rated -> flagged -> reviewed -> confirmed -> fixed -> trained -> promoted
    metrics-vs-humans  Spearman and Kendall of ROUGE-L and token F1 with human ratings, per answer and version
    """
    from audit.measures import service as measures
    from audit.measures.service import MetricsOptions, RaterGroup, ReportFilters

    filters = ReportFilters(
        date_from=date_from.date() if date_from else None,
        date_to=date_to.date() if date_to else None,
        model_version=model_version,
        department=department,
    )
    group = None
    if auditors or role or origins or no_pairs or min_shared_items != MIN_SHARED_ITEMS:
        if name != "agreement":
            raise click.UsageError("--auditors, --role, --origin, --min-shared-items and --no-pairs apply to agreement")
        group = RaterGroup(
            auditors=tuple(a.strip() for a in auditors.split(",") if a.strip()) if auditors else None,
            role=role,
            origins=origins or None,
            min_shared_items=min_shared_items,
            pairs=not no_pairs,
        )
    metrics = None
    if dimension is not None or sample is not None:
        if name != "metrics-vs-humans":
            raise click.UsageError("--dimension and --sample apply to metrics-vs-humans")
        metrics = MetricsOptions(dimension=dimension or "accuracy", sample=sample)
    with app.unit_of_work() as session:
        data = measures.report(session, actor=None, name=name, filters=filters, group=group, metrics=metrics)
    emit(data, as_json=as_json, human=HUMAN[name])


COMMANDS = [report]
