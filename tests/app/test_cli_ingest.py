"""``auditloop ingest``: exit codes, printed errors, the rejected-lines file and the JSON summary,
against a real SQLite file and a real PostgreSQL database (commits are real here)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.cli.main import cli
from audit.answers.models import Answer
from audit.db import make_engine
from audit.org.models import User
from audit.ratings.models import Rating
from audit.sampling.models import GoldItem
from tests import factories as f


def _seed(url: str) -> str:
    engine = make_engine(url)
    with Session(engine) as session:
        hr = f.department(session, "HR")
        f.document(session, dept=hr, family="POL-1")
        session.commit()
    engine.dispose()
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def both_url(request: pytest.FixtureRequest) -> str:
    """A seeded database on each backend, for the tests where real commits matter."""
    return _seed(str(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "migrated_postgres_url")))


@pytest.fixture
def sqlite_only_url(sqlite_url: str) -> str:
    """A seeded SQLite database (the service tests cover PostgreSQL's code paths)."""
    return _seed(sqlite_url)


def env_for(url: str, tmp_path: Path) -> dict[str, str]:
    return {"AUDITLOOP_DATA_DIR": str(tmp_path / "data"), "AUDITLOOP_DATABASE_URL": url}


@pytest.fixture
def env(sqlite_only_url: str, tmp_path: Path) -> dict[str, str]:
    return env_for(sqlite_only_url, tmp_path)


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def count(url: str, column: Any) -> int:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            return int(session.scalar(select(func.count(column))) or 0)
    finally:
        engine.dispose()


def answer(external_id: str, **changes: Any) -> dict[str, Any]:
    record = {
        "external_id": external_id,
        "question": "How many days of leave?",
        "answer": "Twenty-five.",
        "asker_department": "HR",
        "model_version": "prod-1",
        "created_at": "2026-03-01T10:00:00Z",
        "sources": [{"document_id": "POL-1@v1", "department": "HR", "score": 0.9}],
    }
    record.update(changes)
    return record


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


SUMMARY = re.compile(
    r"^answers: (\d+) read, (\d+) inserted, (\d+) updated, (\d+) unchanged, (\d+) rejected "
    r"in \d+\.\d s \([\d,]+ rows/s\); new model versions registered: 1$"
)


def test_ingest_prints_a_summary_and_is_idempotent(both_url, tmp_path) -> None:
    env, database_url = env_for(both_url, tmp_path), both_url
    path = write_jsonl(tmp_path / "answers.jsonl", [answer("a-1"), answer("a-2")])
    first = run(env, "ingest", "answers", str(path))
    assert first.exit_code == 0, first.output
    match = SUMMARY.match(first.stdout.strip())
    assert match is not None, first.stdout
    assert match.groups() == ("2", "2", "0", "0", "0")
    again = run(env, "ingest", "answers", str(path), "--json")
    assert again.exit_code == 0
    data = json.loads(again.stdout)
    assert (data["read"], data["inserted"], data["unchanged"], data["stored"]) == (2, 0, 2, True)
    assert data["errors"] == [] and data["rejected_file"] is None
    assert count(database_url, Answer.id) == 2


def test_invalid_lines_are_printed_and_nothing_is_stored(both_url, tmp_path) -> None:
    env, database_url = env_for(both_url, tmp_path), both_url
    path = write_jsonl(
        tmp_path / "bad.jsonl",
        [answer("a-1"), answer("a-2", asker_department="Sales"), answer("a-3", created_at="2026-03-01T10:00:00")],
    )
    result = run(env, "ingest", "answers", str(path))
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-3:] == [
        f"{path}:2: asker_department: unknown department 'Sales' (known: HR)",
        f'{path}:3: created_at: "2026-03-01T10:00:00" has no time zone: add Z or an offset such as +01:00',
        f"Error: {path}: 2 of 3 lines are invalid; nothing was stored "
        "(fix them, or use --skip-invalid to store the valid lines)",
    ]
    assert result.stdout == ""
    assert count(database_url, Answer.id) == 0
    as_json = run(env, "ingest", "answers", str(path), "--json")
    assert as_json.exit_code == 1
    data = json.loads(as_json.stdout)
    assert (data["stored"], data["rejected"], len(data["errors"])) == (False, 2, 2)


