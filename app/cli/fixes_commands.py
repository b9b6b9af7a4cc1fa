"""``auditloop fixes``: data fixes proposed from confirmed reviews — list, propose, apply, approve, reject."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from app.cli.context import AppContext, emit, pass_app, table, user_errors
from audit.choices import FIX_KINDS, FIX_STATUSES
from audit.errors import NotFoundError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from audit.org.models import User

# Domain code is imported inside the commands, so `--help` loads none of it (see app/cli/main.py).


def _actor(session: Session, username: str | None) -> User | None:
    from audit.org import repository as org_repo

    if username is None:
        return None
    user = org_repo.user_by_username(session, username)
    if user is None:
        raise NotFoundError(f"user {username!r} does not exist")
    return user


_as_option = click.option(
    "--as",
    "as_user",
    help="The lead deciding (recorded as decided_by; must be allowed to approve fixes). Default: the operator.",
)
_json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


def _apply_text(report: dict[str, Any]) -> str:
    lines = [f"applied {len(report['applied'])} fix(es)" + (f": {report['applied']}" if report["applied"] else "")]
    for refused in report["refused"]:
        lines.append(f"refused fix {refused['fix']}: {refused['reason']}")
    if report["dataset_version"] is not None:
        state = "new" if report["version_created"] else "unchanged"
        lines.append(f"dataset version {report['dataset_version']} ({state})")
    if report.get("triggers"):
        lines.append(f"triggers: {report['triggers']['message']}")
    return "\n".join(lines)


@click.group("fixes")
def fixes() -> None:
    """Data fixes: proposed from confirmed reviews; safe kinds apply by policy, the rest wait for a lead."""


@fixes.command("list")
@click.option("--status", type=click.Choice(FIX_STATUSES), help="Only fixes in this state.")
@click.option("--kind", type=click.Choice(FIX_KINDS), help="Only fixes of this kind.")
@click.option("--limit", type=click.IntRange(1), default=None, help="At most this many (oldest first).")
@_json_option
@pass_app
@user_errors
def list_(app: AppContext, status: str | None, kind: str | None, limit: int | None, as_json: bool) -> None:
    """List fixes with their reason and decision."""
    from audit.fixes import service as fixes_service

    with app.unit_of_work() as session:
        rows = [
            fixes_service.fix_summary(f)
            for f in fixes_service.list_fixes(session, actor=None, status=status, kind=kind, limit=limit)
        ]
    emit(
        rows,
        as_json=as_json,
        human=lambda r: table(
            [
                {
                    **x,
                    "review": x["review_item_id"] or "",
                    "why": (x["decision_note"] if x["status"] == "rejected" else x["reason"])[:90],
                }
                for x in r
            ],
            ["id", "kind", "status", "review", "why"],
        ),
    )


@fixes.command("propose")
@_json_option
@pass_app
@user_errors
def propose(app: AppContext, as_json: bool) -> None:
    """Propose fixes for every confirmed review that has none yet (applies nothing)."""
    from audit.fixes import service as fixes_service

    with app.unit_of_work() as session:
        report = fixes_service.propose_fixes(session, actor=None).as_dict()
    emit(
        report,
        as_json=as_json,
        human=lambda r: "\n".join(
            [f"{r['reviews']} confirmed review(s): {len(r['proposed'])} fix(es) proposed, {len(r['refused'])} refused"]
            + [f"refused fix {x['fix']}: {x['reason']}" for x in r["refused"]]
        ),
    )


@fixes.command("apply")
@_json_option
@pass_app
@user_errors
def apply(app: AppContext, as_json: bool) -> None:
    """Apply every proposed fix of the kinds the fixes policy auto-applies, into one new dataset version."""
    from audit.fixes import service as fixes_service

    with app.unit_of_work() as session:
        report = fixes_service.auto_apply(session).as_dict()
    emit(report, as_json=as_json, human=_apply_text)


@fixes.command("approve")
@click.argument("fix_ids", nargs=-1, type=int, required=True)
@click.option("--note", help="Why (recorded with the decision).")
@_as_option
@_json_option
@pass_app
@user_errors
def approve(app: AppContext, fix_ids: tuple[int, ...], note: str | None, as_user: str | None, as_json: bool) -> None:
    """Apply the proposed fixes FIX_IDS (any kind, e.g. quarantines and rebalances waiting for a lead)."""
    from audit.fixes import service as fixes_service

    with app.unit_of_work() as session:
        report = fixes_service.apply_fixes(
            session, actor=_actor(session, as_user), fix_ids=list(fix_ids), note=note
        ).as_dict()
    emit(report, as_json=as_json, human=_apply_text)


@fixes.command("reject")
@click.argument("fix_ids", nargs=-1, type=int, required=True)
@click.option("--note", required=True, help="Why they are rejected (required, recorded).")
@_as_option
@_json_option
@pass_app
@user_errors
def reject(app: AppContext, fix_ids: tuple[int, ...], note: str, as_user: str | None, as_json: bool) -> None:
    """Reject the proposed fixes FIX_IDS with a reason."""
    from audit.fixes import service as fixes_service

    with app.unit_of_work() as session:
        rejected = fixes_service.reject_fixes(session, actor=_actor(session, as_user), fix_ids=list(fix_ids), note=note)
        data = [fixes_service.fix_summary(f) for f in rejected]
    emit(data, as_json=as_json, human=lambda d: "\n".join(f"rejected fix {x['id']} ({x['kind']})" for x in d))


COMMANDS = [fixes]
