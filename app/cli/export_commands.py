"""``auditloop export dataset``: a dataset version as chat-format SFT records (JSONL or a saved HF Dataset)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from app.cli.context import AppContext, emit, pass_app, user_errors
from app.cli.dataset_commands import version_number
from audit.choices import EXPORT_FORMATS

# Domain code is imported inside the commands, so `--help` loads none of it (see app/cli/main.py).


@click.group("export")
def export() -> None:
    """Write data out of auditloop."""


@export.command("dataset")
@click.argument("version")
@click.option("--out", "out", type=click.Path(dir_okay=True, path_type=Path), required=True, help="Target file.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(EXPORT_FORMATS),
    default="jsonl",
    show_default=True,
    help="jsonl: one chat record per line; hf: a datasets.Dataset saved with save_to_disk (a directory).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@pass_app
@user_errors
def dataset(app: AppContext, version: str, out: Path, fmt: str, as_json: bool) -> None:
    """Export dataset VERSION (a number, or "current") to --out. The file appears only once it is
    complete: a failure (disk full, interrupted) leaves nothing at --out."""
    from audit.knowledge import datasets
    from audit.knowledge import export as dataset_export

    with app.unit_of_work() as session:
        number = version_number(session, version)
        # refuse a missing version or a bad target in one line, before the progress bar starts
        datasets.version_by_number(session, number)
        dataset_export.check_target(out, fmt)
        with click.progressbar(length=1, label=f"exporting version {number}", file=sys.stderr) as bar:

            def progress(done: int, total: int) -> None:
                bar.length = max(total, 1)
                bar.update(done - bar.pos)

            summary = dataset_export.export_version(
                session,
                number=number,
                out=out,
                fmt=fmt,  # type: ignore[arg-type]
                progress=progress,
            )
    emit(
        summary.as_dict(),
        as_json=as_json,
        human=lambda s: (
            f"exported dataset version {s['version']}: {s['examples']} examples to {s['path']} "
            f"({s['format']}, {s['bytes']:,} bytes) in {s['seconds']:.2f} s"
        ),
    )


COMMANDS = [export]
