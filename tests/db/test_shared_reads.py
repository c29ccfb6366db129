"""Identical reads in flight share one unit of work, and never hide a write made before them."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime

import pytest
from sqlmodel import Session, select

from app.db.models import ApiToken
from app.db.session import Database
from app.db.shared_reads import SharedReads

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def add_token(name: str):  # type: ignore[no-untyped-def]
    def write(session: Session) -> None:
        session.add(
            ApiToken(name=name, role="viewer", token_hash=f"h-{name}", prefix="p", created_at=NOW)
        )

    return write


class SlowNames:
    """A read that takes a while on its thread, so that callers overlap; counts its runs."""

    def __init__(self, seconds: float = 0.2) -> None:
        self.seconds = seconds
        self.runs = 0
        self.entered = threading.Event()

    def __call__(self, session: Session) -> list[str]:
        self.runs += 1
        names = sorted(t.name for t in session.exec(select(ApiToken)).all())
        self.entered.set()
        time.sleep(self.seconds)
        return names


@pytest.fixture
def db(session_factory) -> Database:  # type: ignore[no-untyped-def]
    return Database(session_factory)


@pytest.fixture
def shared(db: Database) -> SharedReads:
    return SharedReads(db)


async def entered(read: SlowNames) -> None:
    await asyncio.to_thread(read.entered.wait, 5)


class TestSharedReads:
    async def test_callers_asking_at_once_share_one_read(self, shared: SharedReads) -> None:
        read = SlowNames()
        results = await asyncio.gather(*(shared.read("names", read) for _ in range(20)))
        assert read.runs == 1
        assert shared.started == 1
        assert results == [[]] * 20

    async def test_a_read_after_one_answered_reads_again(self, shared: SharedReads) -> None:
        read = SlowNames(seconds=0)
        await shared.read("names", read)
        await shared.read("names", read)
        assert read.runs == 2

    async def test_different_keys_do_not_share(self, shared: SharedReads) -> None:
        read = SlowNames()
        await asyncio.gather(shared.read("a", read), shared.read("b", read))
        assert read.runs == 2

    async def test_a_caller_after_a_write_does_not_join_a_read_begun_before_it(
        self, db: Database, shared: SharedReads
    ) -> None:
        read = SlowNames()
        early = asyncio.create_task(shared.read("names", read))
        await entered(read)
        await db.write(add_token("written"))
        late = await shared.read("names", SlowNames(seconds=0))
        assert late == ["written"], "the read asked for after the write sees it"
        assert await early == []
        assert shared.started == 2

    async def test_a_failure_reaches_every_caller_and_is_not_kept(
        self, shared: SharedReads
    ) -> None:
        calls = 0

        def failing(session: Session) -> None:
            nonlocal calls
            calls += 1
            time.sleep(0.1)
            raise LookupError("no such plan")

        outcomes = await asyncio.gather(
            *(shared.read("x", failing) for _ in range(5)), return_exceptions=True
        )
        assert calls == 1
        assert all(isinstance(o, LookupError) for o in outcomes)
        with pytest.raises(LookupError):
            await shared.read("x", failing)
        assert calls == 2

    async def test_a_caller_that_gives_up_does_not_cancel_the_others(
        self, shared: SharedReads
    ) -> None:
        read = SlowNames()
        first = asyncio.create_task(shared.read("names", read))
        await entered(read)
        second = asyncio.create_task(shared.read("names", read))
        await asyncio.sleep(0)
        first.cancel()
        assert await second == []
        assert first.cancelled()
        assert read.runs == 1
