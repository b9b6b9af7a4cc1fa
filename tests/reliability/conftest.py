"""Shared by the reliability tests: a fingerprint of the whole database (to prove a refused input
changed nothing), and the figures the tests measure, printed in the terminal summary."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from audit.models import Base  # importing audit.models registers every table on Base.metadata

# ("section", "line") pairs collected during the run, printed once at the end
FIGURES: list[tuple[str, str]] = []


def report(section: str, line: str) -> None:
    """Keep a measured figure for the summary (and print it for ``-s`` runs)."""
    FIGURES.append((section, line))
    print(f"[{section}] {line}")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    terminalreporter.section("auditloop reliability figures")
    for section, line in FIGURES:
        terminalreporter.write_line(f"{section}: {line}")


def fingerprint(session: Session) -> dict[str, tuple[int, str]]:
    """Every table's row count and a digest of its rows in primary-key order (what "unchanged" means).

    PostgreSQL digests each table server-side in one statement (md5 of the rows as text); SQLite,
    in-process and fast, hashes the rows here.
    """
    session.flush()
    tables = Base.metadata.sorted_tables
    if session.get_bind().dialect.name == "postgresql":
        parts = []
        for table in tables:
            order = ", ".join(f"t.{c.name}" for c in (table.primary_key.columns or table.columns))
            parts.append(
                f"SELECT '{table.name}', count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY {order}), '')) "
                f"FROM {table.name} t"
            )
        rows = session.execute(text(" UNION ALL ".join(parts)))
        return {name: (int(count), digest) for name, count, digest in rows}
    result: dict[str, tuple[int, str]] = {}
    for table in tables:
        order = list(table.primary_key.columns) or list(table.columns)
        digest = hashlib.sha256()
        count = 0
        for row in session.execute(select(table).order_by(*order)):
            digest.update(repr(tuple(row)).encode("utf-8", "surrogatepass"))
            count += 1
        result[table.name] = (count, digest.hexdigest())
    return result


def changed_tables(before: dict[str, tuple[int, str]], after: dict[str, tuple[int, str]]) -> list[str]:
    return sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))


@contextlib.contextmanager
def assert_unchanged(session: Session) -> Iterator[None]:
    """``with assert_unchanged(session): ...`` fails unless the block left every table as it found it."""
    before = fingerprint(session)
    yield
    session.expire_all()
    after = fingerprint(session)
    assert changed_tables(before, after) == [], "a refused input changed the database"
