"""``auditloop ingest``: load documents, examples, gold questions, answers, past ratings or reference
answers from JSONL files."""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from app.cli.context import AppContext, emit, pass_app, user_errors

if TYPE_CHECKING:
    from audit.ingest.run import Kind
    from audit.ingest.service import IngestSummary

# Domain code is imported inside the commands, so `--help` loads none of it (see app/cli/main.py).

MAX_PRINTED_ERRORS = 50


def _print_errors(summary: IngestSummary) -> None:
    for error in summary.errors[:MAX_PRINTED_ERRORS]:
        click.echo(error.format(summary.file), err=True)
    more = summary.error_count - min(len(summary.errors), MAX_PRINTED_ERRORS)
    if more > 0:
        click.echo(f"... and {more:,} more", err=True)


def _run(
    app: AppContext, kind: Kind, file: Path, *, update: bool, skip_invalid: bool, create_auditors: bool, as_json: bool
) -> None:
    from audit.ingest.run import IngestOptions
    from audit.ingest.service import IngestRejected, ingest_file

    options = IngestOptions(update=update, skip_invalid=skip_invalid, create_auditors=create_auditors)
    started = time.perf_counter()
    try:
        with (
            click.progressbar(length=file.stat().st_size, label=f"{kind} {file.name}", file=sys.stderr) as bar,
            app.unit_of_work() as session,
        ):
            summary = ingest_file(session, actor=None, kind=kind, path=file, options=options, on_bytes=bar.update)
    except IngestRejected as exc:
        if as_json:
            emit({**exc.summary.as_dict(), "stored": False}, as_json=True)
        _print_errors(exc.summary)
        raise
    # the summary's time includes the commit, which on a large file is a good part of the work
    summary = dataclasses.replace(summary, seconds=time.perf_counter() - started)
    if summary.counts.rejected:
        _print_errors(summary)
    emit({**summary.as_dict(), "stored": True}, as_json=as_json, human=lambda _: _human(summary))


def _human(summary: IngestSummary) -> str:
    text = summary.line()
    if summary.rejected_file is not None and summary.counts.rejected:
        text += f"\nrejected lines, with reasons: {summary.rejected_file}"
    return text


def _ingest_command(kind: Kind, help_text: str, *, ratings: bool = False) -> click.Command:
    """One subcommand per kind, with the same options (and --create-auditors for ratings)."""

    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--update", is_flag=True, help="Replace stored rows whose content changed (else each is an error).")
    @click.option(
        "--skip-invalid",
        is_flag=True,
        help="Store the valid lines and write the invalid ones, with reasons, to FILE.rejected.jsonl.",
    )
    @click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
    @pass_app
    @user_errors
    def command(app: AppContext, file: Path, update: bool, skip_invalid: bool, as_json: bool, **extra: Any) -> None:
        _run(
            app,
            kind,
            file,
            update=update,
            skip_invalid=skip_invalid,
            create_auditors=bool(extra.get("create_auditors")),
            as_json=as_json,
        )

    decorated: Callable[..., None] = command
    if ratings:
        decorated = click.option(
            "--create-auditors",
            is_flag=True,
            help="Create unknown auditors as inactive accounts (role auditor, no password) instead of failing.",
        )(decorated)
    return click.command(kind, help=help_text)(decorated)


@click.group("ingest")
def ingest() -> None:
    """Load JSONL files (one JSON object per line; blank lines are skipped).

    A file with any invalid line is rejected whole: each problem is printed as FILE:LINE: field: problem
    and nothing is stored (exit 1), unless --skip-invalid. Re-ingesting a file stores nothing new.
    See docs/ingest-formats.md for every field.
    """


ingest.add_command(
    _ingest_command(
        "documents",
        "Load knowledge-base documents from FILE (superseded_by may name a document later in the file).",
    )
)
ingest.add_command(_ingest_command("examples", "Load curated training examples from FILE."))
ingest.add_command(
    _ingest_command(
        "gold",
        "Load gold questions from FILE: reference answer, key values and the document a right answer cites.",
    )
)
ingest.add_command(
    _ingest_command(
        "answers",
        "Load the production assistant's answers from FILE; unknown model versions are registered.",
    )
)
ingest.add_command(
    _ingest_command(
        "ratings",
        "Load past audits (origin 'import') from FILE; they need the answers ingested first.",
        ratings=True,
    )
)
ingest.add_command(
    _ingest_command(
        "references",
        "Load human reference answers for ingested answers from FILE (several per answer).",
    )
)

COMMANDS = [ingest]
