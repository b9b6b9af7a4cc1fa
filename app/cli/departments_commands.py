"""``auditloop departments``: the departments answers, documents and SMEs belong to."""

from __future__ import annotations

import click

from app.cli.context import AppContext, emit, pass_app, table, user_errors

# Domain code is imported inside the commands, so `--help` loads none of it (see app/cli/main.py).


@click.group("departments")
def departments() -> None:
    """List and add departments (ingest refuses unknown department names)."""


@departments.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
@user_errors
def list_(app: AppContext, as_json: bool) -> None:
    """List departments."""
    from audit.org import repository as org_repo

    with app.unit_of_work() as session:
        rows = [{"id": d.id, "name": d.name} for d in org_repo.departments(session)]
    emit(rows, as_json=as_json, human=lambda r: table(r, ["id", "name"]))


@departments.command("add")
@click.argument("names", nargs=-1, required=True)
@pass_app
@user_errors
def add(app: AppContext, names: tuple[str, ...]) -> None:
    """Add one or more departments by NAME."""
    from audit.org import service as org_service

    with app.unit_of_work() as session:
        for name in names:
            org_service.create_department(session, actor=None, name=name)
    click.echo(f"added {', '.join(names)}")


COMMANDS = [departments]
