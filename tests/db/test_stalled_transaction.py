"""A worker stalled inside a transaction must not hold the others up.

A process frozen (a paused VM, SIGSTOP, a lost network) after its fenced write renewed the plan's
lease, but before it committed, holds that row's lock: every other worker's claim would wait on
it for as long as the freeze lasts, and the plan would stand still with its lease long lapsed.
PostgreSQL ends a session that sits idle in a transaction for too long, which releases the lock.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.db.models import Lease
from app.db.repos.leases import LeaseRepository
from app.db.session import (
    PG_IDLE_IN_TRANSACTION_TIMEOUT_S,
    create_db_engine,
    create_session_factory,
)

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TTL = timedelta(seconds=4)


@pytest.fixture
def pg_url(database_url: str) -> str:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time and no sessions to end")
    return database_url


def test_sessions_end_when_idle_in_a_transaction_by_default(pg_url: str) -> None:
    engine = create_db_engine(pg_url, null_pool=True)
    try:
        with engine.connect() as connection:
            shown = connection.execute(text("SHOW idle_in_transaction_session_timeout")).scalar()
        assert shown == f"{PG_IDLE_IN_TRANSACTION_TIMEOUT_S:g}s"
    finally:
        engine.dispose()


def test_a_worker_stalled_mid_transaction_does_not_block_a_takeover(pg_url: str) -> None:
    stalled_engine = create_db_engine(pg_url, null_pool=True, idle_in_transaction_timeout_s=1)
    other_engine = create_db_engine(pg_url, null_pool=True, idle_in_transaction_timeout_s=1)
    stalled_sessions = create_session_factory(stalled_engine)
    other_sessions = create_session_factory(other_engine)
    try:
        with stalled_sessions() as session:
            token = LeaseRepository(session).claim("plan:p", holder="a", now=NOW, ttl=TTL)
            session.commit()
        assert token is not None

        stalled = stalled_sessions()
        # The stalled worker renews its lease inside a write, then stops before committing.
        assert LeaseRepository(stalled).fence("plan:p", holder="a", token=token, now=NOW, ttl=TTL)

        def take_over() -> int | None:
            with other_sessions() as session:
                # Bounded, so that a claim blocked for good fails this test instead of hanging it.
                session.execute(text("SET LOCAL statement_timeout = '10s'"))
                claimed = LeaseRepository(session).claim(
                    "plan:p", holder="b", now=NOW + 2 * TTL, ttl=TTL
                )
                session.commit()
                return claimed

        with ThreadPoolExecutor(max_workers=1) as pool:
            taken = pool.submit(take_over).result(timeout=30)
        assert taken == token + 1

        with pytest.raises(DBAPIError, match="idle-in-transaction timeout") as ended:
            stalled.commit()  # the server ended its session: its renewal never lands
        assert ended.value.connection_invalidated  # which the engine reads as "try again"
        stalled.close()
        with other_sessions() as session:
            lease = session.get(Lease, "plan:p")
            assert lease is not None
            assert (lease.holder, lease.token) == ("b", token + 1)
    finally:
        stalled_engine.dispose()
        other_engine.dispose()
