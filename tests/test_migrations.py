"""Migrations: empty -> head gives exactly the models' schema, and downgrade to base works."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from alembic import command
from sqlalchemy import inspect

from app.db.migrate import alembic_config, downgrade, upgrade
from app.db.session import create_db_engine
from tests.conftest import DATABASES, PG_ADMIN_URL, _sqlalchemy_pg


@pytest.fixture(params=[pytest.param(db, id=db) for db in DATABASES])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    name = f"pimr_mig_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _sqlalchemy_pg(name)
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _tables(url: str) -> set[str]:
    engine = create_db_engine(url, null_pool=True)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


class TestMigrations:
    def test_upgrade_matches_the_models_and_downgrades_to_nothing(
        self, empty_database: str
    ) -> None:
        from sqlmodel import SQLModel

        import app.db.models  # noqa: F401

        upgrade(empty_database)
        assert _tables(empty_database) == set(SQLModel.metadata.tables)
        # alembic check raises when autogenerate would produce any operation.
        command.check(alembic_config(empty_database))
        downgrade(empty_database)
        assert _tables(empty_database) == set()
        upgrade(empty_database)
        assert _tables(empty_database) == set(SQLModel.metadata.tables)

    def test_upgrade_is_idempotent(self, empty_database: str) -> None:
        upgrade(empty_database)
        upgrade(empty_database)
        command.check(alembic_config(empty_database))
