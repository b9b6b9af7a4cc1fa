"""``auditloop db``: move the schema with the Alembic migrations."""

from __future__ import annotations

import click

from app.cli.context import AppContext, emit, pass_app, user_errors

# Domain code is imported inside the commands, so `--help` loads none of it (see app/cli/main.py).


@click.group("db")
def db() -> None:
    """Create and migrate the database schema."""


@db.command("upgrade")
@click.argument("revision", default="head")
@pass_app
@user_errors
def upgrade(app: AppContext, revision: str) -> None:
    """Apply migrations up to REVISION (default: head)."""
    from audit import schema

    schema.upgrade(app.engine, revision)
    click.echo(f"database at {schema.current_revision(app.engine)} ({app.engine.url.render_as_string()})")


@db.command("downgrade")
@click.argument("revision")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
@user_errors
def downgrade(app: AppContext, revision: str, yes: bool) -> None:
    """Revert migrations down to REVISION ('base' drops every table: data is lost)."""
    from audit import schema

    if not yes:
        click.confirm(
            f"Downgrade {app.engine.url.render_as_string()} to {revision}? Data in dropped tables is lost", abort=True
        )
    schema.downgrade(app.engine, revision)
    click.echo(f"database at {schema.current_revision(app.engine) or 'base'}")


@db.command("current")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
@user_errors
def current(app: AppContext, as_json: bool) -> None:
    """Show the database's revision and whether it is up to date."""
    from audit import schema

    data = {
        "url": app.engine.url.render_as_string(),
        "current": schema.current_revision(app.engine),
        "head": schema.head_revision(),
    }
    data["up_to_date"] = data["current"] == data["head"]
    emit(
        data,
        as_json=as_json,
        human=lambda d: (
            f"{d['current'] or 'base'} (head {d['head']}){'' if d['up_to_date'] else ' - run auditloop db upgrade'}"
        ),
    )


COMMANDS = [db]
