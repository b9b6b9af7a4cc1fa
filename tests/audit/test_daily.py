"""The daily cycle: every step runs, and a second run for the same date changes nothing."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audit import daily
from audit.base import Base
from audit.db import make_engine, make_session_factory
from audit.fixes.models import DataFix
from audit.knowledge import datasets
from audit.modelops.models import TrainingJob
from audit.review.models import ReviewItem
from audit.triggers import service as triggers
from audit.triggers.policy import TriggersPolicy
from tests import factories as f


def _cli():  # type: ignore[no-untyped-def]
    """The `auditloop` command, imported when a test needs it (it loads every command module)."""
    from app.cli.main import cli

    return cli


DAY = dt.date(2026, 11, 28)
YESTERDAY_NOON = dt.datetime(2026, 11, 27, 12, tzinfo=dt.UTC)


def _row_counts(session: Session) -> dict[str, int]:
    session.flush()
    return {t.name: session.scalar(select(func.count()).select_from(t)) or 0 for t in Base.metadata.sorted_tables}


def _world(session: Session) -> dict:
    """Yesterday's answers, three auditors, a low rating to route, a confirmed review to fix."""
    hr, legal = f.department(session, "HR"), f.department(session, "Legal")
    model = f.model_version(session, alias="champion")
    auditors = [f.user(session, role="auditor") for _ in range(3)]
    sme = f.user(session, role="sme", departments=[hr])
    answers = [
        f.answer(session, dept=dept, model=model, created_at=YESTERDAY_NOON + dt.timedelta(minutes=i))
        for i, dept in enumerate([hr, legal] * 10)
    ]
    f.rating(session, ans=answers[0], auditor=auditors[0], accuracy=1, origin="import")
    f.example(session, dept=hr, question="Who approves leave?", answer="Your manager.")
    datasets.create_version(session, actor=None, change_log=[{"kind": "seed"}])
    reviewed = f.answer(
        session, dept=hr, model=model, question="How long is parental leave?", created_at=YESTERDAY_NOON
    )
    f.confirmed_review(session, ans=reviewed, sme=sme, root_cause="hallucination", corrected_answer="26 weeks.")
    # one applied fix is enough for a job today
    triggers.save_policy(session, actor=None, policy=TriggersPolicy(min_applied_fixes=1))
    return {"answers": answers}


def test_the_daily_cycle_runs_every_step_and_twice_changes_nothing(session: Session) -> None:
    _world(session)

    first = daily.run_daily(session, day=DAY)

    assert first.sample["created"] and first.sample["items"] > 0
    assert sum(first.sample["assignments_by_auditor"].values()) >= first.sample["items"]
    assert first.routing["items_opened"] == 1
    assert len(first.proposals["proposed"]) == 1 and len(first.applied["applied"]) == 1
    assert first.applied["version_created"] and first.applied["dataset_version"] == 2
    assert first.triggers["queued"]
    job = session.scalars(select(TrainingJob)).one()
    assert job.dataset_version_id == datasets.current_version(session).id  # type: ignore[union-attr]
    assert session.scalar(select(func.count()).select_from(ReviewItem)) == 2  # routed + the confirmed one
    assert session.scalar(select(DataFix.status)) == "applied"
    before = _row_counts(session)

    second = daily.run_daily(session, day=DAY)

    assert _row_counts(session) == before
    assert not second.sample["created"] and second.sample["batch_id"] == first.sample["batch_id"]
    assert second.routing["items_opened"] == second.routing["items_extended"] == 0
    assert second.proposals["proposed"] == [] and second.applied["applied"] == []
    assert not second.triggers["queued"]
    lines = second.lines()
    assert lines[1].startswith("  sample    already drawn: batch")


def test_a_day_without_answers_skips_the_sample_and_runs_the_rest(session: Session) -> None:
    _world(session)
    later = DAY + dt.timedelta(days=10)  # nothing was answered the day before

    summary = daily.run_daily(session, day=later)

    assert summary.sample["skipped"].startswith("no answers to sample between 2026-12-07 00:00")
    assert len(summary.applied["applied"]) == 1  # the confirmed review was still fixed
    assert summary.lines()[1].startswith("  sample    skipped: no answers to sample")


@pytest.fixture
def cli_env(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data_dir = tmp_path / "data"
    monkeypatch.setenv("AUDITLOOP_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("AUDITLOOP_DATA_DIR", str(data_dir))
    monkeypatch.chdir(tmp_path)
    engine = make_engine(sqlite_url)
    with make_session_factory(engine).begin() as s:
        _world(s)
    engine.dispose()
    return data_dir


def test_daily_cli_twice_prints_the_same_state_and_notes_the_missing_feed(cli_env: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(_cli(), ["daily", "--date", DAY.isoformat(), "--json"])
    assert first.exit_code == 0, first.output
    data = json.loads(first.stdout)
    assert data["date"] == "2026-11-28" and data["sample"]["created"]
    assert data["feed"] == {"file": str(cli_env / "feed" / "2026-11-28.jsonl"), "skipped": "no feed for this date"}

    second = runner.invoke(_cli(), ["daily", "--date", DAY.isoformat()])
    assert second.exit_code == 0, second.output
    assert "already drawn" in second.stdout
    assert "0 proposed, 0 refused; 0 auto-applied" in second.stdout
    assert triggers.ALREADY_ACTIVE in second.stdout or "no trigger fired" in second.stdout


def test_a_feed_that_cannot_be_answered_still_runs_the_audit_steps_and_fails(cli_env: Path) -> None:
    feed = cli_env / "feed" / "2026-11-28.jsonl"
    feed.parent.mkdir(parents=True)
    feed.write_text(json.dumps({"question": "Q?", "asker_department": "Nowhere"}) + "\n")

    result = CliRunner().invoke(_cli(), ["daily", "--date", DAY.isoformat(), "--json"])

    assert result.exit_code == 1
    assert result.stdout, result.stderr
    data = json.loads(result.stdout)
    assert data["sample"]["created"]  # the audit steps ran and were committed
    assert "asker_department: unknown department 'Nowhere'" in data["feed"]["error"]
    assert result.stderr.strip().splitlines()[-1].startswith("Error: the question feed was not answered:")
