"""``auditloop sample``, ``assign`` and ``release-expired``: the daily sample and who rates what."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import TYPE_CHECKING, Any

import click

from app.cli.context import AppContext, emit, pass_app, table, user_errors
from audit.choices import MAX_SAMPLE_SIZE
from audit.errors import NotFoundError

if TYPE_CHECKING:
    from audit.sampling.service import SampleSummary

# Domain code is imported inside the commands, so `--help` loads none of it (see app/cli/main.py).


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _date_option(func: Any) -> Any:
    return click.option(
        "--date",
        "sample_date",
        type=click.DateTime(formats=["%Y-%m-%d"]),
        default=None,
        help="The sample date, YYYY-MM-DD (default: today, UTC). It samples the answers of the day(s) before.",
    )(func)


def _summary_text(summary: SampleSummary) -> str:
    verb = "drew" if summary.created else "already drawn:"
    lines = [
        f"{verb} sample {summary.batch_id} for {summary.sample_date}: {summary.items} items "
        f"({summary.gold_items} gold, {summary.low_confidence_items} low-confidence, "
        f"{summary.overlap_items} overlap) from {summary.population} answers "
        f"[{summary.window_start:%Y-%m-%d %H:%M} .. {summary.window_end:%Y-%m-%d %H:%M} UTC)",
    ]
    if summary.low_confidence_threshold is not None:
        lines.append(f"low confidence: below {summary.low_confidence_threshold:.4f}")
    rows = [
        {"stratum": s, "items": n, "weight": f"{summary.weight_by_stratum[s]:.3f}"}
        for s, n in summary.items_by_stratum.items()
    ]
    lines += ["", table(rows, ["stratum", "items", "weight"]), ""]
    lines.append(
        table(
            [{"auditor": a, "assignments": n} for a, n in summary.assignments_by_auditor.items()],
            ["auditor", "assignments"],
        )
    )
    if summary.unfilled_slots:
        lines.append(
            f"warning: {summary.unfilled_slots} auditor slots could not be filled (too few eligible active auditors); "
            "add auditors, then run `auditloop assign`"
        )
    return "\n".join(lines)


@click.command("sample")
@_date_option
@click.option("--size", type=click.IntRange(1, MAX_SAMPLE_SIZE), help="Items to draw (default: the sampling policy).")
@click.option("--no-assign", is_flag=True, help="Draw only; assign later with `auditloop assign`.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
@user_errors
def sample(app: AppContext, sample_date: dt.datetime | None, size: int | None, no_assign: bool, as_json: bool) -> None:
    """Draw the day's sample (stratified by department, low confidence oversampled, gold mixed in) and
    assign it to the active auditors. Running it again for the same date shows the same sample."""
    from audit.sampling import service as sampling_service

    day = sample_date.date() if sample_date else _today()
    with app.unit_of_work() as session:
        summary = sampling_service.draw_sample(session, actor=None, sample_date=day, size=size, assign=not no_assign)
    emit(dataclasses.asdict(summary), as_json=as_json, human=lambda _: _summary_text(summary))


@click.command("assign")
@_date_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
@user_errors
def assign(app: AppContext, sample_date: dt.datetime | None, as_json: bool) -> None:
    """Assign the items of a drawn sample that still lack auditors (e.g. after adding auditors)."""
    from audit.sampling import repository as sampling_repo
    from audit.sampling import service as sampling_service

    day = sample_date.date() if sample_date else _today()
    with app.unit_of_work() as session:
        batch = sampling_repo.batch_for_date(session, day)
        if batch is None:
            raise NotFoundError(f"no sample drawn for {day}: run `auditloop sample --date {day}` first")
        result = sampling_service.assign_batch(session, actor=None, batch_id=batch.id)
    emit(
        dataclasses.asdict(result),
        as_json=as_json,
        human=lambda r: (
            f"created {r['created']} assignments, {r['unfilled_slots']} slots unfilled\n"
            + table(
                [{"auditor": a, "assignments": n} for a, n in r["assignments_by_auditor"].items()],
                ["auditor", "assignments"],
            )
        ),
    )


@click.command("release-expired")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
@user_errors
def release_expired(app: AppContext, as_json: bool) -> None:
    """Hand items opened but not finished within the lock time to other auditors."""
    from audit.sampling import service as sampling_service

    with app.unit_of_work() as session:
        result = sampling_service.release_expired(session, actor=None)
    emit(
        dataclasses.asdict(result),
        as_json=as_json,
        human=lambda r: (
            f"expired {len(r['expired_assignment_ids'])} assignments, reassigned {r['reassigned']}, "
            f"{r['unfilled']} left without an eligible auditor"
        ),
    )


COMMANDS = [sample, assign, release_expired]
