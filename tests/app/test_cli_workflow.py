"""The workflow commands: sample, assign, release-expired, route and review, end to end on SQLite."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session

from app.cli.main import cli
from audit.db import make_engine
from tests import factories as f


@pytest.fixture
def env(sqlite_url: str, tmp_path: Path) -> dict[str, str]:
    engine = make_engine(sqlite_url)
    with Session(engine) as session:
        hr = f.department(session, "HR")
        model = f.model_version(session)
        for i in range(30):
            f.answer(
                session,
                dept=hr,
                model=model,
                confidence=-i / 10,
                created_at=dt.datetime(2026, 11, 27, 8, tzinfo=dt.UTC) + dt.timedelta(minutes=i),
            )
        for name in ("ann", "bob"):
            f.user(session, username=name)
        f.user(session, role="sme", username="sam", departments=[hr])
        f.rating(session, ans=f.answer(session, dept=hr, model=model), auditor=f.user(session), accuracy=1)
        session.commit()
    engine.dispose()
    return {"AUDITLOOP_DATA_DIR": str(tmp_path / "data"), "AUDITLOOP_DATABASE_URL": sqlite_url}


def run(env: dict[str, str], *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_sample_is_idempotent_and_assigns(env: dict[str, str]) -> None:
    first = run(env, "sample", "--date", "2026-11-28", "--size", "10", "--json")
    assert first.exit_code == 0, first.output
    data = json.loads(first.output)
    assert (
        data["created"] and data["items"] == 10 and data["population"] == 31
    )  # the rated answer was given that day too
    assert sum(data["assignments_by_auditor"].values()) == 12  # round(0.2 * 10) = 2 items rated twice
    again = json.loads(run(env, "sample", "--date", "2026-11-28", "--json").output)
    assert not again["created"] and again["batch_id"] == data["batch_id"]
    text = run(env, "sample", "--date", "2026-11-28").output
    assert "already drawn: sample" in text and "HR/low" in text
    assert json.loads(run(env, "assign", "--date", "2026-11-28", "--json").output)["created"] == 0
    missing = run(env, "assign", "--date", "2026-01-01")
    assert missing.exit_code == 1 and "no sample drawn for 2026-01-01" in missing.output
    assert json.loads(run(env, "release-expired", "--json").output)["expired_assignment_ids"] == []
    assert run(env, "sample", "--date", "28/11/2026").exit_code == 2


def test_route_and_review_commands(env: dict[str, str]) -> None:
    routed = json.loads(run(env, "route", "--json").output)
    assert routed == {"answers_checked": 1, "items_opened": 1, "items_extended": 0}
    queue = json.loads(run(env, "review", "list", "--as", "sam", "--json").output)
    assert [q["reasons"] for q in queue] == [["low_score"]]
    item_id = str(queue[0]["item_id"])
    shown = json.loads(run(env, "review", "show", item_id, "--json").output)
    assert shown["ratings"][0]["accuracy"] == 1
    assert "claimed by sam" in run(env, "review", "claim", item_id, "--as", "sam").output
    refused = run(env, "review", "confirm", item_id, "--as", "sam", "--root-cause", "hallucination")
    assert refused.exit_code == 1
    assert refused.output.strip() == "Error: corrected_answer: required when the root cause is hallucination"
    not_sme = run(env, "review", "claim", item_id, "--as", "ann")
    assert not_sme.exit_code == 1 and "may not review" in not_sme.output
    confirmed = run(
        env,
        "review",
        "confirm",
        item_id,
        "--as",
        "sam",
        "--root-cause",
        "hallucination",
        "--corrected-answer",
        "The right answer.",
        "--json",
    )
    assert confirmed.exit_code == 0 and json.loads(confirmed.output)["root_cause"] == "hallucination"
    late = run(env, "review", "dismiss", item_id, "--as", "sam")
    assert late.exit_code == 1 and f"item {item_id} was decided by sam" in late.output


def test_review_list_pages_and_says_how_many_more(env: dict[str, str]) -> None:
    engine = make_engine(env["AUDITLOOP_DATABASE_URL"])
    with Session(engine) as session:
        hr, model = f.department(session, "HR"), f.model_version(session, "v9")
        for _ in range(4):  # four more low scores: five review items in all
            f.rating(session, ans=f.answer(session, dept=hr, model=model), auditor=f.user(session), accuracy=1)
        session.commit()
    engine.dispose()
    assert json.loads(run(env, "route", "--json").output)["items_opened"] == 5
    first = run(env, "review", "list", "--limit", "2")
    assert first.output.rstrip().endswith("items 1-2 of 5; 3 more: --offset 2")
    last = run(env, "review", "list", "--limit", "2", "--offset", "4")
    assert last.output.rstrip().endswith("items 5-5 of 5")
    assert run(env, "review", "list", "--offset", "9").output.rstrip().endswith("no items at offset 9 (5 in all)")
    page = CliRunner().invoke(cli, ["review", "list", "--limit", "3", "--json"], env=env)
    assert len(json.loads(page.stdout)) == 3 and page.stderr.strip() == "items 1-3 of 5; 2 more: --offset 3"
    everything = json.loads(run(env, "review", "list", "--json").output)
    assert [r["item_id"] for r in everything][:3] == [r["item_id"] for r in json.loads(page.stdout)]


def test_review_show_names_the_answer_by_its_external_id(env: dict[str, str]) -> None:
    run(env, "route")
    (item,) = json.loads(run(env, "review", "list", "--json").output)
    shown = json.loads(run(env, "review", "show", str(item["item_id"]), "--json").output)
    assert shown["answer_external_id"].startswith("ans-")
    text = run(env, "review", "show", str(item["item_id"])).output
    assert f"answer {shown['answer_external_id']} (id {shown['answer_id']})" in text
