"""``auditloop worker`` and ``auditloop model``: training jobs, evaluation, promotion and rollback."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from app.cli.context import AppContext, emit, pass_app, table, user_errors
from audit.errors import NotFoundError

if TYPE_CHECKING:
    from audit.org.models import User

# Domain code is imported inside the commands, so `--help` loads none of it (see app/cli/main.py).


def _acting_user(session: Any, username: str | None) -> User | None:
    """``--by USERNAME`` attributes the action to that user (and checks their role); without it the
    command runs as the operator."""
    from audit.org import repository as org_repo

    if username is None:
        return None
    user = org_repo.user_by_username(session, username)
    if user is None:
        raise NotFoundError(f"--by {username}: no such user")
    return user


def _registry(app: AppContext) -> Any:
    from training.tracking import default_registry

    return default_registry(app.settings.mlflow_tracking_uri)


# --------------------------------------------------------------------------- worker


@click.command("worker")
@click.option("--once", is_flag=True, help="Handle at most one job, then exit.")
@click.option(
    "--poll-seconds",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Wait between polls when idle.",
)
@click.option(
    "--heartbeat-seconds",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    help="Heartbeat interval while a job runs.",
)
@click.option(
    "--heartbeat-timeout",
    type=click.FloatRange(min=0.5),
    default=300.0,
    show_default=True,
    help="A running job with no heartbeat for this long is requeued (its worker died).",
)
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), help="Recipe YAML (default: the packaged lora.yaml)."
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Recipe override for every job (repeatable), e.g. device=cuda.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary of the jobs handled.")
@pass_app
@user_errors
def worker(
    app: AppContext,
    once: bool,
    poll_seconds: float,
    heartbeat_seconds: float,
    heartbeat_timeout: float,
    config_path: str | None,
    overrides: tuple[str, ...],
    as_json: bool,
) -> None:
    """Claim queued training jobs and run them: train, evaluate against the champion, gate, record.

    Runs until stopped (SIGTERM/Ctrl-C stop it after the current step; the job is requeued).
    Several workers may run at once, on several machines: each job is claimed by exactly one.
    """
    from training.config import load_config
    from training.worker import WorkerOptions, describe, run_worker

    load_config(config_path, overrides)  # a bad override fails now, not in the first job
    app.require_schema()
    options = WorkerOptions(
        poll_seconds=poll_seconds,
        heartbeat_seconds=heartbeat_seconds,
        heartbeat_timeout_seconds=heartbeat_timeout,
        once=once,
        config_path=config_path,
        overrides=overrides,
    )
    results = run_worker(app.settings, app.engine, options)
    rows = describe(results)
    emit(
        rows,
        as_json=as_json,
        human=lambda r: table(r, ["job", "status", "model_version", "gate", "error"]) if r else "no queued job",
    )
    if any(r.status == "failed" for r in results):
        raise SystemExit(1)


# --------------------------------------------------------------------------- model


@click.group("model")
def model() -> None:
    """Model versions: train (a LoRA job), evaluate, list, promote, roll back."""


@model.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
@user_errors
def list_(app: AppContext, as_json: bool) -> None:
    """Model versions, newest first, with their alias, gate status and gold-set scores."""
    from training import gate

    with app.unit_of_work() as session:
        rows = gate.version_summaries(session)
    emit(
        rows,
        as_json=as_json,
        human=lambda r: table(
            [{**x, **{m: _fmt(x[m]) for m in _LISTED_METRICS}} for x in r],
            ["name", "alias", "gate", "dataset_version", *_LISTED_METRICS, "created_at"],
        ),
    )


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


@model.command("jobs")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
@user_errors
def jobs_(app: AppContext, limit: int, as_json: bool) -> None:
    """Recent training jobs with their status, attempts and outcome."""
    from training import jobs

    with app.unit_of_work() as session:
        rows = [
            {
                "id": j.id,
                "status": j.status,
                "attempts": f"{j.attempts}/{j.max_attempts}",
                "reason": j.trigger_reason,
                "worker": j.worker_id,
                "model_version_id": j.model_version_id,
                "error": (j.error or "")[:120],
                "created_at": j.created_at.isoformat(timespec="seconds"),
            }
            for j in jobs.recent_jobs(session, limit=limit + 1)  # one more tells whether the list is cut
        ]
    note = f"older jobs not shown: use --limit {limit * 2}" if len(rows) > limit else ""
    rows = rows[:limit]
    if note and as_json:
        click.echo(note, err=True)
    emit(
        rows,
        as_json=as_json,
        human=lambda r: (
            table(r, ["id", "status", "attempts", "reason", "model_version_id", "error"])
            + (f"\n{note}" if note else "")
        ),
    )


@model.command("train")
@click.option(
    "--dataset-version", "dataset_number", type=click.IntRange(min=1), help="Dataset version number (default: current)."
)
@click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Recipe override stored with the job (repeatable)."
)
@click.option("--reason", default="manual retraining", show_default=True, help="Why this job was queued.")
@click.option("--queue-only", is_flag=True, help="Only queue the job; a running `auditloop worker` picks it up.")
@click.option("--by", "by_username", metavar="USERNAME", help="Attribute the request to this user (a lead).")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Queue nothing: print the parameters, trainable share and estimated peak memory, and fail if "
    "the run will not fit this machine's device.",
)
@click.option(
    "--device-memory-gb",
    type=click.FloatRange(min=0.1),
    help="With --dry-run: check the fit against this much memory (GB) instead of the device's free memory; "
    "with --set device=cuda it plans a GPU run on a machine without one.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
@user_errors
def train(
    app: AppContext,
    dataset_number: int | None,
    overrides: tuple[str, ...],
    reason: str,
    queue_only: bool,
    by_username: str | None,
    dry_run: bool,
    device_memory_gb: float | None,
    as_json: bool,
) -> None:
    """Queue a LoRA training job and (unless --queue-only) run it here, as a worker would.

    --dry-run estimates instead, from the base model's config.json alone (no weights are read)."""
    from audit.knowledge import datasets
    from training import jobs
    from training.config import load_config, parse_overrides
    from training.worker import Worker, WorkerOptions, describe

    cfg = load_config(None, overrides)  # validate before queueing
    if dry_run:
        _dry_run(app, cfg, device_memory_gb=device_memory_gb, as_json=as_json)
        return
    with app.unit_of_work() as session:
        actor = _acting_user(session, by_username)
        version_id = datasets.version_by_number(session, dataset_number).id if dataset_number else None
        job = jobs.enqueue(
            session, actor=actor, reason=reason, dataset_version_id=version_id, config=parse_overrides(overrides)
        )
        job_id = job.id
    if queue_only:
        emit({"job": job_id, "status": "queued"}, as_json=as_json, human=lambda d: f"queued training job {d['job']}")
        return
    result = Worker(app.settings, app.engine, WorkerOptions(once=True)).run_one()
    if result is None:
        click.echo(f"training job {job_id} was picked up by another worker (see `auditloop model jobs`)")
        return
    rows = describe([result])
    emit(rows, as_json=as_json, human=lambda r: table(r, ["job", "status", "model_version", "gate", "error"]))
    if result.status != "succeeded":
        raise SystemExit(1)


