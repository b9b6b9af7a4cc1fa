"""The ``auditloop`` command: one group, each domain's commands in its own module, loaded on use.

Starting the CLI imports only click: a command's module is imported when that command runs or shows
its help, so ``auditloop --help`` and every cron run of a light command do not pay for the heavy ones.
A command module in turn imports at its top only click, app/cli/context.py and the light modules its
option choices come from (``audit.choices``, ``training.choices``, ``app.bench.choices``); the domain
code behind it (SQLAlchemy, pandas, the training stack) is imported inside the command's function, so
every ``--help`` stays instant. ``auditloop --help`` lists the commands from the summaries below; a
test keeps them equal to each command's own first sentence.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import NamedTuple

import click


class LazyCommand(NamedTuple):
    module: str  # the module that defines it
    attribute: str  # its name there
    summary: str  # the first sentence of its help, shown by ``auditloop --help``
    extended_by: tuple[str, ...] = ()  # modules that add subcommands to it when imported


COMMANDS: dict[str, LazyCommand] = {
    "answer": LazyCommand(
        "app.cli.answer_commands",
        "answer",
        "Answer the questions in a JSONL file with the champion (or a named) model and store the answers.",
    ),
    "assign": LazyCommand(
        "app.cli.sample_commands",
        "assign",
        "Assign the items of a drawn sample that still lack auditors (e.g. after adding auditors).",
    ),
    "base-model": LazyCommand(
        "app.cli.answer_commands",
        "base_model",
        "The base model (AUDITLOOP_BASE_MODEL: builtin:tiny or a local Hugging Face model directory).",
    ),
    "bench": LazyCommand(
        "app.cli.bench_commands",
        "bench",
        "Measure ingest, sampling, per-item latency (alone and concurrent), reports, fixes and export at each scale, the browser round trip at the largest scale on SQLite, and training efficiency once.",
    ),
    "daily": LazyCommand("app.cli.daily_commands", "daily", "Run the daily cycle for a date."),
    "dataset": LazyCommand(
        "app.cli.dataset_commands",
        "dataset",
        "Immutable, content-addressed dataset versions (what training reads).",
    ),
    "db": LazyCommand("app.cli.db_commands", "db", "Create and migrate the database schema."),
    "demo": LazyCommand(
        "app.cli.demo_commands",
        "demo",
        "The demo company: a seeded knowledge base, assistant traffic and audit history.",
        extended_by=("app.cli.demo_loop_commands",),
    ),
    "departments": LazyCommand(
        "app.cli.departments_commands",
        "departments",
        "List and add departments (ingest refuses unknown department names).",
    ),
    "export": LazyCommand("app.cli.export_commands", "export", "Write data out of auditloop."),
    "fixes": LazyCommand(
        "app.cli.fixes_commands",
        "fixes",
        "Data fixes: proposed from confirmed reviews; safe kinds apply by policy, the rest wait for a lead.",
    ),
    "ingest": LazyCommand(
        "app.cli.ingest_commands",
        "ingest",
        "Load JSONL files (one JSON object per line; blank lines are skipped).",
    ),
    "model": LazyCommand(
        "app.cli.model_commands",
        "model",
        "Model versions: train (a LoRA job), evaluate, list, promote, roll back.",
    ),
    "release-expired": LazyCommand(
        "app.cli.sample_commands",
        "release_expired",
        "Hand items opened but not finished within the lock time to other auditors.",
    ),
    "report": LazyCommand(
        "app.cli.report_commands",
        "report",
        "Print report NAME over current ratings (imported and simulated included) made from --from to --to.",
    ),
    "retrieval": LazyCommand("app.cli.answer_commands", "retrieval", "The retriever over the current documents."),
    "review": LazyCommand(
        "app.cli.review_commands",
        "review",
        "The SME review queue: list, show, claim, confirm, dismiss.",
    ),
    "route": LazyCommand(
        "app.cli.review_commands",
        "route",
        "Open or extend review items from the current ratings (low score, bias flag, disagreement, gold miss).",
    ),
    "sample": LazyCommand(
        "app.cli.sample_commands",
        "sample",
        "Draw the day's sample (stratified by department, low confidence oversampled, gold mixed in) and assign it to the active auditors.",
    ),
    "users": LazyCommand("app.cli.users_commands", "users", "Create and manage accounts (auditor, sme, lead, admin)."),
    "worker": LazyCommand(
        "app.cli.model_commands",
        "worker",
        "Claim queued training jobs and run them: train, evaluate against the champion, gate, record.",
    ),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported by name when they are used (see the module docstring)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name, entry in COMMANDS.items() if _available(entry.module))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None or not _available(entry.module):
            return None
        command = getattr(importlib.import_module(entry.module), entry.attribute)
        for module in entry.extended_by:
            if _available(module):
                importlib.import_module(module)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = [(name, _shorten(COMMANDS[name].summary, limit)) for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _available(module: str) -> bool:
    """False when that command family is not part of this build (its module is absent)."""
    return importlib.util.find_spec(module) is not None


def _shorten(summary: str, limit: int) -> str:
    """The summary cut to ``limit`` characters at a word, as click shortens a command's own help."""
    if len(summary) <= limit:
        return summary
    return summary[: max(limit - 3, 0)].rsplit(" ", 1)[0] + "..."


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="auditloop")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """auditloop: human-in-the-loop evaluation and bias audit for an internal LLM assistant.

    Configuration comes from AUDITLOOP_* environment variables (see the README). Exit codes:
    0 success, 1 a problem with the input or the data (one line says what), 2 a usage error.
    """
    from app.cli.context import AppContext

    app = ctx.ensure_object(AppContext)
    ctx.call_on_close(app.close)


def main() -> None:
    cli.main(prog_name="auditloop")


if __name__ == "__main__":
    sys.exit(main())
