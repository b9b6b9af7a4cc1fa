"""``auditloop daily``: the whole daily cycle, for cron — answer the day's question feed (when there
is one), then sample → assign → route → propose and auto-apply fixes → evaluate triggers.

Example crontab line (06:00 UTC every day; the cycle is idempotent, so a rerun is harmless):

    0 6 * * *  cd /srv/auditloop && AUDITLOOP_DATABASE_URL=... .venv/bin/auditloop daily --json >> logs/daily.jsonl 2>> logs/daily.err
"""

from __future__ import annotations

import datetime as dt
import importlib.util
from pathlib import Path
from typing import Any

import click

from app.cli.context import AppContext, emit, pass_app, user_errors
from audit.errors import AuditloopError

# Domain code is imported inside the commands, so `--help` loads none of it (see app/cli/main.py).


def feed_path(data_dir: Path, day: dt.date) -> Path:
    """Where the production system drops the day's questions: ``DATA_DIR/feed/YYYY-MM-DD.jsonl``."""
    return data_dir / "feed" / f"{day.isoformat()}.jsonl"


def _say(message: str) -> None:
    click.echo(message, err=True)


def answer_feed(app: AppContext, feed: Path) -> dict[str, Any]:
    """Answer the feed's questions with the champion; idempotent (answers keyed by external id)."""
    if importlib.util.find_spec("training.assistant") is None:
        return {"file": str(feed), "skipped": "the model side (training) is not installed"}
    try:
        from training import assistant
        from training.retrieval import current_documents
    except ImportError as exc:
        raise AuditloopError(f"the model side cannot be loaded: {exc}") from exc

    questions = assistant.read_questions(feed)
    with app.unit_of_work() as session:
        version = assistant.resolve_model_version(session, None)
        pending, already = assistant.plan_answers(
            session, actor=None, questions=questions, model_version=version, source_name=str(feed)
        )
        documents = current_documents(session)
        session.expunge(version)
    inserted = 0
    if pending:
        # generate outside any transaction; store each chunk in a short one
        backend = assistant.backend_for_version(app.settings, version, prefer="auto", device=None, progress=_say)
        retriever = assistant.retriever_for_version(version, documents)
        chunk = 64
        with click.progressbar(
            length=len(pending), label="answering the feed", file=click.get_text_stream("stderr")
        ) as bar:
            for start in range(0, len(pending), chunk):
                generated = assistant.generate_answers(
                    pending[start : start + chunk], backend=backend, retriever=retriever, k=3, max_new_tokens=64
                )
                with app.unit_of_work() as session:
                    inserted += assistant.store_answers(session, actor=None, answers=generated, model_version=version)
                bar.update(len(generated))
    return {"file": str(feed), "questions": len(questions), "answered": inserted, "already_stored": already}


@click.command("daily")
@click.option(
    "--date",
    "day",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="The cycle's date, YYYY-MM-DD (default: today, UTC). The sample covers the answers before it.",
)
@click.option("--no-feed", is_flag=True, help="Skip answering the day's question feed.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@pass_app
@user_errors
def daily(app: AppContext, day: dt.datetime | None, no_feed: bool, as_json: bool) -> None:
    """Run the daily cycle for a date. Safe to run twice: the second run changes nothing."""
    from audit import daily as daily_cycle

    cycle_date = day.date() if day else dt.datetime.now(dt.UTC).date()
    feed = feed_path(app.settings.data_dir, cycle_date)
    app.require_schema()
    feed_result: dict[str, Any] | None = None
    if not no_feed and feed.is_file():
        try:
            feed_result = answer_feed(app, feed)
        except AuditloopError as exc:
            # the audit steps do not need today's answers: run them, then fail so cron reports it
            feed_result = {"file": str(feed), "error": str(exc)}
    with app.unit_of_work() as session:
        summary = daily_cycle.run_daily(session, day=cycle_date)
    data = {**summary.as_dict(), "feed": feed_result or {"file": str(feed), "skipped": "no feed for this date"}}

    def human(d: dict[str, Any]) -> str:
        lines = summary.lines()
        f = d["feed"]
        if "skipped" in f:
            feed_line = f"  feed      {f['skipped']} ({f['file']})"
        elif "error" in f:
            feed_line = f"  feed      FAILED ({f['file']}): {f['error']}"
        else:
            feed_line = f"  feed      {f['questions']} questions: {f['answered']} answered, {f['already_stored']} already stored"
        return "\n".join([lines[0], feed_line, *lines[1:]])

    emit(data, as_json=as_json, human=human)
    if feed_result is not None and "error" in feed_result:
        raise click.ClickException(f"the question feed was not answered: {feed_result['error']}")


COMMANDS = [daily]