def test_long_error_lists_are_capped(env, tmp_path) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [answer(f"a-{i}", asker_department="Nowhere") for i in range(60)])
    result = run(env, "ingest", "answers", str(path))
    assert result.exit_code == 1
    printed = [line for line in result.stderr.splitlines() if line.startswith(str(path))]
    assert len(printed) == 50
    assert "... and 10 more" in result.stderr.splitlines()


def test_skip_invalid_commits_the_valid_lines(env, sqlite_only_url, tmp_path) -> None:
    database_url = sqlite_only_url
    path = write_jsonl(tmp_path / "mixed.jsonl", [answer("a-1"), answer("a-2", latency_ms=-5)])
    result = run(env, "ingest", "answers", str(path), "--skip-invalid")
    assert result.exit_code == 0, result.output
    assert f"rejected lines, with reasons: {path}.rejected.jsonl" in result.stdout
    [entry] = [json.loads(line) for line in Path(f"{path}.rejected.jsonl").read_text().splitlines()]
    assert entry["line"] == 2
    assert entry["errors"] == ["latency_ms: expected an integer from 0 to 2,147,483,647 or null, got -5"]
    assert json.loads(entry["raw"]) == answer("a-2", latency_ms=-5)
    assert count(database_url, Answer.id) == 1


def test_changed_content_needs_update(env, tmp_path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [answer("a-1")])
    assert run(env, "ingest", "answers", str(path)).exit_code == 0
    write_jsonl(path, [answer("a-1", answer="Thirty.")])
    refused = run(env, "ingest", "answers", str(path))
    assert refused.exit_code == 1
    assert f"{path}:1: external_id: answer 'a-1' is already stored with other content" in refused.stderr
    updated = run(env, "ingest", "answers", str(path), "--update", "--json")
    assert updated.exit_code == 0 and json.loads(updated.stdout)["updated"] == 1


def test_ratings_with_create_auditors(env, sqlite_only_url, tmp_path) -> None:
    database_url = sqlite_only_url
    write_jsonl(tmp_path / "a.jsonl", [answer("a-1")])
    assert run(env, "ingest", "answers", str(tmp_path / "a.jsonl")).exit_code == 0
    ratings = write_jsonl(
        tmp_path / "r.jsonl",
        [{"answer_external_id": "a-1", "auditor": "carol", "accuracy": 2, "created_at": "2025-09-01T12:00:00Z"}],
    )
    unknown = run(env, "ingest", "ratings", str(ratings))
    assert unknown.exit_code == 1 and "auditor: unknown user 'carol'" in unknown.stderr
    created = run(env, "ingest", "ratings", str(ratings), "--create-auditors")
    assert created.exit_code == 0, created.output
    assert "inactive auditor accounts created: 1" in created.stdout
    assert count(database_url, Rating.id) == 1 and count(database_url, User.id) == 1


def test_documents_and_examples(env, tmp_path) -> None:
    docs = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {
                "external_id": "POL-1@v2",
                "family": "POL-1",
                "department": "HR",
                "title": "Leave policy",
                "body": "Thirty days.",
                "version": 2,
                "effective_date": "2026-07-01",
            }
        ],
    )
    assert run(env, "ingest", "documents", str(docs)).stdout.startswith("documents: 1 read, 1 inserted")
    examples = write_jsonl(
        tmp_path / "e.jsonl",
        [
            {
                "external_id": "ex-1",
                "question": "Days?",
                "answer": "Thirty.",
                "department": "HR",
                "source_document_ids": ["POL-1@v2"],
            }
        ],
    )
    assert run(env, "ingest", "examples", str(examples)).stdout.startswith("examples: 1 read, 1 inserted")


