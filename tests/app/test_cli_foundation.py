"""The CLI's db and users commands: exit codes, one-line errors, --json, passwords never in argv."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli.main import cli


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"AUDITLOOP_DATA_DIR": str(tmp_path / "data"), "AUDITLOOP_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"}


def run(env: dict[str, str], *args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args), env=env, input=input, catch_exceptions=False)


def test_help_lists_every_command_family() -> None:
    out = CliRunner().invoke(cli, ["--help"]).output
    for name in ("db", "users"):
        assert name in out


def test_db_upgrade_current_downgrade(env: dict[str, str]) -> None:
    assert run(env, "db", "current", "--json").exit_code == 0
    before = json.loads(run(env, "db", "current", "--json").output)
    assert before["current"] is None and before["up_to_date"] is False
    assert run(env, "db", "upgrade").exit_code == 0
    after = json.loads(run(env, "db", "current", "--json").output)
    assert after["up_to_date"] is True
    assert run(env, "db", "downgrade", "base", "--yes").exit_code == 0
    assert json.loads(run(env, "db", "current", "--json").output)["current"] is None


def test_commands_refuse_an_unmigrated_database_with_one_line(env: dict[str, str]) -> None:
    result = run(env, "users", "list")
    assert result.exit_code == 1
    assert "run `auditloop db upgrade` first" in result.output


def test_users_add_list_set_role_deactivate_reset(env: dict[str, str]) -> None:
    run(env, "db", "upgrade")
    assert (
        run(
            env, "users", "add", "carol", "--role", "auditor", "--password-stdin", input="a-very-long-password\n"
        ).exit_code
        == 0
    )
    rows = json.loads(run(env, "users", "list", "--json").output)
    assert rows == [
        {
            "username": "carol",
            "display_name": "carol",
            "role": "auditor",
            "departments": [],
            "active": True,
            "locked_until": None,
        }
    ]
    assert run(env, "users", "set-role", "carol", "lead").exit_code == 0
    assert (
        run(env, "users", "reset-password", "carol", "--password-stdin", input="another-long-password\n").exit_code == 0
    )
    assert run(env, "users", "deactivate", "carol").exit_code == 0
    rows = json.loads(run(env, "users", "list", "--json").output)
    assert rows[0]["role"] == "lead" and rows[0]["active"] is False


def test_user_errors_exit_1_and_usage_errors_exit_2(env: dict[str, str]) -> None:
    run(env, "db", "upgrade")
    weak = run(env, "users", "add", "dave", "--role", "auditor", "--password-stdin", input="short\n")
    assert weak.exit_code == 1 and "at least 12 characters" in weak.output
    assert run(env, "users", "set-role", "nobody", "lead").exit_code == 1
    assert run(env, "users", "add", "dave", "--role", "root").exit_code == 2
    assert run(env, "no-such-command").exit_code == 2


def test_password_is_never_an_argument() -> None:
    out = CliRunner().invoke(cli, ["users", "add", "--help"]).output
    assert "--password-stdin" in out and "--password " not in out


def test_bad_setting_is_a_one_line_error(env: dict[str, str]) -> None:
    result = run({**env, "AUDITLOOP_DATABASE_URL": "mysql://x@y/z"}, "db", "current")
    assert result.exit_code == 1
    assert (
        result.output.strip()
        == "Error: AUDITLOOP_DATABASE_URL: backend 'mysql' is not supported (use sqlite or postgresql)"
    )


def test_console_script_runs(env: dict[str, str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli.main", "--help"],
        capture_output=True,
        text=True,
        env={**env, "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert proc.returncode == 0 and "auditloop" in proc.stdout


def test_departments_add_and_list(env: dict[str, str]) -> None:
    run(env, "db", "upgrade")
    assert run(env, "departments", "add", "Legal", "HR").exit_code == 0
    assert [d["name"] for d in json.loads(run(env, "departments", "list", "--json").output)] == ["HR", "Legal"]
    duplicate = run(env, "departments", "add", "HR")
    assert duplicate.exit_code == 1 and "already exists" in duplicate.output
