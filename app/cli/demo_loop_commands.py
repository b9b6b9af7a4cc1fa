"""``auditloop demo loop``: the audit loop proven end to end on a fresh demo database (see app/demo_loop.py).

Adds the ``loop`` subcommand to the ``demo`` group; exports no top-level command of its own.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from app.cli.context import AppContext, emit, pass_app, table, user_errors
from app.cli.demo_commands import demo
from audit.db import make_engine
from audit.demo.corpus import DEFAULT_SEED
from audit.demo.seed import DEFAULT_DAYS, MAX_DAYS
from audit.errors import ConfigurationError
from audit.settings import Settings, load_settings

if TYPE_CHECKING:  # the loop brings the training stack: imported when the command runs (see app/cli/main.py)
    from app.demo_loop import LoopReport


@demo.command("loop")
@click.option("--seed", "seed", type=int, default=DEFAULT_SEED, show_default=True, help="Demo content seed.")
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
    seed: int,
    data_dir: Path | None,
    days: int,
    today: dt.datetime | None,
    overrides: tuple[str, ...],
    markdown_path: Path | None,
    as_json: bool,
) -> None:
    """Seed a fresh demo database and run the whole loop on it: route the ratings, let the HR SME
    confirm HR problems with corrections, apply the fixes, queue a retraining job, run the worker
    (LoRA train, evaluate against the champion on the gold questions, gate, promote), then show that
    the gate refuses a candidate trained on a deliberately corrupted dataset version.

    Prints a before/after table per department (held-out gold questions). Progress goes to stderr.
    Needs an empty database: use --data-dir for a fresh folder.
    """
    from app.demo_loop import DEMO_TODAY, LOOP_OVERRIDES, DemoLoop, LoopOptions, render_document
    from training.config import load_config

    load_config(None, (*LOOP_OVERRIDES, *overrides))  # a bad override fails before anything is written
    settings = _loop_settings(app.settings, data_dir)
    engine = make_engine(settings.database_url) if data_dir is not None else app.engine

    def progress(message: str) -> None:
        click.echo(message, err=True)

    try:
        options = LoopOptions(
            seed=seed, days=days, today=today.date() if today is not None else DEMO_TODAY, overrides=overrides
        )
        report = DemoLoop(settings, engine, options, progress=progress).run()
    finally:
        if data_dir is not None:
            engine.dispose()
    if markdown_path is not None:
        markdown_path.parent.mkdir(parents=True, exist_ok=True)
        markdown_path.write_text(render_document(report, command=_command_line(seed, overrides)), encoding="utf-8")
    emit(report.as_json() if as_json else report, as_json=as_json, human=_summary)


def _loop_settings(configured: Settings, data_dir: Path | None) -> Settings:
    """The configured settings, or with ``--data-dir`` everything moved into that folder except the
    base model cache, which stays shared with the configured data directory (built once)."""
    if data_dir is None:
        return configured
    data_dir = data_dir.expanduser().resolve()
    if data_dir.exists() and any(data_dir.iterdir()):
        raise click.ClickException(f"--data-dir {data_dir}: not empty (the loop needs a fresh folder)")
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
    rows = [
        {
            "department": name + (" (weak)" if name == report.weak_department else ""),
            "rougeL_before": f"{row['rougeL_before']:.4f}",
            "rougeL_after": f"{row['rougeL_after']:.4f}",
            "f1_before": f"{row['f1_before']:.4f}",
            "f1_after": f"{row['f1_after']:.4f}",
        }
        for name, row in report.departments.items()
    ]
    details = report.details
    corrupted = details.get("corrupted", {})
    candidate = details.get("candidate", {})
    lines = [
        f"The audit loop on the demo company (seed {details.get('seed')}), held-out gold questions "
        f"({details.get('gold', {}).get('held_out')} of {details.get('gold', {}).get('all')} gold items):",
        "",
        table(rows, ["department", "rougeL_before", "rougeL_after", "f1_before", "f1_after"]),
        "",
        f"department gap (ROUGE-L, max - min): {report.gap_before:.4f} -> {report.gap_after:.4f} "
        f"({'shrank' if report.gap_shrank else 'did NOT shrink'})",
        f"{report.weak_department}: ROUGE-L and F1 {'rose' if report.weak_rose else 'did NOT both rise'}",
        _gate_view(details, report.weak_department),
        f"{details.get('trigger', '')}",
        f"retrained candidate {candidate.get('model_version')}: gate {candidate.get('gate')}"
        + (f" (failed: {', '.join(candidate.get('failed', []))})" if candidate.get("failed") else "")
        + f"; promoted: {report.promoted}",
        f"corrupted dataset version {corrupted.get('dataset_version')}: candidate {corrupted.get('model_version')} "
        f"gate {corrupted.get('gate')} (failed: {', '.join(corrupted.get('failed', [])) or 'nothing'}); "
        f"champion {corrupted.get('champion_before')} -> {corrupted.get('champion_after')}; "
        f"refused: {report.corrupted_refused}",
        f"took {details.get('seconds')} s",
    ]
    return "\n".join(lines)


def _command_line(seed: int, overrides: tuple[str, ...]) -> str:
    """How to reproduce the run (the folder is any new one)."""
    parts = ["auditloop demo loop --data-dir /tmp/demo-loop"]
    if seed != DEFAULT_SEED:
        parts.append(f"--seed {seed}")
    parts += [f"--set {o}" for o in overrides]
    return " ".join(parts)


def _gate_view(details: dict[str, Any], weak_department: str) -> str:
    """The same comparison over every gold item (what the gate judged), in one line."""
    gold = details.get("gold", {})
    view = gold.get("all_items_gate_view", {})
    weak = view.get("by_department", {}).get(weak_department, {})
    return (
        f"all {gold.get('all')} gold items (the gate's view): ROUGE-L gap {view.get('gap_before', 0):.4f} -> "
        f"{view.get('gap_after', 0):.4f}; {weak_department} ROUGE-L {weak.get('rougeL_before', 0):.4f} -> "
        f"{weak.get('rougeL_after', 0):.4f}"
    )


COMMANDS: list[click.Command] = []
