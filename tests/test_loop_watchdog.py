"""The watchdog names the code that blocks the event loop, and stays quiet when nothing does."""

from __future__ import annotations

import asyncio
import time

import pytest

from app.loop_watchdog import LoopWatchdog


def blocking_call_in_a_handler() -> None:
    time.sleep(0.3)  # a sync database call or file read on the loop would do the same


class TestLoopWatchdog:
    @pytest.mark.blocks_event_loop
    async def test_a_blocking_call_is_reported_with_its_stack(self) -> None:
        watchdog = LoopWatchdog.start(threshold_s=0.1)
        try:
            await asyncio.sleep(0.05)
            blocking_call_in_a_handler()
            await asyncio.sleep(0.1)
        finally:
            watchdog.stop()
        assert len(watchdog.stalls) == 1
        stall = watchdog.stalls[0]
        assert 0.15 < stall.seconds < 1.0
        assert "blocking_call_in_a_handler" in stall.stack
        assert "time.sleep(0.3)" in stall.stack

    async def test_awaiting_does_not_count_as_blocking(self) -> None:
        watchdog = LoopWatchdog.start(threshold_s=0.1)
        try:
            await asyncio.sleep(0.4)
            await asyncio.to_thread(time.sleep, 0.3)
        finally:
            watchdog.stop()
        assert watchdog.stalls == []

    async def test_short_blocks_under_the_threshold_are_not_reported(self) -> None:
        watchdog = LoopWatchdog.start(threshold_s=0.2)
        try:
            for _ in range(3):
                time.sleep(0.03)  # noqa: ASYNC251  (a short block, on purpose)
                await asyncio.sleep(0.05)
        finally:
            watchdog.stop()
        assert watchdog.stalls == []