@pytest.mark.parametrize(
    "args",
    [
        ["ingest", "answers", "missing.jsonl"],
        ["ingest", "answerz", "x.jsonl"],
        ["ingest", "answers"],
        ["ingest", "answers", "{file}", "--create-auditors"],
    ],
)
def test_usage_errors_exit_2(env, tmp_path, args: list[str]) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [answer("a-1")])
    result = run(env, *(a.format(file=path) for a in args))
    assert result.exit_code == 2, result.output


def through_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every answers file goes through the decoding worker, as a large file does (audit.ingest.pipeline)."""
    from audit.ingest import pipeline

    monkeypatch.setattr(pipeline, "PIPELINE_MIN_BYTES", 0)
    monkeypatch.setattr(pipeline, "available_cpus", lambda: 2)
    monkeypatch.setattr(pipeline, "spare_cpus", lambda: 1.0)


def test_through_the_worker_the_output_is_the_same(both_url, tmp_path, monkeypatch) -> None:
    env, database_url = env_for(both_url, tmp_path), both_url
    path = write_jsonl(
        tmp_path / "bad.jsonl",
        [answer("a-1"), answer("a-2", asker_department="Sales"), answer("a-3", created_at="2026-03-01T10:00:00")],
    )
    single = run(env, "ingest", "answers", str(path), "--json")
    through_worker(monkeypatch)
    piped = run(env, "ingest", "answers", str(path), "--json")
    assert (piped.exit_code, piped.stderr) == (single.exit_code, single.stderr) == (1, piped.stderr)
    assert {**json.loads(piped.stdout), "seconds": 0, "rows_per_second": 0} == {
        **json.loads(single.stdout),
        "seconds": 0,
        "rows_per_second": 0,
    }
    assert count(database_url, Answer.id) == 0
    stored = run(env, "ingest", "answers", str(path), "--skip-invalid")
    assert stored.exit_code == 0 and count(database_url, Answer.id) == 1
    assert [json.loads(line)["line"] for line in Path(f"{path}.rejected.jsonl").read_text().splitlines()] == [2, 3]


def test_a_failing_worker_is_one_clear_error(env, sqlite_only_url, tmp_path, monkeypatch) -> None:
    from audit.ingest import pipeline

    through_worker(monkeypatch)
    monkeypatch.setattr(pipeline, "WORKER_ARGS", ("-c", "import os; os._exit(9)"))
    path = write_jsonl(tmp_path / "answers.jsonl", [answer("a-1")])
    result = run(env, "ingest", "answers", str(path))
    assert result.exit_code == 1
    assert "Error: the worker process decoding the file failed: it stopped without finishing" in result.stderr
    assert result.stderr.rstrip().endswith("nothing was stored")
    assert count(sqlite_only_url, Answer.id) == 0


def test_gold_files_are_all_or_nothing_and_idempotent(both_url, tmp_path) -> None:
    env, database_url = env_for(both_url, tmp_path), both_url
    gold = {
        "question": "How many days of leave?",
        "reference_answer": "Twenty-five days.",
        "key_values": ["25 days"],
        "gold_document": "POL-1@v1",
        "department": "HR",
    }
    bad = write_jsonl(tmp_path / "bad.jsonl", [gold, {**gold, "question": "Other?", "key_values": []}])
    refused = run(env, "ingest", "gold", str(bad))
    assert refused.exit_code == 1
    assert f"{bad}:2: key_values: expected a list of 1 to 50 values" in refused.stderr
    assert count(database_url, GoldItem.id) == 0
    path = write_jsonl(tmp_path / "gold.jsonl", [gold])
    assert run(env, "ingest", "gold", str(path)).stdout.startswith("gold: 1 read, 1 inserted")
    assert run(env, "ingest", "gold", str(path)).stdout.startswith("gold: 1 read, 0 inserted, 0 updated, 1 unchanged")
    changed = write_jsonl(tmp_path / "changed.jsonl", [{**gold, "key_values": ["twenty-five days"]}])
    assert run(env, "ingest", "gold", str(changed)).exit_code == 1
    assert "1 updated" in run(env, "ingest", "gold", str(changed), "--update").stdout
    assert count(database_url, GoldItem.id) == 1
