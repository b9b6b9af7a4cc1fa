"""The CLI starts at once: ``--help`` imports only click, every command's ``--help`` imports no database,
numeric or model code, commands that need no model import none of the model stack, and
``auditloop --help`` lists each command by its own first sentence."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from sqlalchemy.orm import Session

from app.cli.main import COMMANDS, cli
from audit.db import make_engine
from tests import factories as f

ROOT = Path(__file__).resolve().parents[2]

# What a command that needs no model must not import (the list; seconds of CPU each).
MODEL_STACK = ("torch", "transformers", "peft", "mlflow", "streamlit", "sklearn")
# What no command's or group's --help may import (issue #17: each --help under half a second of CPU; these
# took 0.3 to 2 s between them).
HEAVY_FOR_HELP = ("sqlalchemy", "numpy", "pandas", "torch", "transformers", "streamlit", "sklearn", "scipy")

# Runs the CLI in a fresh interpreter (argv from the command line, one invocation per ';'-joined
# group), then prints the top-level packages that were imported, as JSON.
PROBE = """
import json, sys
from click.testing import CliRunner
from app.cli.main import cli
for args in json.loads(sys.argv[1]):
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, (args, result.output)
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def imported_after(invocations: list[list[str]], env: dict[str, str] | None = None) -> set[str]:
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(invocations)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return set(json.loads(completed.stdout.splitlines()[-1]))


def test_help_and_version_import_no_database_or_model_code() -> None:
    modules = imported_after([["--help"], ["--version"]])
    assert "click" in modules
    assert not modules & {"sqlalchemy", "alembic", "numpy", "pandas", *MODEL_STACK}


def test_a_command_help_imports_no_model_stack() -> None:
    invocations = [[name, "--help"] for name in COMMANDS] + [["demo", "loop", "--help"]]
    assert not imported_after(invocations) & set(MODEL_STACK)


def command_paths() -> list[list[str]]:
    """Every group and command below ``auditloop``, as the arguments that reach it (``["review", "show"]``)."""
    ctx = click.Context(cli)
    paths: list[list[str]] = []

    def walk(command: click.Command, path: list[str]) -> None:
        paths.append(path)
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None
                walk(sub, [*path, name])

    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        assert command is not None
        walk(command, [name])
    return paths


COMMAND_PATHS = command_paths()


def test_the_help_checks_reach_every_group_and_subcommand() -> None:
    # 21 top-level names; subcommands: base-model 3, dataset 5, db 3, demo 2 (loop from its extension),
    # departments 2, export 1, fixes 5, ingest 6, model 6, retrieval 1, review 6, users 5
    assert len(COMMAND_PATHS) == 21 + 3 + 5 + 3 + 2 + 2 + 1 + 5 + 6 + 6 + 1 + 6 + 5
    assert {("demo", "loop"), ("ingest", "ratings"), ("review", "confirm"), ("report",)} <= set(
        map(tuple, COMMAND_PATHS)
    )


@pytest.mark.parametrize("path", COMMAND_PATHS, ids=" ".join)
def test_each_help_imports_no_database_numeric_or_model_code(path: list[str]) -> None:
    """One fresh interpreter per command: what one help imports cannot hide what another does."""
    assert not imported_after([[*path, "--help"]]) & set(HEAVY_FOR_HELP)


@pytest.fixture
def env(sqlite_url: str, tmp_path: Path) -> dict[str, str]:
    engine = make_engine(sqlite_url)
    with Session(engine) as session:
        hr = f.department(session, "HR")
        f.document(session, dept=hr, family="POL-1")
        model = f.model_version(session)
        day = dt.datetime(2026, 11, 27, 8, tzinfo=dt.UTC)
        for i in range(12):
            f.answer(session, dept=hr, model=model, created_at=day + dt.timedelta(minutes=i))
        f.user(session, username="ann")
        f.user(session, role="sme", username="sam", departments=[hr])
        f.rating(session, ans=f.answer(session, dept=hr, model=model), auditor=f.user(session), accuracy=1)
        session.commit()
    engine.dispose()
    answers = tmp_path / "answers.jsonl"
    answers.write_text(
        json.dumps(
            {
                "external_id": "a-1",
                "question": "How many days of leave?",
                "answer": "Twenty-five.",
                "asker_department": "HR",
                "model_version": "prod-1",
                "created_at": "2026-11-27T10:00:00Z",
                "sources": [{"document_id": "POL-1@v1", "department": "HR", "score": 0.9}],
            }
        )
        + "\n",
        encoding="utf-8",
    )
    return {
        "AUDITLOOP_DATA_DIR": str(tmp_path / "data"),
        "AUDITLOOP_DATABASE_URL": sqlite_url,
        "ANSWERS_FILE": str(answers),
    }


def test_commands_that_need_no_model_import_none_of_the_model_stack(env: dict[str, str]) -> None:
    invocations = [
        ["ingest", "answers", env["ANSWERS_FILE"]],
        ["sample", "--date", "2026-11-28", "--size", "5"],
        ["daily", "--date", "2026-11-29", "--no-feed"],
        ["route"],
        ["review", "list"],
        ["users", "list"],
        ["report", "quality"],
        ["report", "agreement"],
        ["report", "funnel"],
    ]
    assert not imported_after(invocations, env) & set(MODEL_STACK)


def test_the_help_summaries_are_each_command_first_sentence() -> None:
    ctx = click.Context(cli)
    for name, entry in COMMANDS.items():
        command = cli.get_command(ctx, name)
        assert command is not None and command.name == name
        assert command.get_short_help_str(limit=10_000) == entry.summary, name


def test_the_demo_group_carries_the_loop_added_by_its_extension() -> None:
    demo = cli.get_command(click.Context(cli), "demo")
    assert isinstance(demo, click.Group) and {"seed", "loop"} <= set(demo.commands)


def test_a_session_resolves_every_foreign_key_when_the_command_imported_one_model_module() -> None:
    """The CLI imports only the modules its command needs; a session must still know every table
    (``auditloop demo seed`` once failed on examples.origin_review_id -> review_items)."""
    code = (
        "from audit.db import make_engine, make_session_factory\n"
        "from audit.knowledge.models import Example\n"
        "make_session_factory(make_engine('sqlite://'))\n"
        "print(sorted({fk.column.table.name for fk in Example.__table__.foreign_keys}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "review_items" in done.stdout
