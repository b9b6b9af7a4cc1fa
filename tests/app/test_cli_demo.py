"""``auditloop demo seed``: summary and --json, private credentials that log in, refusal on a full database."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from argon2 import PasswordHasher, Type
from click.testing import CliRunner, Result

from app.cli.demo_commands import demo
from app.cli.main import cli
from audit.db import make_engine, make_session_factory
from audit.org import passwords
from audit.org import service as org_service


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real argon2id at a low cost: the CLI runs in-process, 15 accounts stay fast."""
    monkeypatch.setattr(
        passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1, type=Type.ID)
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"AUDITLOOP_DATA_DIR": str(tmp_path / "data"), "AUDITLOOP_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"}


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_demo_is_a_group_other_modules_can_extend() -> None:
    assert isinstance(demo, click.Group) and "seed" in demo.commands
    assert cli.get_command(click.Context(cli), "demo") is demo


def test_seed_json_writes_private_credentials_that_log_in(env: dict[str, str], tmp_path: Path) -> None:
    assert run(env, "db", "upgrade").exit_code == 0
    result = run(env, "demo", "seed", "--days", "2", "--today", "2026-03-02", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["today"] == "2026-03-02" and data["days"] == 2 and data["seed"] == 7
    assert data["counts"]["examples"] == 1000 and data["counts"]["answers"] > 100  # a weekend: ~70 a day
    assert data["by_department"]["HR"]["examples"] * 4 <= data["by_department"]["Compliance"]["examples"]
    assert "examples (1000)" in result.stderr  # progress goes to stderr, not into the JSON

    credentials = Path(data["credentials_file"])
    assert credentials == tmp_path / "data" / "demo-credentials.txt"
    assert credentials.stat().st_mode & 0o777 == 0o600
    lines = [line.split() for line in credentials.read_text().splitlines() if not line.startswith("#")]
    assert {line[0] for line in lines} == {c["username"] for c in data["credentials"]}
    engine = make_engine(env["AUDITLOOP_DATABASE_URL"])
    try:
        with make_session_factory(engine)() as session:
            for username, role, password, *_ in lines:
                if username in {"admin", "lead", "sme.hr", "auditor6"}:
                    login = org_service.authenticate(session, username, password)
                    assert login.ok and login.user is not None and login.user.role == role
    finally:
        engine.dispose()


def test_seed_prints_a_summary_and_the_passwords_once(env: dict[str, str]) -> None:
    run(env, "db", "upgrade")
    result = run(env, "demo", "seed", "--days", "1", "--today", "2026-03-02")
    assert result.exit_code == 0, result.output
    out = result.stdout
    password = Path(env["AUDITLOOP_DATA_DIR"], "demo-credentials.txt").read_text().splitlines()[1].split()[2]
    assert out.count(password) == 1
    for expected in ("answers", "ratings", "gold_items", "HR", "Compliance", "Credentials file (mode 0600)"):
        assert expected in out


def test_seed_refuses_a_database_that_holds_data_with_one_line(env: dict[str, str]) -> None:
    run(env, "db", "upgrade")
    CliRunner().invoke(
        cli, ["users", "add", "carol", "--role", "auditor", "--password-stdin"], env=env, input="a-long-password-1\n"
    )
    result = run(env, "demo", "seed", "--days", "1")
    assert result.exit_code == 1
    assert result.stderr.strip().count("\n") == 0
    assert "already holds data (1 users)" in result.stderr


def test_seed_needs_a_migrated_database_and_valid_options(env: dict[str, str]) -> None:
    unmigrated = run(env, "demo", "seed", "--days", "1")
    assert unmigrated.exit_code == 1 and "auditloop db upgrade" in unmigrated.stderr
    assert run(env, "demo", "seed", "--days", "0").exit_code == 2
    assert run(env, "demo", "seed", "--today", "02/03/2026").exit_code == 2
