"""``auditloop dataset``: list, inspect, compare and switch the immutable dataset versions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from app.cli.context import AppContext, emit, pass_app, table, user_errors
from audit.errors import NotFoundError, ValidationError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

# Domain code is imported inside the commands, so `--help` loads none of it (see app/cli/main.py).


def version_number(session: Session, given: str) -> int:
    """A version number from the command line: digits, or "current"."""
    from audit.knowledge import datasets

    if given == "current":
        current = datasets.current_version(session)
        if current is None:
            raise NotFoundError("there is no current dataset version (see `auditloop dataset create`)")
        return current.number
    if not given.isdigit():
        raise ValidationError(f"dataset version {given!r}: expected a number or 'current'")
    return int(given)


def _departments(counts: dict[str, int]) -> str:
    return ", ".join(f"{d} {n}" for d, n in counts.items()) or "-"


def _show_text(data: dict[str, Any]) -> str:
    lines = [
        f"dataset version {data['number']}{' (current)' if data['current'] else ''}",
        f"  hash        {data['hash']}",
        f"  examples    {data['examples']}",
        f"  departments {_departments(data['by_department'])}",
        f"  origins     {_departments(data['by_origin'])}",
        f"  created     {data['created_at']}",
        f"  changes     {len(data['changes'])}",
    ]
    for change in data["changes"][:50]:
        lines.append("    " + ", ".join(f"{k}={v}" for k, v in change.items()))
    if len(data["changes"]) > 50:
        lines.append(f"    ... and {len(data['changes']) - 50} more")
    return "\n".join(lines)


def _diff_text(data: dict[str, Any]) -> str:
    lines = [f"dataset version {data['base']} -> {data['target']}"]
    rows = [{"department": d, **counts} for d, counts in data["by_department"].items()]
    lines.append(table(rows, ["department", "added", "removed", "reweighted"]))
    for label in ("added", "removed"):
        for item in data[label][:20]:
            lines.append(
                f"  {'+' if label == 'added' else '-'} [{item['department']}] #{item['example_id']} {item['question']}"
            )
        if len(data[label]) > 20:
            lines.append(f"  ... and {len(data[label]) - 20} more {label}")
    return "\n".join(lines)


@click.group("dataset")
def dataset() -> None:
    """Immutable, content-addressed dataset versions (what training reads)."""


@dataset.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
@user_errors
def list_(app: AppContext, as_json: bool) -> None:
    """List the dataset versions, the current one marked."""
    from audit.knowledge import datasets

    with app.unit_of_work() as session:
        rows = [datasets.version_summary(v) for v in datasets.list_versions(session)]
    emit(
        rows,
        as_json=as_json,
        human=lambda r: table(
            [
                {
                    "version": x["number"],
                    "current": "*" if x["current"] else "",
                    "examples": x["examples"],
                    "departments": _departments(x["by_department"]),
                    "changes": len(x["changes"]),
                    "hash": x["hash"][:12],
                    "created": (x["created_at"] or "")[:19],
                }
                for x in r
            ],
            ["version", "current", "examples", "departments", "changes", "hash", "created"],
        ),
    )


@dataset.command("show")
@click.argument("version")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
@user_errors
def show(app: AppContext, version: str, as_json: bool) -> None:
    """Show VERSION (a number or "current"): counts by department and origin, and its change log."""
    from audit.knowledge import datasets

    with app.unit_of_work() as session:
        data = datasets.version_summary(datasets.version_by_number(session, version_number(session, version)))
    emit(data, as_json=as_json, human=_show_text)


@dataset.command("diff")
@click.argument("base")
@click.argument("target")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
@user_errors
def diff(app: AppContext, base: str, target: str, as_json: bool) -> None:
    """Examples TARGET adds to and removes from BASE, by department."""
    from audit.knowledge import datasets

    with app.unit_of_work() as session:
        data = datasets.diff_versions(session, version_number(session, base), version_number(session, target)).as_dict()
    emit(data, as_json=as_json, human=_diff_text)


@dataset.command("use")
@click.argument("version")
@pass_app
@user_errors
def use(app: AppContext, version: str) -> None:
    """Make VERSION the current one: training jobs queued from now on read it (rolling back = using an
    earlier version). Applying new fixes later snapshots the active examples again."""
    from audit.knowledge import datasets

    with app.unit_of_work() as session:
        chosen = datasets.use_version(session, actor=None, number=version_number(session, version))
        click.echo(f"dataset version {chosen.number} is now current ({chosen.example_count} examples)")


@dataset.command("create")
@click.option("--note", default="manual snapshot", show_default=True, help="Recorded in the change log.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
@user_errors
def create(app: AppContext, note: str, as_json: bool) -> None:
    """Snapshot the active examples as a new version (or report the existing one with the same content)."""
    from audit.knowledge import datasets

    with app.unit_of_work() as session:
        version, created = datasets.create_version(session, actor=None, change_log=[{"kind": "manual", "note": note}])
        data = {**datasets.version_summary(version), "created": created}
    emit(
        data,
        as_json=as_json,
        human=lambda d: (
            f"{'created' if d['created'] else 'unchanged: same content as'} dataset version {d['number']} "
            f"({d['examples']} examples, hash {d['hash'][:12]})"
        ),
    )


COMMANDS = [dataset]
