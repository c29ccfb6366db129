"""Shared fixtures: an empty migrated database per test, on SQLite and on PostgreSQL.

Migrations run once per session into a template (a file for SQLite, a TEMPLATE database for
PostgreSQL); each test gets a database of its own, so code that commits mid-test stays
isolated. SQLite copies the template file. On PostgreSQL, creating and dropping a database
costs most of a second, so each test process keeps a pool: a database copied from the template
once, emptied after each test (rows deleted, sequences restarted) and handed to the next test;
one whose schema a test changed, or that cannot be emptied, is dropped instead.
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine

from app.db.migrate import upgrade
from app.db.session import SessionFactory, create_db_engine, create_session_factory, pool_size_for
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


def no_commit_flush(conn: psycopg.Connection[Any], name: str) -> None:
    """A test database's commits return before the WAL reaches the disk.

    A commit then costs no fsync: the tests do thousands, and only a crash of PostgreSQL
    itself, which no test causes, could lose one. What the product sees is unchanged:
    visibility, locks and isolation are the same as with synchronous commit.
    """
    conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')


def _fresh_pg(template: str) -> tuple[str, str]:
    name = f"pimr_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        no_commit_flush(conn, name)
    return name, _sqlalchemy_pg(name)


def _drop_pg(name: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# From the catalogue rather than information_schema, whose views cost a test a few ms each.
_SCHEMA_SHAPE = """
    SELECT (SELECT string_agg(c.relname || '.' || a.attname, ',' ORDER BY 1)
              FROM pg_attribute a
              JOIN pg_class c ON c.oid = a.attrelid
              JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relkind = 'r' AND a.attnum > 0
               AND NOT a.attisdropped),
           (SELECT string_agg(version_num, ',') FROM alembic_version)
"""


def _schema_shape(conn: psycopg.Connection[Any]) -> tuple[str | None, str | None]:
    row = conn.execute(_SCHEMA_SHAPE).fetchone()
    assert row is not None
    return row[0], row[1]


def _empty_pg(conn: psycopg.Connection[Any], tables: list[str], sequences: list[str]) -> None:
    """Delete every row (foreign keys unchecked: all go) and restart the sequences.

    Connections the test left open (a worker it started, a leaked session) are ended first, so
    nothing of this test writes into the next one's database.
    """
    conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    conn.execute("SET lock_timeout = '2s'")
    with conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        for table in tables:
            conn.execute(f'DELETE FROM "{table}"')
        for sequence in sequences:
            conn.execute(f'ALTER SEQUENCE "{sequence}" RESTART')


class PgPool:
    """Emptied databases of this test process, copied from the template once each."""

    def __init__(self, template: str) -> None:
        self.template = template
        self.idle: list[str] = []
        self.made: set[str] = set()
        first, _ = _fresh_pg(template)
        with psycopg.connect(_pg_conninfo(first), autocommit=True) as conn:
            self.shape = _schema_shape(conn)
            self.tables = [
                r[0]
                for r in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                    "AND tablename <> 'alembic_version'"
                )
            ]
            self.sequences = [
                r[0]
                for r in conn.execute(
                    "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'"
                )
            ]
        self.made.add(first)
        self.idle.append(first)

    def take(self) -> str:
        if self.idle:
            return self.idle.pop()
        name, _ = _fresh_pg(self.template)
        self.made.add(name)
        return name

    def give_back(self, name: str) -> None:
        try:
            with psycopg.connect(_pg_conninfo(name), autocommit=True) as conn:
                if _schema_shape(conn) != self.shape:
                    raise LookupError("the test changed the schema")
                _empty_pg(conn, self.tables, self.sequences)
        except (psycopg.Error, LookupError):
            self.made.discard(name)
            _drop_pg(name)
            return
        self.idle.append(name)

    def close(self) -> None:
        for name in self.made:
            _drop_pg(name)


@pytest.fixture(scope="session")
def pg_pool(pg_template: str) -> Iterator[PgPool]:
    pool = PgPool(pg_template)
    yield pool
    pool.close()


@pytest.fixture(params=[pytest.param(db, id=db) for db in DATABASES])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database of each kind, private to one test."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "test.db"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    pool: PgPool = request.getfixturevalue("pg_pool")
    name = pool.take()
    try:
        yield _sqlalchemy_pg(name)
    finally:
        pool.give_back(name)


@pytest.fixture
def db_engine(database_url: str) -> Iterator[Engine]:
    engine = create_db_engine(database_url, pool_size=pool_size_for(10))
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
_IN_PROCESS_ASGI = "httpx/_transports/asgi.py"


def _is_product(stack_line: str) -> bool:
    path = stack_line.strip().removeprefix('File "').partition('"')[0]
    return path.startswith(_APP) and not path.startswith(_SIMULATOR)


def blocked_by_product(stall: Stall) -> bool:
    """Whether the coroutine that blocked the loop is the product's.

    A test's own coroutine may call sync code on its loop (building a large simulated tenant,
    reading rows to assert on), and so may the in-process simulated tenant, which stands in
    for Graph; the product's coroutines may not. A stall inside httpx's in-process ASGI
    transport with none of the product's code past it is the app behind the transport (the
    simulated tenant) still in its framework, before its own code was reached.
    """
    if _IN_PROCESS_ASGI in stall.stack:
        beyond = stall.stack.rpartition(_IN_PROCESS_ASGI)[2]
        if not any(_is_product(line) for line in beyond.splitlines() if "File " in line):
            return False
    if waiting_for_a_new_thread(stall.stack):
        return False
    return _is_product(f'File "{stall.coroutine_file or ""}"')


def waiting_for_a_new_thread(stack: str) -> bool:
    """Whether the loop was inside ``Thread.start``, which waits until the new thread runs.

    anyio starts a worker thread when a loop has no idle one (each test has a loop of its
    own, so each test starts a few). How long that takes is how long the new thread waits for
    a CPU: with more runnable threads than cores, the same scheduling delay that the watchdog
    leaves out for the loop thread itself (``Stall.runnable_seconds``).
    """
    frames = [line for line in stack.splitlines() if line.lstrip().startswith('File "')]
    tail = []
    for frame in reversed(frames):
        if not frame.partition('",')[0].endswith("/threading.py"):
            break
        tail.append(frame)
    return any(frame.endswith(", in start") for frame in tail)


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


def pytest_collection_finish(session: pytest.Session) -> None:
    """Garbage collection tuned for a test process (in tests/api, 14 of its 61 CPU-seconds).

    What collection built (every module, every test item) lives until the end, so it is moved
    out of the collector's sight; and the tests allocate in bursts (a simulated tenant, a
    plan's journal) that at the default threshold of 700 objects start a collection every few
    milliseconds.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
