"""Secrets: none in the repository; settings take credentials only from the environment (or a file it
names); passwords never reach the audit log, the CLI's output or its error messages.

That a password is never a command-line argument is tested in ``tests/app/test_cli_foundation.py``;
that the demo credentials file is private (0600) in ``tests/app/test_cli_demo.py``.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.auditlog.models import AuditLogEntry
from audit.org import service as org_service
from audit.settings import load_settings
from tests import factories as f

REPO = Path(__file__).resolve().parents[2]

SECRET_PATTERNS = {
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "AWS access key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "API key": re.compile(r"\bsk-[A-Za-z0-9]{32,}\b"),
    "password in a URL": re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@\"'`]+:(?P<secret>[^/\s@\"'`]+)@", re.I),
    "password literal": re.compile(
        r"(?i)\b(?:password|passwd|pwd|secret|secret_key|api_key|token)\b\s*[:=]\s*[\"'](?P<secret>[^\"'\s]{6,})[\"']"
    ),
}
# What documentation writes where a real secret would go
PLACEHOLDERS = re.compile(r"^(?:pass|password|secret|changeme|change_me|\*+|x+|\.\.\.|<[^>]*>|\$\{?\w+\}?)$", re.I)
# Tests may hold made-up passwords for throwaway databases (tests/factories.py TEST_PASSWORD, the URLs
# below); keys and tokens are refused there too
FIXTURE_DIRS = ("tests/",)
FIXTURE_KINDS = {"password literal", "password in a URL"}


def repository_files() -> list[Path]:
    """Tracked files and new files git does not ignore: what a commit would publish."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [REPO / name for name in listed.split("\0") if name and (REPO / name).is_file()]


def test_no_secret_is_hard_coded_anywhere_in_the_repository() -> None:
    files = repository_files()
    assert len(files) > 50, "the scan found almost nothing: is this the repository?"
    findings = []
    for path in files:
        relative = path.relative_to(REPO).as_posix()
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary
        for number, line in enumerate(text.splitlines(), 1):
            for kind, pattern in SECRET_PATTERNS.items():
                for match in pattern.finditer(line):
                    secret = match.groupdict().get("secret")
                    if secret is not None and PLACEHOLDERS.match(secret):
                        continue
                    if kind in FIXTURE_KINDS and relative.startswith(FIXTURE_DIRS):
                        continue
                    findings.append(f"{relative}:{number}: {kind}")
    assert findings == []


def test_no_streamlit_secrets_file_and_no_code_reading_one() -> None:
    """Credentials come from AUDITLOOP_* variables (or AUDITLOOP_SECRET_KEY_FILE, a mounted file), never
    from a secrets file shipped next to the code."""
    assert not (REPO / ".streamlit" / "secrets.toml").exists()
    readers = [
        f"{p.relative_to(REPO)}"
        for d in ("app", "audit", "training")
        for p in (REPO / d).rglob("*.py")
        if "st.secrets" in p.read_text(encoding="utf-8")
    ]
    assert readers == []


def test_settings_have_no_credential_of_their_own(tmp_path: Path) -> None:
    """With nothing in the environment the database is a local SQLite file (no user, no password); a
    PostgreSQL password is only ever what the environment says."""
    settings = load_settings({"AUDITLOOP_DATA_DIR": str(tmp_path)})
    assert settings.database_url.startswith("sqlite:///") and "@" not in settings.database_url
    assert settings.secret_key_file is None
    from_env = load_settings({"AUDITLOOP_DATABASE_URL": "postgresql://svc:from-the-env-123@db/auditloop"})
    assert "from-the-env-123" in from_env.database_url
    secret_file = tmp_path / "key"
    secret_file.write_text("k" * 32)
    assert load_settings({"AUDITLOOP_SECRET_KEY_FILE": str(secret_file)}).secret_key_file == secret_file


def test_passwords_never_reach_the_audit_log(session: Session) -> None:
    typed = "Typed-Password-Never-Logged-1"
    org_service.create_user(session, actor=None, username="newcomer", role="auditor", password=typed)
    org_service.reset_password(session, actor=None, username="newcomer", password=typed + "2")
    org_service.authenticate(session, "newcomer", typed)  # wrong now: the reset changed it
    org_service.authenticate(session, "newcomer", typed + "2")
    org_service.authenticate(session, "nobody.at.all", typed)
    session.flush()
    entries = session.scalars(select(AuditLogEntry)).all()
    assert len(entries) >= 5
    assert not [e.action for e in entries if typed in json.dumps(e.details) or typed in e.actor_name]


def _cli():  # type: ignore[no-untyped-def]
    from app.cli.main import cli

    return cli


def test_the_cli_never_prints_a_password_or_a_hash(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from audit.db import make_engine, make_session_factory

    monkeypatch.setenv("AUDITLOOP_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("AUDITLOOP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    engine = make_engine(sqlite_url)
    with make_session_factory(engine).begin() as s:
        user = f.user(s, username="listed", role="admin")
        password_hash = user.password_hash
    engine.dispose()
    assert password_hash
    listing = CliRunner().invoke(_cli(), ["users", "list", "--json"])
    assert listing.exit_code == 0, listing.output
    assert "listed" in listing.stdout
    assert password_hash not in listing.output and "$argon2" not in listing.output
    assert f.TEST_PASSWORD not in listing.output


def test_a_database_password_stays_out_of_error_messages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A database that cannot be reached is a one-line error that does not repeat the URL's password."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv(
        "AUDITLOOP_DATABASE_URL", f"postgresql+psycopg://svc:Hunter2-Secret-99@127.0.0.1:{port}/auditloop"
    )
    monkeypatch.setenv("AUDITLOOP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(_cli(), ["db", "current", "--json"])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ")
    assert "Hunter2-Secret-99" not in result.output


def test_the_scan_recognises_each_kind_of_secret() -> None:
    """The patterns themselves, on samples assembled at run time (so the repository scan never meets them)."""
    samples = {
        "private key": "-----BEGIN " + "RSA PRIVATE KEY-----",
        "AWS access key": "key = AKIA" + "ABCDEFGHIJKLMNOP",
        "GitHub token": "ghp_" + "a1" * 18,
        "Slack token": "xoxb-" + "1234567890-abc",
        "API key": "sk-" + "A" * 40,
        "password in a URL": "postgresql://svc:" + "s3cr3t-value" + "@db/app",
        "password literal": "PASSWORD = '" + "hunter22" + "'",
    }
    for kind, sample in samples.items():
        assert SECRET_PATTERNS[kind].search(sample), kind
    placeholder = SECRET_PATTERNS["password in a URL"].search("postgresql+psycopg://user:pass@host/db")
    assert placeholder is not None and PLACEHOLDERS.match(placeholder.group("secret"))
