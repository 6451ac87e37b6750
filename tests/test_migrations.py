"""Migrations go up and down cleanly and match the models (no drift)."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import models
from service.migrations import downgrade, upgrade
from tests.conftest import ON_POSTGRES, TEST_DATABASE_URL


@pytest.fixture
def scratch_url(tmp_path):
    """An empty database of the engine under test."""
    if not ON_POSTGRES:
        yield f"sqlite:///{tmp_path}/migrations.db"
        return
    name = f"stepdown_mig_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(TEST_DATABASE_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    base = sa.engine.make_url(TEST_DATABASE_URL)
    yield base.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_to_head_creates_every_table_without_drift(scratch_url):
    upgrade(scratch_url)
    assert _tables(scratch_url) == set(models.metadata.tables)
    engine = sa.create_engine(scratch_url)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), models.metadata)
    engine.dispose()
    assert diff == []


def test_downgrade_to_base_removes_everything_and_upgrade_again(scratch_url):
    upgrade(scratch_url)
    downgrade(scratch_url, "base")
    assert _tables(scratch_url) == set()
    upgrade(scratch_url)
    assert _tables(scratch_url) == set(models.metadata.tables)
