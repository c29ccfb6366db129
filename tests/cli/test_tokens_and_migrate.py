"""``pim-rollout migrate`` and ``pim-rollout tokens create``, run as the real command on each
database: the token alone on stdout's last line, only its hash stored."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlmodel import SQLModel, select

import app.db.models  # noqa: F401  (registers every table on SQLModel.metadata)
from app.db.migrate import alembic_config
from app.db.models import ApiToken
from app.db.session import Database, create_db_engine, create_session_factory
from app.services.tokens import authenticate
from tests.conftest import DATABASES, PG_ADMIN_URL, _sqlalchemy_pg
from tests.factories import ROOT


def run_cli(database_url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # The CLI refuses unknown PIM_ROLLOUT_* variables; the test runner's own ones stay out.
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("PIM_ROLLOUT_")}
    env["PYTHONPATH"] = str(ROOT)
    env["PIM_ROLLOUT_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(params=[pytest.param(db, id=db) for db in DATABASES])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    name = f"pimr_cli_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _sqlalchemy_pg(name)
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def schema(url: str) -> tuple[set[str], str | None]:
    engine = create_db_engine(url, null_pool=True)
    try:
        tables = set(inspect(engine).get_table_names())
        if "alembic_version" not in tables:
            return tables, None
        with engine.connect() as conn:
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        return tables - {"alembic_version"}, version
    finally:
        engine.dispose()


class TestMigrate:
    def test_empty_database_to_head_and_again(self, empty_database: str, tmp_path: Path) -> None:
        assert schema(empty_database) == (set(), None)
        head = ScriptDirectory.from_config(alembic_config(empty_database)).get_current_head()

        first = run_cli(empty_database, tmp_path, "migrate")
        assert first.returncode == 0, first.stderr
        assert first.stdout.strip().splitlines()[-1] == "database is at the newest schema"
        assert schema(empty_database) == (set(SQLModel.metadata.tables), head)

        again = run_cli(empty_database, tmp_path, "migrate")
        assert again.returncode == 0, again.stderr
        assert schema(empty_database) == (set(SQLModel.metadata.tables), head)

    def test_bad_database_url_is_named(self, tmp_path: Path) -> None:
        result = run_cli("mysql://db/pim", tmp_path, "migrate")
        assert result.returncode == 2
        assert "PIM_ROLLOUT_DATABASE_URL" in result.stderr
        assert "must start with sqlite:// or postgresql+psycopg://" in result.stderr
        assert "Traceback" not in result.stderr


class TestTokensCreate:
    def test_prints_the_token_once_and_stores_only_its_hash(
        self, database_url: str, tmp_path: Path
    ) -> None:
        result = run_cli(
            database_url, tmp_path, "tokens", "create", "--role", "operator", "--name", "ci-bot"
        )
        assert result.returncode == 0, result.stderr
        token = result.stdout.splitlines()[-1]
        assert token.startswith("pimr_")
        assert token == token.strip()
        assert result.stdout.count(token) == 1
        assert token not in result.stderr
        assert "created operator token 'ci-bot'" in result.stderr

        engine = create_db_engine(database_url, null_pool=True)
        try:
            factory = create_session_factory(engine)
            with factory() as session:
                rows = session.exec(select(ApiToken)).all()
                assert [(r.name, r.role) for r in rows] == [("ci-bot", "operator")]
                assert rows[0].token_hash == hashlib.sha256(token.encode()).hexdigest()
                assert token not in {str(v) for v in rows[0].model_dump().values()}
            db = Database(factory)
            caller = authenticate(db, token, now=datetime.now(UTC))
            assert caller is not None
            assert caller.role.value == "operator"
            assert authenticate(db, token + "x", now=datetime.now(UTC)) is None
        finally:
            engine.dispose()

    def test_unknown_role_is_refused_by_name(self, database_url: str, tmp_path: Path) -> None:
        result = run_cli(
            database_url, tmp_path, "tokens", "create", "--role", "root", "--name", "x"
        )
        assert result.returncode == 1
        assert "--role:" in result.stderr
        assert result.stdout == ""
        engine = create_db_engine(database_url, null_pool=True)
        try:
            with create_session_factory(engine)() as session:
                assert session.exec(select(ApiToken)).all() == []
        finally:
            engine.dispose()
