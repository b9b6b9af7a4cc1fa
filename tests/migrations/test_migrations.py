"""The schema is built only by the migrations, which round-trip and agree with the models."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from audit import models, schema
from audit.db import make_engine


def _roundtrip(url: str) -> None:
    engine = make_engine(url)
    try:
        schema.upgrade(engine)
        assert schema.is_up_to_date(engine)
        tables = set(inspect(engine).get_table_names())
        assert set(models.Base.metadata.tables) <= tables
        schema.downgrade(engine, "base")
        assert schema.current_revision(engine) is None
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        schema.upgrade(engine)
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), models.Base.metadata)
        assert diff == [], f"models and migrations disagree: {diff}"
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade_on_sqlite_and_models_match(tmp_path) -> None:
    _roundtrip(f"sqlite:///{tmp_path / 'm.db'}")


@pytest.mark.postgres
def test_upgrade_downgrade_upgrade_on_postgres_and_models_match(fresh_postgres_url: str) -> None:
    _roundtrip(fresh_postgres_url)
