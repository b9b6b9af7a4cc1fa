"""The ``auditloop`` command: one group, each domain's commands in its own module."""

from __future__ import annotations

import sys

import click

from app.cli.context import AppContext
from app.cli.db_commands import db
from app.cli.users_commands import users


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


for command in (db, users):
    cli.add_command(command)


def main() -> None:
    cli.main(prog_name="auditloop")


if __name__ == "__main__":
    sys.exit(main())
