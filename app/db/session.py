"""Database access for an async service: every unit of work runs whole on a worker thread.

Sessions are SQLAlchemy's synchronous ones; ``Database.read(fn)`` and ``Database.write(fn)``
open a session, run ``fn(session)`` and commit (or roll back) on one worker thread, so no
transaction ever spans an ``await`` and the event loop never waits on a lock, a busy file or a
pool checkout. Database work runs on at most ``threads`` worker threads of its own (few, and
reused, so the loop never waits to start one), and sync request handlers on anyio's default
threads, limited to the same number; the pool holds a connection for each (``pool_size_for``),
so a checkout never queues.

SQLite allows one writer per file. Inside a process, writers take a lock per engine before
``BEGIN IMMEDIATE``, so they queue in order instead of racing for the file and failing; across
processes (a CLI next to ``serve``) the short busy timeout applies and ``write`` retries.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import UOWTransaction, sessionmaker
from sqlalchemy.pool import NullPool
from sqlmodel import Session

from app.logging import get_logger

log = get_logger(__name__)

SessionFactory = sessionmaker[Session]
T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 2000
"""How long one SQLite statement waits for another process's write lock before it fails."""
WRITE_LOCK_TIMEOUT_S = 60.0
"""A writer in this process that waits this long for the writer lock reports the database busy."""
PG_IDLE_IN_TRANSACTION_TIMEOUT_S = 15.0
"""PostgreSQL ends a session idle this long inside a transaction. No unit of work waits between
its statements (none spans an ``await``), so such a session belongs to a stalled process, and the
row locks it holds (a plan's lease, say) would stop every other worker for as long as it stalls."""
BUSY_RETRIES = 6
_RETRY_BASE_DELAY_S = 0.05
_PG_RETRYABLE = frozenset({"40001", "40P01"})  # serialization failure, deadlock detected

_WRITE_LOCKS: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_WRITE_LOCKS_GUARD = threading.Lock()


class ReadOnlySessionError(RuntimeError):
    """A unit of work opened for reading tried to write."""


class DatabaseBusyError(RuntimeError):
    """The database stayed locked by someone else for longer than this process waits."""


def pool_size_for(threads: int) -> int:
    """A connection for each database thread and each sync-handler thread, and two spare."""
    return 2 * threads + 2


def create_db_engine(
    url: str,
    *,
    null_pool: bool = False,
    echo: bool = False,
    pool_size: int = 12,
    idle_in_transaction_timeout_s: float = PG_IDLE_IN_TRANSACTION_TIMEOUT_S,
) -> Engine:
    kwargs: dict[str, Any] = {"echo": echo}
    if null_pool:
        kwargs["poolclass"] = NullPool
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {
            "check_same_thread": False,
            "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
        }
    else:
        kwargs["pool_pre_ping"] = True
        if not null_pool:
            kwargs.update(pool_size=pool_size, max_overflow=0, pool_timeout=30)
    engine = create_engine(url, **kwargs)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
    else:
        event.listen(
            engine,
            "connect",
            partial(_pg_connect, idle_ms=int(idle_in_transaction_timeout_s * 1000)),
        )
    return engine


def _pg_connect(dbapi_connection: Any, _record: Any, *, idle_ms: int) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"SET idle_in_transaction_session_timeout = {idle_ms}")
    cursor.close()
    dbapi_connection.commit()  # a SET in a transaction rolled back on checkin would not last


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own transaction handling would BEGIN lazily (and never IMMEDIATE) and breaks
    # SAVEPOINT; SQLAlchemy emits BEGIN itself in ``_sqlite_begin`` instead.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL lets readers go on while one writer writes; foreign keys are off by default in SQLite.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
    connection.exec_driver_sql(f"BEGIN {mode}")


def create_session_factory(engine: Engine) -> SessionFactory:
    return sessionmaker(bind=engine, class_=Session, expire_on_commit=False)


@contextmanager
def unit_of_work(factory: SessionFactory) -> Iterator[Session]:
    """A session that commits when the block ends cleanly and rolls back otherwise.

    For synchronous callers only (the CLI, test set-up): async code uses ``Database``.
    """
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _refuse_writes(session: OrmSession, _flush: UOWTransaction, _instances: object) -> None:
    changed = [*session.new, *session.dirty, *session.deleted]
    raise ReadOnlySessionError(
        f"a read-only unit of work tried to write {len(changed)} row(s), e.g. {changed[0]!r}"
    )


def _writer_lock(engine: Engine) -> threading.Lock:
    with _WRITE_LOCKS_GUARD:
        lock = _WRITE_LOCKS.get(engine)
        if lock is None:
            lock = _WRITE_LOCKS[engine] = threading.Lock()
        return lock


def is_busy_error(exc: BaseException) -> bool:
    """SQLite's "database is locked"/"busy", or PostgreSQL's serialization and deadlock errors."""
    if isinstance(exc, DatabaseBusyError):
        return True
    if not isinstance(exc, OperationalError):
        return False
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate in _PG_RETRYABLE:
        return True
    text = str(exc.orig).lower()
    return "database is locked" in text or "database is busy" in text


