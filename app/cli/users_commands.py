"""``auditloop users``: accounts and roles. Passwords come from a prompt or stdin, never argv."""

from __future__ import annotations

import click

from app.cli.context import AppContext, emit, pass_app, read_secret, table, user_errors
from audit.choices import ROLES

# Domain code is imported inside the commands, so `--help` loads none of it (see app/cli/main.py).


def _user_row(user) -> dict:  # type: ignore[no-untyped-def]
    return {
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role,
        "departments": [d.name for d in user.departments],
        "active": user.active,
        "locked_until": user.locked_until.isoformat() if user.locked_until else None,
    }


@click.group("users")
def users() -> None:
    """Create and manage accounts (auditor, sme, lead, admin)."""


@users.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--name", "display_name", help="Display name (default: the username).")
@click.option("--department", "departments", multiple=True, help="A department an SME covers (repeatable).")
@click.option("--home-department", help="The department the user works in.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@pass_app
@user_errors
def add(
    app: AppContext,
    username: str,
    role: str,
    display_name: str | None,
    departments: tuple[str, ...],
    home_department: str | None,
    password_stdin: bool,
) -> None:
    """Create USERNAME with a role; asks for a password (at least 12 characters)."""
    from audit.org import service as org_service

    password = read_secret("Password", from_stdin=password_stdin)
    with app.unit_of_work() as session:
        user = org_service.create_user(
            session,
            actor=None,
            username=username,
            role=role,
            password=password,
            display_name=display_name,
            departments=departments,
            home_department=home_department,
        )
        click.echo(f"created {user.username} ({user.role})")


@users.command("list")
@click.option("--role", type=click.Choice(ROLES))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
@user_errors
def list_(app: AppContext, role: str | None, as_json: bool) -> None:
    """List accounts."""
    from audit.org import repository as org_repo

    with app.unit_of_work() as session:
        rows = [_user_row(u) for u in org_repo.users(session, roles=[role] if role else None)]
    emit(
        rows,
        as_json=as_json,
        human=lambda r: table(
            [{**x, "departments": ",".join(x["departments"])} for x in r],
            ["username", "role", "departments", "active", "display_name"],
        ),
    )


@users.command("set-role")
@click.argument("username")
@click.argument("role", type=click.Choice(ROLES))
@click.option("--department", "departments", multiple=True, help="Replace the departments covered (repeatable).")
@pass_app
@user_errors
def set_role(app: AppContext, username: str, role: str, departments: tuple[str, ...]) -> None:
    """Change USERNAME's role (and, with --department, the departments covered)."""
    from audit.org import service as org_service

    with app.unit_of_work() as session:
        org_service.set_role(
            session, actor=None, username=username, role=role, departments=list(departments) if departments else None
        )
    click.echo(f"{username} is now {role}")


@users.command("deactivate")
@click.argument("username")
@pass_app
@user_errors
def deactivate(app: AppContext, username: str) -> None:
    """Deactivate USERNAME (history stays; the account can no longer log in)."""
    from audit.org import service as org_service

    with app.unit_of_work() as session:
        org_service.set_active(session, actor=None, username=username, active=False)
    click.echo(f"{username} deactivated")


@users.command("reset-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input.")
@pass_app
@user_errors
def reset_password(app: AppContext, username: str, password_stdin: bool) -> None:
    """Set a new password for USERNAME and clear any lockout."""
    from audit.org import service as org_service

    password = read_secret("New password", from_stdin=password_stdin)
    with app.unit_of_work() as session:
        org_service.reset_password(session, actor=None, username=username, password=password)
    click.echo(f"password reset for {username}")


COMMANDS = [users]
