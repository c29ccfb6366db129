"""Shutdown lets engine runs end at an item boundary, and cancels quietly past its grace."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import structlog.testing

from app.engine import scheduler
from app.engine.context import Shutdown


async def registered(shutdown: Shutdown, work: Any) -> Any:
    with shutdown.running():
        return await work()


class TestShutdown:
    async def test_a_run_that_stops_when_asked_finishes_within_the_grace(self) -> None:
        shutdown = Shutdown()
        saw_request = asyncio.Event()

        async def polite() -> str:
            for _item in range(1000):
                if shutdown.requested:  # what ``StepContext.stop_reason`` checks per item
                    break
                await asyncio.sleep(0.01)
            saw_request.set()
            return "stopped at an item boundary"

        run = asyncio.create_task(registered(shutdown, polite))
        await asyncio.sleep(0.05)
        await shutdown.drain(grace_seconds=5)
        assert saw_request.is_set()
        assert await run == "stopped at an item boundary"

    async def test_a_run_past_the_grace_is_cancelled(self) -> None:
        shutdown = Shutdown()

        async def stubborn() -> None:
            await asyncio.sleep(60)

        run = asyncio.create_task(registered(shutdown, stubborn))
        await asyncio.sleep(0.01)
        loop = asyncio.get_running_loop()
        began = loop.time()
        await shutdown.drain(grace_seconds=0.2)
        assert run.cancelled()
        assert loop.time() - began < 2

    async def test_nothing_running_returns_at_once(self) -> None:
        shutdown = Shutdown()
        await shutdown.drain(grace_seconds=30)
        assert shutdown.requested

    async def test_a_tick_cancelled_at_shutdown_ends_with_a_warning_not_a_traceback(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        async def endless_tick(*_args: Any, **_kwargs: Any) -> None:
            await asyncio.sleep(60)

        monkeypatch.setattr(scheduler, "tick", endless_tick)

        class Engine:
            shutdown = Shutdown()

        engine: Any = Engine()
        with structlog.testing.capture_logs() as logs:
            run = asyncio.create_task(scheduler.run_tick(engine, gates=None))  # type: ignore[arg-type]
            await asyncio.sleep(0.01)
            await engine.shutdown.drain(grace_seconds=0)
            assert await run is None, "the job ends normally, so APScheduler logs no error"
        events = [entry["event"] for entry in logs]
        assert events == ["engine.tick_cancelled_at_shutdown"]
        assert all("exc_info" not in entry for entry in logs)
