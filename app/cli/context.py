"""What every command shares: settings, the engine, a unit of work, output helpers, errors.

Imports only click at module level: SQLAlchemy and the settings load when a command first uses the
database, so a command's ``--help`` (which imports this module) stays instant.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import click

from audit.errors import AuditloopError

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

    from audit.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])


class AppContext:
    """Created once per invocation; settings and the engine are built on first use."""

    def __init__(self) -> None:
        self._settings: Settings | None = None
        self._engine: Engine | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from audit.settings import load_settings

            self._settings = load_settings()
        return self._settings

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from audit.db import make_engine

            self._engine = make_engine(self.settings.database_url)
        return self._engine

    def require_schema(self) -> None:
        from audit import schema  # Alembic: imported by the commands that touch the database

        if not schema.is_up_to_date(self.engine):
            raise AuditloopError("the database schema is not up to date: run `auditloop db upgrade` first")

    @contextlib.contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        """The command owns the transaction: commit on success, roll back on any error."""
        from audit.db import make_session_factory

        self.require_schema()
        session = make_session_factory(self.engine)()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


pass_app = click.make_pass_decorator(AppContext, ensure=True)


def user_errors(func: F) -> F:
    """Turn AuditloopError (and a database that cannot be reached) into exit code 1 with one line."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from sqlalchemy.exc import OperationalError

        try:
            return func(*args, **kwargs)
        except AuditloopError as exc:
            raise click.ClickException(str(exc)) from exc
        except OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
            raise click.ClickException(f"database error: {reason}") from exc

    return wrapper  # type: ignore[return-value]


def emit(data: Any, *, as_json: bool, human: Callable[[Any], str] | None = None) -> None:
    """Print data as JSON (``--json``) or as text for people."""
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))
    elif human is not None:
        click.echo(human(data))
    else:
        click.echo(str(data))


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    if not rows:
        return "(none)"
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns), "  ".join("-" * widths[c] for c in columns)]
    lines += ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


def read_secret(prompt: str, *, from_stdin: bool, confirm: bool = True) -> str:
    """A password from stdin (``--password-stdin``) or an interactive prompt, never from argv."""
    if from_stdin:
        value = sys.stdin.readline().rstrip("\n")
        if not value:
            raise AuditloopError("no password on standard input")
        return value
    return str(click.prompt(prompt, hide_input=True, confirmation_prompt=confirm))
