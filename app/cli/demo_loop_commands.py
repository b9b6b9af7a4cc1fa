"""``auditloop demo loop``: the audit loop proven end to end on a fresh demo database (see app/demo_loop.py).

Adds the ``loop`` subcommand to the ``demo`` group; exports no top-level command of its own.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from app.cli.context import AppContext, emit, pass_app, user_errors
from app.cli.demo_commands import demo
from audit.demo.corpus import DEFAULT_SEED
from audit.demo.traffic import DEFAULT_DAYS, MAX_DAYS
from audit.errors import ConfigurationError

if TYPE_CHECKING:  # the loop brings the training stack: imported when the command runs (see app/cli/main.py)
    from app.demo_loop import LoopReport
    from audit.settings import Settings


def _parse_seeds(_ctx: click.Context, _param: click.Parameter, value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        seeds = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected comma-separated integers, e.g. 7,11,13") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise click.BadParameter(f"{value!r}: give one or more distinct seeds, e.g. 7,11,13")
    return seeds


@demo.command("loop")
@click.option("--seed", "seed", type=int, default=None, help=f"Demo content seed [default: {DEFAULT_SEED}].")
@click.option(
    "--seeds",
    "seeds",
    callback=_parse_seeds,
    default=None,
    metavar="S1,S2,...",
    help="Run the whole proof once per seed (each with a base model pretrained on its own corpus, cached per "
    "seed) and print a summary across seeds: mean and range of every effect. Needs --data-dir (one "
    "sub-folder per seed).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Run in this (new or empty) folder: its own SQLite database, MLflow store and adapters. "
    "The base model is still built once into, and reused from, the configured data directory.",
)
@click.option(
    "--days",
    type=click.IntRange(1, MAX_DAYS),
    default=DEFAULT_DAYS,
    show_default=True,
    help="Days of demo history.",
)
@click.option(
    "--real-days",
    type=click.IntRange(0, 14),
    default=3,
    show_default=True,
    help="Days the assistant itself answers and the simulated auditors rate: that many after the history, "
    "answered by v0 before the review, and that many more answered by the champion after the gate (0: none).",
)
@click.option(
    "--training-seeds",
    type=click.IntRange(1, 10),
    default=1,
    show_default=True,
    help="Train the candidate's and the control's recipe with this many recipe seeds (the recipe's seed, then "
    "+1, +2, ...; only the first candidate is gated) and report each seed's correction effect, their spread "
    "and the seed-averaged effect: shows how much of an effect training randomness alone moves. Each extra "
    "seed adds two training runs and two evaluations.",
)
@click.option(
    "--today",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="The day the demo history ends before (default: the demo's fixed day, so the numbers reproduce).",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Training recipe override for both training runs, e.g. train.epochs=2 (repeatable).",
)
@click.option(
    "--markdown",
    "markdown_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the before/after table and the run's facts to this Markdown file.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
@user_errors
def loop(
    app: AppContext,
    seed: int | None,
    seeds: list[int] | None,
    data_dir: Path | None,
    days: int,
    real_days: int,
    training_seeds: int,
    today: dt.datetime | None,
    overrides: tuple[str, ...],
    markdown_path: Path | None,
    as_json: bool,
) -> None:
    """Seed a fresh demo database and run the whole loop on it: route the ratings, let the HR SME
    confirm HR problems with corrections, apply the fixes, queue a retraining job, run the worker
    (LoRA train, evaluate against the champion on the clean gate items, gate, promote), train a
    control on the data from before the corrections, score two no-model baselines, then show that the
    gate refuses candidates trained on two corrupted dataset versions (answers shuffled; values wrong).
    Around it, --real-days days are answered by the assistant itself (v0 before the review, the
    champion after the gate) and rated by the simulated auditors from the truth, so the Quality and
    Fairness pages show the change from auditor ratings.

    Prints fact accuracy, citation accuracy, retrieval@1 and ROUGE-L per department with 95% intervals,
    and the correction effect (candidate − control). Progress goes to stderr. Needs an empty
    database: use --data-dir for a fresh folder.
    """
    from app.demo_loop import (
        DEMO_TODAY,
        LOOP_OVERRIDES,
        DemoLoop,
        LoopOptions,
        render_document,
        render_seed_summary,
        seed_summary,
    )
    from audit.db import make_engine
    from training.config import load_config

    if seed is not None and seeds is not None:
        raise click.UsageError("give --seed or --seeds, not both")
    seed_list = seeds or [seed if seed is not None else DEFAULT_SEED]
    if len(seed_list) > 1 and data_dir is None:
        raise click.UsageError("--seeds with more than one seed needs --data-dir (one fresh sub-folder per seed)")
    load_config(None, (*LOOP_OVERRIDES, *overrides))  # a bad override fails before anything is written
    if data_dir is not None and data_dir.exists() and any(data_dir.iterdir()):
        raise click.ClickException(
            f"--data-dir {data_dir.expanduser().resolve()}: not empty (the loop needs a fresh folder)"
        )

    def progress(message: str) -> None:
        click.echo(message, err=True)

    reports: list[LoopReport] = []
    for one in seed_list:
        run_dir = data_dir if data_dir is None or len(seed_list) == 1 else data_dir / f"seed-{one}"
        settings = _loop_settings(app.settings, run_dir)
        engine = make_engine(settings.database_url) if run_dir is not None else app.engine
        if len(seed_list) > 1:
            progress(f"== seed {one} ({len(reports) + 1} of {len(seed_list)}) in {run_dir}")
        try:
            options = LoopOptions(
                seed=one,
                days=days,
                today=today.date() if today is not None else DEMO_TODAY,
                overrides=overrides,
                real_days=real_days,
                training_seeds=training_seeds,
            )
            reports.append(DemoLoop(settings, engine, options, progress=progress).run())
        finally:
            if run_dir is not None:
                engine.dispose()
    if markdown_path is not None:
        markdown_path.parent.mkdir(parents=True, exist_ok=True)
        page = render_document(reports[0], command=_command_line(seed_list, overrides, training_seeds))
        if len(reports) > 1:
            page += "\n" + render_seed_summary(reports)
        markdown_path.write_text(page, encoding="utf-8")
    if len(reports) == 1:
        emit(reports[0].as_json() if as_json else reports[0], as_json=as_json, human=_summary)
        return
    summary = {
        "seeds": seed_list,
        "per_seed": {str(r.seeds[0]): r.as_json() for r in reports},
        "summary": seed_summary(reports),
    }
    emit(summary if as_json else reports, as_json=as_json, human=_seeds_text)


def _loop_settings(configured: Settings, data_dir: Path | None) -> Settings:
    """The configured settings, or with ``--data-dir`` everything moved into that folder except the
    base model cache, which stays shared with the configured data directory (built once)."""
    from audit.settings import load_settings

    if data_dir is None:
        return configured
    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    shared_models = (configured.data_dir / "models").expanduser().resolve()
    shared_models.mkdir(parents=True, exist_ok=True)
    (data_dir / "models").symlink_to(shared_models, target_is_directory=True)
    environ = {
        k: v for k, v in os.environ.items() if k not in {"AUDITLOOP_DATABASE_URL", "AUDITLOOP_MLFLOW_TRACKING_URI"}
    }
    environ["AUDITLOOP_DATA_DIR"] = str(data_dir)
    try:
        return load_settings(environ)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc


def _summary(report: LoopReport) -> str:
    from app.demo_loop import render_markdown, verdicts

    details = report.details
    weak = report.weak_department
    lines = [
        f"The audit loop on the demo company (seed {details.get('seed')}): {report.gate_items} clean gate items "
        f"({report.gate_items_excluded_as_leaked} gold items left out as leaked), means with 95% intervals.",
    ]
    for metric in ("fact_accuracy", "wrong_value", "citation_accuracy", "retrieval_at_1", "rougeL"):
        lines += ["", metric + ":", render_markdown(report, metric=metric)]
    lines += ["", *verdicts(report)]
    candidate = details.get("candidate", {})
    lines.append(
        f"retrained candidate {candidate.get('model_version')}: gate {candidate.get('gate')}"
        + (f" (failed: {', '.join(candidate.get('failed', []))})" if candidate.get("failed") else "")
        + f"; promoted: {report.promoted}"
    )
    for kind, corrupted in details.get("corrupted", {}).items():
        lines.append(
            f"{kind} dataset version {corrupted.get('dataset_version')}: candidate {corrupted.get('model_version')} "
            f"gate {corrupted.get('gate')} (failed: {', '.join(corrupted.get('failed', [])) or 'nothing'}); "
            f"champion {corrupted.get('champion_before')} -> {corrupted.get('champion_after')}"
        )
    if report.training_seeds:
        from app.demo_loop import render_training_seeds

        lines += ["", render_training_seeds(report)]
    lines.append(f"{weak} is the under-represented department; took {details.get('seconds')} s")
    return "\n".join(lines)


def _seeds_text(reports: list[LoopReport]) -> str:
    from app.demo_loop import render_seed_summary

    return "\n\n".join([*(_summary(r) for r in reports), render_seed_summary(reports)])


def _command_line(seeds: list[int], overrides: tuple[str, ...], training_seeds: int = 1) -> str:
    """How to reproduce the run (the folder is any new one)."""
    parts = ["auditloop demo loop --data-dir /tmp/demo-loop"]
    if seeds != [DEFAULT_SEED]:
        parts.append(f"--seeds {','.join(str(s) for s in seeds)}")
    if training_seeds > 1:
        parts.append(f"--training-seeds {training_seeds}")
    parts += [f"--set {o}" for o in overrides]
    return " ".join(parts)


COMMANDS: list[click.Command] = []