def _dry_run(app: AppContext, cfg: Any, *, device_memory_gb: float | None, as_json: bool) -> None:
    from audit.errors import ValidationError
    from training.memory import dry_run
    from training.recipes.evaluate import resolve_device

    memory_bytes = int(device_memory_gb * 10**9) if device_memory_gb is not None else None
    if cfg.device == "cuda" and memory_bytes is not None:
        device = "cuda"  # planning a GPU run: this machine need not have one
    elif cfg.device == "cuda" and resolve_device("auto") != "cuda":
        raise ValidationError("device: cuda but no CUDA device here: add --device-memory-gb to plan for one")
    else:
        device = resolve_device(cfg.device)
    report = dry_run(
        cfg, base_model=cfg.base_model or app.settings.base_model, device=device, memory_bytes=memory_bytes
    )
    emit(report.to_dict(), as_json=as_json, human=lambda _d: report.text())
    if not report.fits:
        raise SystemExit(1)


@model.command("evaluate")
@click.argument("name")
@click.option("--against", help="Model version to compare with (default: the champion).")
@click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Recipe override, e.g. evaluation.max_items=50."
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
@user_errors
def evaluate(app: AppContext, name: str, against: str | None, overrides: tuple[str, ...], as_json: bool) -> None:
    """Evaluate model version NAME on the held-out gold questions (against the champion); changes nothing."""
    from training.config import load_config
    from training.recipes import evaluate as evaluate_recipe

    cfg = load_config(None, overrides)
    app.require_schema()
    report = evaluate_recipe.main(cfg, candidate=name, against=against, settings=app.settings, engine=app.engine)
    emit(report, as_json=as_json, human=_evaluation_text)


_LISTED_METRICS = ("fact_accuracy", "citation_accuracy", "rougeL", "f1")


def _evaluation_text(report: dict[str, Any]) -> str:
    lines = [f"{report['candidate']} on {report['gold_items']} gold questions"]
    metrics = ["fact_accuracy", "citation_accuracy", "outdated_citation", "retrieval_at_1", "rougeL", "f1"]
    rows = [{"department": "(all)", **{m: _fmt(report["candidate_metrics"].get(m)) for m in metrics}}]
    rows += [
        {"department": d, **{m: _fmt(v.get(m)) for m in metrics}} for d, v in report["candidate_by_department"].items()
    ]
    lines.append(table(rows, ["department", *metrics]))
    if report.get("comparison"):
        lines.append(f"\nagainst {report['against']} (paired bootstrap, candidate − champion):")
        for metric, result in report["comparison"]["metric_differences"].items():
            lines.append(
                f"  {metric}: {result['mean_difference']:+.4f}  CI [{result['ci_low']:+.4f}, {result['ci_high']:+.4f}]"
            )
        preview = report["gate_preview"]
        lines.append(f"gate would {'pass' if preview['passed'] else 'fail: ' + ', '.join(preview['failed'])}")
    return "\n".join(lines)


@model.command("promote")
@click.argument("name")
@click.option("--force", is_flag=True, help="Promote even though the version failed the gate (recorded).")
@click.option("--by", "by_username", metavar="USERNAME", help="The lead approving the promotion.")
@pass_app
@user_errors
def promote(app: AppContext, name: str, force: bool, by_username: str | None) -> None:
    """Make model version NAME the champion (the previous champion is retired)."""
    from training import gate

    registry = _registry(app)
    with app.unit_of_work() as session:
        actor = _acting_user(session, by_username)
        version = gate.promote(session, actor=actor, name=name, registry=registry, force=force)
        click.echo(f"{version.name} is now the champion")


@model.command("rollback")
@click.option("--by", "by_username", metavar="USERNAME", help="The lead rolling back.")
@pass_app
@user_errors
def rollback(app: AppContext, by_username: str | None) -> None:
    """Put the previous champion back (the current one is retired)."""
    from training import gate

    registry = _registry(app)
    with app.unit_of_work() as session:
        actor = _acting_user(session, by_username)
        demoted, restored = gate.rollback(session, actor=actor, registry=registry)
        click.echo(f"rolled back: {restored.name} is the champion again ({demoted.name} retired)")


COMMANDS = [worker, model]
