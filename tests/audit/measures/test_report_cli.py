"""``auditloop report NAME``: JSON shapes, human tables, and one-line errors."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session

from app.cli.main import cli
from audit import schema
from audit.db import make_engine
from audit.measures.service import REPORT_NAMES
from tests import factories as f


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A migrated SQLite file with two departments' ratings, shared by the module's read-only tests."""
    folder = tmp_path_factory.mktemp("report-cli")
    url = f"sqlite:///{folder / 'cli.db'}"
    engine = make_engine(url)
    schema.upgrade(engine)
    with Session(engine) as session:
        model = f.model_version(session, "v1")
        auditors = [f.user(session, username=name) for name in ("alice", "bob")]
        for name, scores in (("Legal", [5, 4, 4]), ("HR", [2, 3, 1])):
            dept = f.department(session, name)
            for score in scores:
                ans = f.answer(session, dept=dept, model=model, created_at=dt.datetime(2026, 11, 2, 8, tzinfo=dt.UTC))
                for auditor in auditors:
                    f.rating(
                        session,
                        ans=ans,
                        auditor=auditor,
                        accuracy=score,
                        created_at=dt.datetime(2026, 11, 2, 12, tzinfo=dt.UTC),
                    )
        session.commit()
    engine.dispose()
    return {"AUDITLOOP_DATA_DIR": str(folder / "data"), "AUDITLOOP_DATABASE_URL": url}


def run(env: dict[str, str], *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, ["report", *args], env=env, catch_exceptions=False)


def test_fairness_json_shape(env: dict[str, str]) -> None:
    result = run(env, "fairness", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data["by_department"]) == {"HR", "Legal"}
    assert set(data["by_department"]["Legal"]) == {
        "ratings",
        "accuracy_mean",
        "completeness_mean",
        "relevance_mean",
        "coherence_mean",
        "bias_flag_rate",
        "sources_correct_rate",
        "reliable",
        "answers",
        "cites_other_share",
        "accuracy_when_citing_other",
        "accuracy_when_citing_own",
    }
    legal = data["by_department"]["Legal"]
    assert (legal["ratings"], legal["accuracy_mean"], legal["reliable"]) == (6, pytest.approx(13 / 3), False)
    assert data["accuracy_mean_difference"] == pytest.approx(13 / 3 - 2)
    assert data["accuracy_mean_ratio"] == pytest.approx(2 / (13 / 3))
    for metric in ("completeness_mean", "relevance_mean", "coherence_mean", "bias_flag_rate", "sources_correct_rate"):
        assert f"{metric}_difference" in data and f"{metric}_ratio" in data
    assert data["flag_matrix"] == {} and data["min_group_size"] == 30


def test_agreement_json_shape(env: dict[str, str]) -> None:
    data = json.loads(run(env, "agreement", "--json").output)
    assert set(data) == {"group", "min_shared_items", "dimensions", "pairs"}
    assert data["group"] == {"auditors": None, "role": None, "origins": None} and data["min_shared_items"] == 20
    assert set(data["dimensions"]["accuracy"]) == {"alpha_ordinal", "alpha_interval", "items", "ratings"}
    assert data["dimensions"]["accuracy"]["alpha_interval"] == pytest.approx(1.0)  # the two always agree
    assert data["dimensions"]["accuracy"]["items"] == 6
    assert data["dimensions"]["completeness"]["alpha_ordinal"] is None  # the factory's constant 4: no variation


@pytest.mark.parametrize("name", REPORT_NAMES)
def test_every_report_prints_tables(env: dict[str, str], name: str) -> None:
    result = run(env, name, "--from", "2026-11-01", "--to", "2026-11-30")
    assert result.exit_code == 0, result.output
    assert result.output.strip()
    assert json.loads(run(env, name, "--json").output) is not None


def test_quality_table_for_one_department(env: dict[str, str]) -> None:
    output = run(env, "quality", "--department", "HR", "--model-version", "v1").output
    assert "HR" in output and "Legal" not in output
    assert "2026-11-02" in output and "95% CI" in output


def test_errors_are_one_line_with_exit_1(env: dict[str, str]) -> None:
    for args in (["quality", "--department", "Sales"], ["funnel", "--from", "2026-11-05", "--to", "2026-11-01"]):
        result = run(env, *args)
        assert result.exit_code == 1
        assert len(result.output.strip().splitlines()) == 1
    assert "department 'Sales' not found" in run(env, "quality", "--department", "Sales").output


def test_usage_errors_exit_2(env: dict[str, str]) -> None:
    assert run(env, "vibes").exit_code == 2
    assert run(env, "quality", "--from", "yesterday").exit_code == 2


def test_unmigrated_database_is_refused(tmp_path: Path) -> None:
    env = {"AUDITLOOP_DATA_DIR": str(tmp_path), "AUDITLOOP_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"}
    result = run(env, "quality")
    assert result.exit_code == 1 and "auditloop db upgrade" in result.output


def test_agreement_by_group_from_the_command_line(env: dict[str, str]) -> None:
    result = run(env, "agreement", "--role", "auditor", "--origin", "app", "--no-pairs")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Raters: role auditor; origin app\n")
    assert "Cohen's kappa" not in result.output
    data = json.loads(run(env, "agreement", "--min-shared-items", "2", "--json").output)
    assert data["min_shared_items"] == 2
    unknown = run(env, "agreement", "--auditors", "nobody")
    assert unknown.exit_code == 1 and "no such user: nobody" in unknown.output
    assert run(env, "quality", "--role", "auditor").exit_code == 2


def test_metrics_vs_humans_options_from_the_command_line(env: dict[str, str]) -> None:
    result = run(env, "metrics-vs-humans", "--dimension", "completeness", "--sample", "5")
    assert result.exit_code == 0, result.output
    assert "completeness rating" in result.output and "Per model version (system level)" in result.output
    assert run(env, "quality", "--sample", "5").exit_code == 2
