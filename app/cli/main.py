"""The ``auditloop`` command: one group, each domain's commands in its own module."""

from __future__ import annotations

import importlib
import sys

import click

from app.cli.context import AppContext

# Each module exposes COMMANDS: the click commands/groups it adds to `auditloop`.
COMMAND_MODULES = [
    "app.cli.db_commands",
    "app.cli.users_commands",
    "app.cli.departments_commands",
    "app.cli.demo_commands",
    "app.cli.demo_loop_commands",
    "app.cli.ingest_commands",
    "app.cli.export_commands",
    "app.cli.dataset_commands",
    "app.cli.sample_commands",
    "app.cli.review_commands",
    "app.cli.report_commands",
    "app.cli.fixes_commands",
    "app.cli.daily_commands",
    "app.cli.model_commands",
    "app.cli.answer_commands",
    "app.cli.bench_commands",
]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="auditloop")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """auditloop: human-in-the-loop evaluation and bias audit for an internal LLM assistant.

    Configuration comes from AUDITLOOP_* environment variables (see the README). Exit codes:
    0 success, 1 a problem with the input or the data (one line says what), 2 a usage error.
    """
    app = ctx.ensure_object(AppContext)
    ctx.call_on_close(app.close)


def _register() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that command family is not part of this build
                continue
            raise
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def main() -> None:
    cli.main(prog_name="auditloop")


if __name__ == "__main__":
    sys.exit(main())
