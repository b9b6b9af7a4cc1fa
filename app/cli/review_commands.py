"""``auditloop review ...`` (the SME queue, for scripted use) and ``auditloop route``."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from app.cli.context import AppContext, emit, pass_app, table, user_errors
from audit.choices import REVIEW_REASONS, REVIEW_STATUSES, ROOT_CAUSES
from audit.errors import NotFoundError, ValidationError

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


def _as_option(required: bool) -> Any:
    return click.option(
        "--as",
        "as_user",
        required=required,
        help="The SME acting (their departments and permissions apply)."
        + ("" if required else " Default: the operator, who sees every department."),
    )


LIST_LIMIT = 100  # review items `review list` shows at once


def _json_option(func: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")(func)


@click.group("review")
def review() -> None:
    """The SME review queue: list, show, claim, confirm, dismiss."""


@review.command("list")
@_as_option(required=False)
@click.option("--reason", "reasons", multiple=True, type=click.Choice(REVIEW_REASONS), help="Repeatable.")
@click.option("--department", help="Only this department.")
@click.option("--max-age-days", type=click.IntRange(0), help="Only items opened in the last N days.")
@click.option("--status", "statuses", multiple=True, type=click.Choice(REVIEW_STATUSES), help="Default: open, claimed.")
@click.option(
    "--limit", type=click.IntRange(1), default=LIST_LIMIT, show_default=True, help="Show at most this many items."
)
@click.option("--offset", type=click.IntRange(0), default=0, show_default=True, help="Skip this many items first.")
@_json_option
@pass_app
@user_errors
def list_(
    app: AppContext,
    as_user: str | None,
    reasons: tuple[str, ...],
    department: str | None,
    max_age_days: int | None,
    statuses: tuple[str, ...],
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    """List review items, oldest first, a page at a time (--limit, --offset); says how many more there are."""
    from audit.review import service as review_service

    with app.unit_of_work() as session:
        entries = review_service.review_queue(
            session,
            actor=_actor(session, as_user),
            reasons=reasons or None,
            department=department,
            max_age_days=max_age_days,
            statuses=statuses or ("open", "claimed"),
            limit=sys.maxsize,  # every matching item: the page is cut here, and the rest counted
        )
    page = entries[offset : offset + limit]
    rows = [dataclasses.asdict(e) for e in page]
    more = len(entries) - offset - len(page)
    if page:
        note = f"items {offset + 1}-{offset + len(page)} of {len(entries)}"
    else:
        note = f"no items at offset {offset} ({len(entries)} in all)"
    if more > 0:
        note += f"; {more} more: --offset {offset + len(page)}"
    if as_json and (more > 0 or offset > 0):  # stdout stays the JSON list; a cut goes to stderr
        click.echo(note, err=True)
    emit(
        rows,
        as_json=as_json,
        human=lambda r: (
            table(
                [
                    {
                        **x,
                        "reasons": ",".join(x["reasons"]),
                        "age_days": f"{x['age_days']:.1f}",
                        "question": x["question"][:60],
                    }
                    for x in r
                ],
                ["item_id", "department", "status", "reasons", "age_days", "claimed_by", "row_version", "question"],
            )
            + f"\n{note}"
        ),
    )


def _detail_text(d: dict[str, Any]) -> str:
    lines = [
        f"review item {d['item_id']} ({d['status']}, version {d['row_version']}) — {d['department']} — "
        f"reasons: {', '.join(d['reasons'])}",
        f"answer {d['answer_external_id']} (id {d['answer_id']})",
        f"Q: {d['question']}",
        f"A: {d['answer_text']}",
        "sources:",
    ]
    lines += [
        f"  - {s['title'] or s['external_id'] or s['document_id']} (v{s['version']}, {s['department']})"
        + (" OUTDATED" if s["outdated"] else "")
        for s in d["sources"]
    ] or ["  (none)"]
    lines.append("ratings:")
    lines += [
        f"  - {r['auditor']}: accuracy {r['accuracy']}, completeness {r['completeness']}, relevance {r['relevance']}, "
        f"coherence {r['coherence']}"
        + (" BIAS" if r["bias_flag"] else "")
        + (f" — {r['comment']}" if r["comment"] else "")
        for r in d["ratings"]
    ] or ["  (none)"]
    if d["gold"]:
        lines.append(f"gold: expected {d['gold']['expected']}; reference: {d['gold']['reference_answer']}")
    if d["decision"]:
        dec = d["decision"]
        lines.append(f"decision: {dec['decision']} by {dec['sme']} at {dec['decided_at']} ({dec['root_cause'] or '-'})")
    return "\n".join(lines)


@review.command("show")
@click.argument("item_id", type=int)
@_as_option(required=False)
@_json_option
@pass_app
@user_errors
def show(app: AppContext, item_id: int, as_user: str | None, as_json: bool) -> None:
    """Show ITEM_ID: the answer, its sources, every current rating, gold info and any decision."""
    from audit.review import service as review_service

    with app.unit_of_work() as session:
        detail = review_service.review_item_detail(session, actor=_actor(session, as_user), item_id=item_id)
    emit(dataclasses.asdict(detail), as_json=as_json, human=_detail_text)


@review.command("claim")
@click.argument("item_id", type=int)
@_as_option(required=True)
@pass_app
@user_errors
def claim(app: AppContext, item_id: int, as_user: str) -> None:
    """Claim ITEM_ID for the SME given with --as."""
    from audit.review import service as review_service

    with app.unit_of_work() as session:
        state = review_service.claim(session, actor=_actor(session, as_user), item_id=item_id)
    click.echo(f"item {state.item_id} claimed by {state.claimed_by} (version {state.row_version})")


@review.command("release")
@click.argument("item_id", type=int)
@_as_option(required=True)
@pass_app
@user_errors
def release(app: AppContext, item_id: int, as_user: str) -> None:
    """Give back ITEM_ID, claimed by the SME given with --as."""
    from audit.review import service as review_service

    with app.unit_of_work() as session:
        state = review_service.release(session, actor=_actor(session, as_user), item_id=item_id)
    click.echo(f"item {state.item_id} is open again (version {state.row_version})")


def _expected_version(session: Session, actor: User | None, item_id: int, given: int | None) -> int:
    from audit.review import service as review_service

    if given is not None:
        return given
    return review_service.current_version(session, actor=actor, item_id=item_id)


def _version_option(func: Any) -> Any:
    return click.option(
        "--expected-version",
        type=int,
        help="Refuse if the item changed since this version (see `review show`). Default: the current version.",
    )(func)


@review.command("confirm")
@click.argument("item_id", type=int)
@_as_option(required=True)
@click.option("--root-cause", type=click.Choice(ROOT_CAUSES), required=True)
@click.option("--corrected-answer", help="The correct answer (required for content root causes).")
@click.option(
    "--corrected-answer-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read the corrected answer from a UTF-8 file.",
)
@click.option("--document", "correct_document_id", type=int, help="Id of the document that holds the right answer.")
@click.option("--note", help="Why (kept with the decision).")
@_version_option
@_json_option
@pass_app
@user_errors
def confirm(
    app: AppContext,
    item_id: int,
    as_user: str,
    root_cause: str,
    corrected_answer: str | None,
    corrected_answer_file: Path | None,
    correct_document_id: int | None,
    note: str | None,
    expected_version: int | None,
    as_json: bool,
) -> None:
    """Confirm ITEM_ID with a root cause (and the corrected answer)."""
    from audit.review import service as review_service

    if corrected_answer and corrected_answer_file:
        raise click.UsageError("give --corrected-answer or --corrected-answer-file, not both")
    if corrected_answer_file is not None:
        try:
            corrected_answer = corrected_answer_file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ValidationError(f"{corrected_answer_file}: not UTF-8 text ({exc.reason})") from exc
    with app.unit_of_work() as session:
        actor = _actor(session, as_user)
        decision = review_service.confirm(
            session,
            actor=actor,
            item_id=item_id,
            root_cause=root_cause,
            corrected_answer=corrected_answer,
            note=note,
            correct_document_id=correct_document_id,
            expected_row_version=_expected_version(session, actor, item_id, expected_version),
        )
    emit(
        dataclasses.asdict(decision),
        as_json=as_json,
        human=lambda d: f"item {d['item_id']} confirmed by {d['sme']} ({d['root_cause']})",
    )


@review.command("dismiss")
@click.argument("item_ids", type=int, nargs=-1, required=True)
@_as_option(required=True)
@click.option("--note", help="Why the answer is fine.")
@_version_option
@_json_option
@pass_app
@user_errors
def dismiss(
    app: AppContext,
    item_ids: tuple[int, ...],
    as_user: str,
    note: str | None,
    expected_version: int | None,
    as_json: bool,
) -> None:
    """Dismiss ITEM_IDS (several at once need --note; items someone else decided are reported)."""
    from audit.review import service as review_service

    with app.unit_of_work() as session:
        actor = _actor(session, as_user)
        if len(item_ids) == 1:
            decision = review_service.dismiss(
                session,
                actor=actor,
                item_id=item_ids[0],
                note=note,
                expected_row_version=_expected_version(session, actor, item_ids[0], expected_version),
            )
            result: dict[str, Any] = {"dismissed": [decision.item_id], "conflicts": []}
        else:
            if expected_version is not None:
                raise click.UsageError("--expected-version applies to a single item")
            bulk = review_service.bulk_dismiss(session, actor=actor, item_ids=item_ids, note=note or "")
            result = {"dismissed": list(bulk.dismissed), "conflicts": list(bulk.conflicts)}
    emit(
        result,
        as_json=as_json,
        human=lambda r: "\n".join(
            [f"dismissed {len(r['dismissed'])} item(s): {', '.join(map(str, r['dismissed'])) or '-'}"]
            + [f"not dismissed: {c}" for c in r["conflicts"]]
        ),
    )


@click.command("route")
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
    help="Only ratings given at or after this UTC time (default: every current rating).",
)
@_json_option
@pass_app
@user_errors
def route(app: AppContext, since: dt.datetime | None, as_json: bool) -> None:
    """Open or extend review items from the current ratings (low score, bias flag, disagreement, gold miss)."""
    from audit.review import routing

    with app.unit_of_work() as session:
        summary = routing.route(session, actor=None, since=since.replace(tzinfo=dt.UTC) if since else None)
    emit(
        dataclasses.asdict(summary),
        as_json=as_json,
        human=lambda s: (
            f"checked {s['answers_checked']} answers: opened {s['items_opened']} review items, "
            f"added reasons to {s['items_extended']}"
        ),
    )


COMMANDS = [review, route]
