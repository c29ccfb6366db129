"""The database discipline: units of work on worker threads, read-only reads, one SQLite writer."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from app.db.models import ApiToken
from app.db.session import (
    BUSY_RETRIES,
    Database,
    ReadOnlySessionError,
    create_db_engine,
    create_session_factory,
    is_busy_error,
)
from app.loop_watchdog import LoopWatchdog

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def token_row(name: str) -> ApiToken:
    return ApiToken(
        name=name, role="viewer", token_hash=f"hash-{name}", prefix="pimr_", created_at=NOW
    )


def names(session: Session) -> list[str]:
    return sorted(t.name for t in session.exec(select(ApiToken)).all())


@pytest.fixture
def db(session_factory) -> Database:
    return Database(session_factory)


class TestUnitsOfWork:
    async def test_a_write_commits_and_a_read_sees_it(self, db: Database) -> None:
        await db.write(lambda session: session.add(token_row("a")))
        assert await db.read(names) == ["a"]

    async def test_a_failed_write_changes_nothing(self, db: Database) -> None:
        def add_then_fail(session: Session) -> None:
            session.add(token_row("half"))
            session.flush()
            raise ValueError("refused")

        with pytest.raises(ValueError, match="refused"):
            await db.write(add_then_fail)
        assert await db.read(names) == []

    async def test_a_read_refuses_to_write_and_writes_nothing(self, db: Database) -> None:
        await db.write(lambda session: session.add(token_row("a")))

        def rename(session: Session) -> None:
            row = session.exec(select(ApiToken)).one()
            row.name = "renamed"
            session.add(row)
            session.flush()

        with pytest.raises(ReadOnlySessionError, match="read-only unit of work tried to write"):
            await db.read(rename)
        assert await db.read(names) == ["a"]

    async def test_rows_read_stay_usable_after_the_unit_ends(self, db: Database) -> None:
        await db.write(lambda session: session.add(token_row("a")))
        row = await db.read(lambda session: session.exec(select(ApiToken)).one())
        assert row.name == "a"
        assert row.created_at is not None

    async def test_work_runs_off_the_event_loop_thread(self, db: Database) -> None:
        loop_thread = threading.get_ident()
        seen = await db.read(lambda _session: threading.get_ident())
        assert seen != loop_thread


class TestConcurrentWriters:
    async def test_many_concurrent_writers_all_commit(self, db: Database) -> None:
        """On SQLite they queue on the writer lock; nobody sees "database is locked"."""

        def add(name: str, session: Session) -> None:
            session.add(token_row(name))
            time.sleep(0.002)  # hold the transaction a little, as real units do

        await asyncio.gather(*(db.write(partial(add, f"t{i:02d}")) for i in range(40)))
        assert await db.read(names) == [f"t{i:02d}" for i in range(40)]

    async def test_the_loop_keeps_answering_while_a_writer_waits(self, db: Database) -> None:
        """A unit that waits for the database waits on its thread, never on the loop."""
        watchdog = LoopWatchdog.start(threshold_s=0.1)
        try:

            def slow(session: Session) -> None:
                session.add(token_row("slow"))
                time.sleep(0.5)

            writers = [asyncio.ensure_future(db.write(slow)) for _ in range(2)]
            beats = 0
            while not all(w.done() for w in writers):
                await asyncio.sleep(0.01)
                beats += 1
            await asyncio.gather(*writers, return_exceptions=True)
        finally:
            watchdog.stop()
        assert watchdog.stalls == []
        assert beats > 10  # the loop went round while the writers worked

    async def test_reads_go_on_while_writes_wait_for_their_turn(self, session_factory) -> None:  # type: ignore[no-untyped-def]
        """On SQLite, writes queued behind a stalled one (a slow disk, a long unit) wait in the
        loop for their turn, not on the threads that reads need."""
        db = Database(session_factory, threads=2)
        if not db.is_sqlite:
            pytest.skip("only SQLite has one writer at a time")
        started, release = threading.Event(), threading.Event()

        def stalled(session: Session) -> None:
            session.add(token_row("stalled"))
            started.set()
            release.wait(10)

        def add(name: str, session: Session) -> None:
            session.add(token_row(name))

        first = asyncio.ensure_future(db.write(stalled))
        assert await asyncio.to_thread(started.wait, 5)
        queued = [asyncio.ensure_future(db.write(partial(add, f"q{i}"))) for i in range(4)]
        await asyncio.sleep(0.2)  # the queued writes take whatever threads they may now
        try:
            async with asyncio.timeout(3):
                assert await db.read(names) == [], "the stalled write is not committed yet"
        finally:
            release.set()
        await asyncio.gather(first, *queued)
        assert await db.read(names) == ["q0", "q1", "q2", "q3", "stalled"]


class TestBusyDatabase:
    """Another process holds SQLite's write lock (e.g. a CLI next to ``serve``)."""

    @pytest.fixture
    def sqlite_file(self, tmp_path: Path, sqlite_template: Path) -> Path:
        path = tmp_path / "busy.db"
        path.write_bytes(sqlite_template.read_bytes())
        return path

    @pytest.fixture
    def file_db(self, sqlite_file: Path) -> Database:
        engine: Engine = create_db_engine(f"sqlite:///{sqlite_file}", null_pool=True)
        return Database(create_session_factory(engine))

    def hold_write_lock(self, path: Path, seconds: float) -> threading.Thread:
        held = threading.Event()

        def hold() -> None:
            conn = sqlite3.connect(path, isolation_level=None)
            conn.execute("BEGIN IMMEDIATE")
            held.set()
            time.sleep(seconds)
            conn.execute("ROLLBACK")
            conn.close()

        thread = threading.Thread(target=hold)
        thread.start()
        held.wait()
        return thread

    async def test_a_write_waits_out_a_lock_held_elsewhere(
        self, file_db: Database, sqlite_file: Path
    ) -> None:
        holder = self.hold_write_lock(sqlite_file, seconds=3.0)  # longer than the busy timeout
        ran: list[int] = []

        def add(session: Session) -> None:
            ran.append(1)
            session.add(token_row("after"))

        try:
            await file_db.write(add)
        finally:
            holder.join()
        assert ran == [1], "the unit must run once, after the lock was free"
        assert await file_db.read(names) == ["after"]

    async def test_a_unit_that_started_is_never_run_twice(self, file_db: Database) -> None:
        """Busy after the unit began (its own statements) is raised, not retried."""
        calls: list[int] = []

        def busy_inside(session: Session) -> None:
            calls.append(1)
            raise OperationalError("UPDATE x", {}, sqlite3.OperationalError("database is locked"))

        with pytest.raises(OperationalError, match="database is locked"):
            await file_db.write(busy_inside)
        assert calls == [1]

    def test_busy_errors_are_recognised(self) -> None:
        locked = OperationalError("s", {}, sqlite3.OperationalError("database is locked"))
        other = OperationalError("s", {}, sqlite3.OperationalError("no such table: x"))
        assert is_busy_error(locked)
        assert not is_busy_error(other)
        assert not is_busy_error(ValueError("database is locked"))
        assert BUSY_RETRIES >= 3


class TestSqliteTransactions:
    def test_writes_begin_immediate_and_reads_deferred(self, sqlite_template: Path) -> None:
        engine = create_db_engine(f"sqlite:///{sqlite_template}", null_pool=True)
        db = Database(create_session_factory(engine))
        statements: list[str] = []

        def record(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
            statements.append(statement)

        event.listen(engine, "before_cursor_execute", record)
        with db.writing() as session:
            session.execute(text("SELECT 1"))
        with db.reading() as session:
            session.execute(text("SELECT 1"))
        assert "BEGIN IMMEDIATE" in statements
        assert "BEGIN DEFERRED" in statements
        engine.dispose()