class Database:
    """Units of work on worker threads; one per engine and process (see the module docstring)."""

    def __init__(self, factory: SessionFactory, *, threads: int = 10) -> None:
        self.factory = factory
        self.threads = threads
        self._generations = itertools.count(1)
        self.generation = 0
        """Moves on after every write unit of this process ends (committed or not), so a reader
        can tell whether a read it joins began after the last write it might have to see."""
        self._limiters: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, anyio.CapacityLimiter
        ] = weakref.WeakKeyDictionary()
        self._write_limiters: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, anyio.CapacityLimiter
        ] = weakref.WeakKeyDictionary()
        bind = factory.kw["bind"]
        assert isinstance(bind, Engine)
        self.engine = bind
        self.is_sqlite = bind.dialect.name == "sqlite"
        self._read_factory: SessionFactory = sessionmaker(
            bind=bind, class_=Session, expire_on_commit=False
        )
        event.listen(self._read_factory, "before_flush", _refuse_writes)
        self._write_factory: SessionFactory = sessionmaker(
            bind=bind.execution_options(sqlite_begin="IMMEDIATE") if self.is_sqlite else bind,
            class_=Session,
            expire_on_commit=False,
        )

    @classmethod
    def from_url(cls, url: str, *, null_pool: bool = False, threads: int = 10) -> Database:
        engine = create_db_engine(url, null_pool=null_pool, pool_size=pool_size_for(threads))
        return cls(create_session_factory(engine), threads=threads)

    # Synchronous units of work: for code already on a worker thread, the CLI and tests.

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A session that may only read; it holds its snapshot until the block ends."""
        session = self._read_factory()
        try:
            yield session
        finally:
            # close() ends the transaction without expiring the rows the caller goes on using.
            session.close()

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A session that commits when the block ends cleanly and rolls back otherwise."""
        lock = _writer_lock(self.engine) if self.is_sqlite else None
        if lock is not None and not lock.acquire(timeout=WRITE_LOCK_TIMEOUT_S):
            raise DatabaseBusyError(
                f"no write turn on the SQLite database within {WRITE_LOCK_TIMEOUT_S:.0f} s"
            )
        try:
            with unit_of_work(self._write_factory) as session:
                session.connection()  # BEGIN (IMMEDIATE on SQLite) now, before the caller's work
                yield session
        finally:
            # itertools.count's next() is atomic, so concurrent writers each move it on.
            self.generation = next(self._generations)
            if lock is not None:
                lock.release()

    # Async callers: the whole unit of work runs on a worker thread.

    def _limiter(self, *, write: bool = False) -> anyio.CapacityLimiter:
        """The threads a unit of work may use: ``threads`` of them, shared by reads and writes,
        except SQLite's writes, which take turns on one thread of their own.

        SQLite has one writer at a time, so a second write unit on a thread would only wait
        there for the writer lock. Queued in the loop instead, writes never hold the threads
        reads need: a write that stalls (a slow disk, another process's lock) delays the
        writes behind it, not every read in the process.
        """
        loop = asyncio.get_running_loop()
        limiters = self._write_limiters if write and self.is_sqlite else self._limiters
        limiter = limiters.get(loop)
        if limiter is None:
            size = 1 if limiters is self._write_limiters else self.threads
            limiter = limiters[loop] = anyio.CapacityLimiter(size)
        return limiter

    async def read(self, fn: Callable[[Session], T]) -> T:
        return await anyio.to_thread.run_sync(partial(self._run_read, fn), limiter=self._limiter())

    async def write(self, fn: Callable[[Session], T]) -> T:
        """Run ``fn`` in a write transaction and commit.

        A database that is busy before ``fn`` starts (SQLite's writer lock or ``BEGIN
        IMMEDIATE``) is retried with backoff; once ``fn`` has started it runs at most once, so
        it may change Python state as well as rows.
        """
        for attempt in range(1, BUSY_RETRIES + 1):
            started = threading.Event()
            try:
                return await anyio.to_thread.run_sync(
                    partial(self._run_write, fn, started), limiter=self._limiter(write=True)
                )
            except (OperationalError, DatabaseBusyError) as exc:
                if started.is_set() or attempt == BUSY_RETRIES or not is_busy_error(exc):
                    raise
                log.warning("db.busy_retry", attempt=attempt, error=str(exc).splitlines()[0])
                await asyncio.sleep(_RETRY_BASE_DELAY_S * 2 ** (attempt - 1))
        raise AssertionError("unreachable")  # pragma: no cover

    def _run_read(self, fn: Callable[[Session], T]) -> T:
        with self.reading() as session:
            return fn(session)

    def _run_write(self, fn: Callable[[Session], T], started: threading.Event) -> T:
        with self.writing() as session:
            started.set()
            return fn(session)
