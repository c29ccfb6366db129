"""Shared fixtures: a fresh migrated database per test, on SQLite and on PostgreSQL.

Migrations run once per session into a template (a file for SQLite, a TEMPLATE database for
PostgreSQL); each test gets its own copy, so code that commits mid-test stays isolated.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine

from app.db.migrate import upgrade
from app.db.session import SessionFactory, create_db_engine, create_session_factory
from app.logging import configure_logging
from app.loop_watchdog import LoopWatchdog, Stall

PG_ADMIN_URL = os.environ.get(
    "PIM_ROLLOUT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"
)
DATABASES = os.environ.get("PIM_ROLLOUT_TEST_DATABASES", "sqlite,postgresql").split(",")


def _pg_conninfo(dbname: str) -> str:
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{dbname}"


def _sqlalchemy_pg(dbname: str) -> str:
    return _pg_conninfo(dbname).replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    name = f"pimr_tpl_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    upgrade(_sqlalchemy_pg(name))
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" WITH is_template = true')
    yield name
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" WITH is_template = false')
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _fresh_pg(template: str) -> tuple[str, str]:
    name = f"pimr_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return name, _sqlalchemy_pg(name)


def _drop_pg(name: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=[pytest.param(db, id=db) for db in DATABASES])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database of each kind, private to one test."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "test.db"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    pg_template_name: str = request.getfixturevalue("pg_template")
    name, url = _fresh_pg(pg_template_name)
    try:
        yield url
    finally:
        _drop_pg(name)


@pytest.fixture
def db_engine(database_url: str) -> Iterator[Engine]:
    engine = create_db_engine(database_url, null_pool=True)
    yield engine
    engine.dispose()


@pytest.fixture
def session_factory(db_engine: Engine) -> SessionFactory:
    return create_session_factory(db_engine)


LOOP_BLOCK_LIMIT_S = float(os.environ.get("PIM_ROLLOUT_TEST_LOOP_BLOCK_MS", "100")) / 1000
"""A test fails when product code blocks its event loop longer than this (0: no check)."""
_WATCHDOGS: list[LoopWatchdog] = []


def _watched_loop() -> asyncio.AbstractEventLoop:
    """A test's event loop, with a watchdog from its first turn (see ``app/loop_watchdog.py``)."""
    loop = asyncio.new_event_loop()
    if LOOP_BLOCK_LIMIT_S > 0:
        loop.call_soon(
            lambda: _WATCHDOGS.append(LoopWatchdog.start(threshold_s=LOOP_BLOCK_LIMIT_S))
        )
    return loop


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    return {"watched": _watched_loop}


_APP = str(Path(__file__).resolve().parents[1] / "app")
_SIMULATOR = str(Path(__file__).resolve().parents[1] / "app" / "simulator")


def blocked_by_product(stall: Stall) -> bool:
    """Whether the coroutine that blocked the loop is the product's.

    A test's own coroutine may call sync code on its loop (building a large simulated tenant,
    reading rows to assert on), and so may the in-process simulated tenant, which stands in
    for Graph; the product's coroutines may not.
    """
    path = stall.coroutine_file or ""
    return path.startswith(_APP) and not path.startswith(_SIMULATOR)


@pytest.fixture(autouse=True)
def _no_blocked_event_loop(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    stalls = [
        stall for watchdog in _WATCHDOGS for stall in watchdog.stalls if blocked_by_product(stall)
    ]
    for watchdog in _WATCHDOGS:
        watchdog.stop()
    _WATCHDOGS.clear()
    if stalls and request.node.get_closest_marker("blocks_event_loop") is None:
        worst = max(stalls, key=lambda s: s.seconds)
        pytest.fail(
            f"the event loop was blocked {len(stalls)} time(s), the longest "
            f"{worst.seconds * 1000:.0f} ms, at:\n{worst.stack}",
            pytrace=False,
        )


configure_logging("INFO")
