"""The bench synthesizer leaves a settled PostgreSQL database: vacuumed, analyzed and its bulk load
checkpointed, so the per-item figures that follow do not measure the load's write-back."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from app.bench.synth import synthesize
from audit.db import make_engine

ANSWERS = 2_000


@pytest.mark.postgres
def test_postgres_load_is_vacuumed_analyzed_and_checkpointed(migrated_postgres_url: str) -> None:
    engine = make_engine(migrated_postgres_url)
    try:
        synthesize(engine, answers=ANSWERS)
        with engine.connect() as conn:
            # the last checkpoint began after the load's WAL: what was written since is a few records
            since_checkpoint = conn.execute(
                text("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), redo_lsn) FROM pg_control_checkpoint()")
            ).scalar_one()
            analyzed = conn.execute(
                text("SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'assignments'")
            ).scalar_one()
            all_visible = conn.execute(
                text("SELECT relallvisible = relpages FROM pg_class WHERE relname = 'answers'")
            ).scalar_one()
    finally:
        engine.dispose()
    # a 2k-answer load writes megabytes of WAL; other databases on a shared server write a little too
    assert since_checkpoint < 256 * 1024
    assert analyzed
    assert all_visible
