"""Dataset versions: content-addressed hashes, no duplicate versions, diff, rollback, and the CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audit.db import make_engine, make_session_factory
from audit.knowledge import datasets
from audit.knowledge.datasets import ExampleRecord, content_hash
from audit.knowledge.models import DatasetVersion, Example
from tests import factories as f


def _cli():  # type: ignore[no-untyped-def]
    """The `auditloop` command, imported when a test needs it (it loads every command module)."""
    from app.cli.main import cli

    return cli


def _record(example_id: int, question: str, answer: str = "A.", weight: int = 1) -> ExampleRecord:
    return ExampleRecord(example_id, question, answer, "HR", ["HR-1@v1"], "curated", f"hash-{question}", weight)


def test_content_hash_is_sha256_of_the_canonical_lines() -> None:
    record = _record(1, "Q?")
    line = json.dumps(
        {"answer": "A.", "department": "HR", "question": "Q?", "sources": ["HR-1@v1"], "weight": 1},
        sort_keys=True,
        separators=(",", ":"),
    )
    assert content_hash([record]) == hashlib.sha256((line + "\n").encode()).hexdigest()


def test_content_hash_ignores_order_and_row_ids_but_not_content_or_weight() -> None:
    records = [_record(1, "Q1?"), _record(2, "Q2?"), _record(3, "Q3?")]
    renumbered = [_record(30, "Q3?"), _record(10, "Q1?"), _record(20, "Q2?")]
    assert content_hash(records) == content_hash(list(reversed(records))) == content_hash(renumbered)
    assert content_hash(records) != content_hash([*records[:2], _record(3, "Q3?", answer="B.")])
    assert content_hash(records) != content_hash([*records[:2], _record(3, "Q3?", weight=2)])


def test_same_content_gives_the_same_version(session: Session) -> None:
    hr = f.department(session, "HR")
    f.example(session, dept=hr, question="Q1?")
    f.example(session, dept=hr, question="Q2?")
    first, created = datasets.create_version(session, actor=None, change_log=[{"kind": "seed"}])
    again, created_again = datasets.create_version(session, actor=None, change_log=[{"kind": "again"}])
    assert created and not created_again and again.id == first.id
    assert session.scalar(select(func.count()).select_from(DatasetVersion)) == 1
    assert first.example_count == 2 and first.counts_by_department == {"HR": 2}
    assert first.is_current


def test_versions_form_a_chain_and_diff_by_department(session: Session) -> None:
    hr, legal = f.department(session, "HR"), f.department(session, "Legal")
    a = f.example(session, dept=hr, question="A?")
    b = f.example(session, dept=legal, question="B?")
    v1, _ = datasets.create_version(session, actor=None, change_log=[])
    a.status = "quarantined"
    c = f.example(session, dept=hr, question="C?")
    d = f.example(session, dept=hr, question="D?")
    session.flush()
    v2, created = datasets.create_version(session, actor=None, change_log=[{"fix": 1}], department_weights={"Legal": 3})

    assert created and v2.parent_id == v1.id and v2.number == v1.number + 1
    diff = datasets.diff_versions(session, v1.number, v2.number)
    assert sorted(r.example_id for r in diff.added) == [c.id, d.id]
    assert [r.example_id for r in diff.removed] == [a.id]
    assert [(r.example_id, old, r.weight) for r, old in diff.reweighted] == [(b.id, 1, 3)]
    assert diff.by_department() == {
        "HR": {"added": 2, "removed": 1, "reweighted": 0},
        "Legal": {"added": 0, "removed": 0, "reweighted": 1},
    }
    reverse = datasets.diff_versions(session, v2.number, v1.number)
    assert [r.example_id for r in reverse.added] == [a.id]


def test_rolling_back_uses_an_earlier_version_and_same_content_returns_to_it(session: Session) -> None:
    hr = f.department(session, "HR")
    a = f.example(session, dept=hr, question="A?")
    v1, _ = datasets.create_version(session, actor=None, change_log=[])
    f.example(session, dept=hr, question="B?")
    v2, _ = datasets.create_version(session, actor=None, change_log=[])
    assert datasets.current_version(session).id == v2.id  # type: ignore[union-attr]

    datasets.use_version(session, actor=None, number=v1.number)
    assert datasets.current_version(session).id == v1.id  # type: ignore[union-attr]
    assert [r.example_id for r in datasets.examples_for_version(session, v1.id)] == [a.id]

    datasets.use_version(session, actor=None, number=v2.number)
    back, created = datasets.create_version(session, actor=None, change_log=[])
    assert back.id == v2.id and not created


def test_per_example_weights_override_department_weights(session: Session) -> None:
    hr = f.department(session, "HR")
    a = f.example(session, dept=hr, question="A?")
    b = f.example(session, dept=hr, question="B?")
    version, _ = datasets.create_version(
        session, actor=None, change_log=[], weights={a.id: 5}, department_weights={"HR": 2}
    )
    weights = {r.example_id: r.weight for r in datasets.examples_for_version(session, version.id)}
    assert weights == {a.id: 5, b.id: 2}


def test_an_empty_dataset_is_a_version_too(session: Session) -> None:
    version, created = datasets.create_version(session, actor=None, change_log=[])
    assert created and version.example_count == 0
    assert version.content_hash == hashlib.sha256(b"").hexdigest()


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def cli_env(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AUDITLOOP_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("AUDITLOOP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    return sqlite_url


def _seed_two_versions(url: str) -> None:
    engine = make_engine(url)
    with make_session_factory(engine).begin() as s:
        hr = f.department(s, "HR")
        first = f.example(s, dept=hr, question="Old?")
        datasets.create_version(s, actor=None, change_log=[{"kind": "seed"}])
        s.execute(Example.__table__.update().where(Example.id == first.id).values(status="retired"))
        f.example(s, dept=hr, question="New?")
        datasets.create_version(s, actor=None, change_log=[{"fix": 7, "kind": "add_example"}])
    engine.dispose()


def test_dataset_cli_lists_shows_diffs_and_rolls_back(cli_env: str) -> None:
    _seed_two_versions(cli_env)
    runner = CliRunner()

    listed = runner.invoke(_cli(), ["dataset", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert [(r["number"], r["current"], r["examples"]) for r in rows] == [(1, False, 1), (2, True, 1)]

    shown = runner.invoke(_cli(), ["dataset", "show", "current", "--json"])
    assert json.loads(shown.stdout)["changes"] == [{"fix": 7, "kind": "add_example"}]

    diff = runner.invoke(_cli(), ["dataset", "diff", "1", "2", "--json"])
    data = json.loads(diff.stdout)
    assert data["by_department"] == {"HR": {"added": 1, "removed": 1, "reweighted": 0}}
    assert [x["question"] for x in data["added"]] == ["New?"]
    human = runner.invoke(_cli(), ["dataset", "diff", "1", "2"])
    assert "+ [HR]" in human.stdout and "- [HR]" in human.stdout

    used = runner.invoke(_cli(), ["dataset", "use", "1"])
    assert used.exit_code == 0 and used.stdout.strip() == "dataset version 1 is now current (1 examples)"
    assert json.loads(runner.invoke(_cli(), ["dataset", "show", "current", "--json"]).stdout)["number"] == 1

    created = runner.invoke(_cli(), ["dataset", "create", "--json"])
    assert json.loads(created.stdout)["created"] is False  # same content as version 2
    assert json.loads(created.stdout)["number"] == 2


def test_dataset_cli_errors_are_one_line(cli_env: str) -> None:
    runner = CliRunner()
    missing = runner.invoke(_cli(), ["dataset", "show", "9"])
    assert missing.exit_code == 1
    assert missing.stderr.strip() == "Error: dataset version 9 does not exist (see `auditloop dataset list`)"
    bad = runner.invoke(_cli(), ["dataset", "diff", "one", "2"])
    assert bad.exit_code == 1 and "expected a number or 'current'" in bad.stderr


# --------------------------------------------------------------------------- canonical form


@settings(max_examples=300, deadline=None)
@given(
    question=st.text(),
    answer=st.text(),
    department=st.text(min_size=1),
    sources=st.lists(st.text()),
    weight=st.integers(min_value=1, max_value=1000),
)
def test_canonical_bytes_match_json_dumps_sorted_compact(
    question: str, answer: str, department: str, sources: list[str], weight: int
) -> None:
    """The fast encoder writes exactly what json.dumps would, so hashes never change with it."""
    record = ExampleRecord(1, question, answer, department, sources, "curated", "h", weight)
    try:
        reference = json.dumps(record.canonical(), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError:  # a lone surrogate cannot be UTF-8 at all: nothing to compare
        return
    assert datasets._CANONICAL.encode(record.canonical()) == reference
