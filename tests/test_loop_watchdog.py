"""The watchdog names the code that blocks the event loop, and stays quiet when nothing does."""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import time
from pathlib import Path

import pytest

from app.loop_watchdog import LoopWatchdog, Stall
from tests.conftest import blocked_by_product


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


class TestWhoBlocked:
    """The suite fails a test for the product's stalls, not the in-process simulated tenant's."""

    APP = str(Path(__file__).resolve().parents[1] / "app")

    def frame(self, path: str) -> str:
        return f'  File "{path}", line 1, in f\n    f()\n'

    def test_the_products_own_coroutine_is_blamed(self) -> None:
        stack = self.frame(f"{self.APP}/engine/tick.py")
        assert blocked_by_product(Stall(0.3, stack, f"{self.APP}/engine/tick.py"))

    def test_the_simulators_coroutine_is_not(self) -> None:
        stack = self.frame(f"{self.APP}/simulator/pim.py")
        assert not blocked_by_product(Stall(0.3, stack, f"{self.APP}/simulator/pim.py"))

    def test_a_stall_in_the_framework_behind_an_asgi_transport_is_not(self) -> None:
        stack = (
            self.frame(f"{self.APP}/graph/requester.py")
            + self.frame("/venv/site-packages/httpx/_transports/asgi.py")
            + self.frame("/venv/site-packages/starlette/routing.py")
        )
        assert not blocked_by_product(Stall(0.3, stack, f"{self.APP}/graph/requester.py"))

    def test_the_product_behind_an_asgi_transport_is_blamed(self) -> None:
        stack = (
            self.frame("/tests/test_x.py")
            + self.frame("/venv/site-packages/httpx/_transports/asgi.py")
            + self.frame(f"{self.APP}/api/routes/plans.py")
        )
        assert blocked_by_product(Stall(0.3, stack, f"{self.APP}/api/routes/plans.py"))

    def test_waiting_for_a_new_worker_thread_to_run_is_not(self) -> None:
        threading_py = "/usr/lib/python3.11/threading.py"
        stack = (
            self.frame(f"{self.APP}/db/session.py")
            + self.frame("/venv/site-packages/anyio/_backends/_asyncio.py")
            + f'  File "{threading_py}", line 969, in start\n    self._started.wait()\n'
            + f'  File "{threading_py}", line 629, in wait\n    signaled = self._cond.wait()\n'
            + f'  File "{threading_py}", line 327, in wait\n    waiter.acquire()\n'
        )
        assert not blocked_by_product(Stall(0.2, stack, f"{self.APP}/engine/inventory.py"))

    def test_the_products_own_wait_on_a_thread_is_blamed(self) -> None:
        threading_py = "/usr/lib/python3.11/threading.py"
        stack = (
            self.frame(f"{self.APP}/engine/tick.py")
            + f'  File "{threading_py}", line 1112, in join\n    self._wait_for_tstate_lock()\n'
        )
        assert blocked_by_product(Stall(0.2, stack, f"{self.APP}/engine/tick.py"))


class TestCollections:
    @pytest.mark.blocks_event_loop
    async def test_a_garbage_collection_does_not_count_against_the_callback(self) -> None:
        tracked = [[] for _ in range(2_000_000)]  # objects a full collection must scan
        began = time.monotonic()
        gc.collect()
        collect_seconds = time.monotonic() - began
        watchdog = LoopWatchdog.start(threshold_s=min(max(collect_seconds / 3, 0.02), 0.15))
        try:
            await asyncio.sleep(0.01)
            gc.collect()  # as long again: past the threshold, but all of it the collector's
            await asyncio.sleep(0.01)
            blocking_call_in_a_handler()
            await asyncio.sleep(0.01)
        finally:
            watchdog.stop()
            del tracked
        assert len(watchdog.stalls) == 1, watchdog.stalls
        assert "blocking_call_in_a_handler" in watchdog.stalls[0].stack
        assert watchdog.stalls[0].gc_seconds < 0.05
        # The collection is not the callback's fault, but the loop stood still: reported apart.
        assert len(watchdog.gc_pauses) == 1, watchdog.gc_pauses
        assert watchdog.gc_pauses[0] > watchdog.threshold_s


def _burn(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def _cpu_work(seconds: float) -> None:
    """``seconds`` of CPU time on this thread, however long that takes on the clock."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


@pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or not Path("/proc/thread-self/schedstat").exists(),
    reason="needs Linux's CPU affinity and scheduler statistics",
)
class TestPreemption:
    """A callback made long only by other processes holding the CPU is not the code's fault."""

    @pytest.mark.blocks_event_loop
    async def test_waiting_for_a_cpu_does_not_count_against_the_callback(self) -> None:
        cpu = min(os.sched_getaffinity(0))
        before = os.sched_getaffinity(0)
        # Four processes spinning on the loop thread's one CPU: it gets about a fifth of it.
        spawn = multiprocessing.get_context("spawn")
        burners = [spawn.Process(target=_burn, args=(4.0,), daemon=True) for _ in range(4)]
        for burner in burners:
            burner.start()
        try:
            for burner in burners:
                assert burner.pid is not None
                os.sched_setaffinity(burner.pid, {cpu})
            os.sched_setaffinity(0, {cpu})  # this thread, the loop's
            await asyncio.sleep(0.5)  # the burners are up and spinning
            watchdog = LoopWatchdog.start(threshold_s=0.1)
            try:
                await asyncio.sleep(0)  # watched from the next callback on
                began = time.monotonic()
                _cpu_work(0.05)  # half the threshold of work, stretched by preemption
                stretched = time.monotonic() - began
                await asyncio.sleep(0.01)
                _cpu_work(0.2)  # twice the threshold of work: blocked, whatever the wait
                await asyncio.sleep(0.01)
            finally:
                watchdog.stop()
        finally:
            os.sched_setaffinity(0, before)
            for burner in burners:
                burner.kill()
                burner.join(timeout=5)
        assert stretched > 0.1, "the machine did not preempt the loop thread; nothing tested"
        assert [s for s in watchdog.starved if s.seconds >= stretched * 0.9], (
            stretched,
            [(s.seconds, s.runnable_seconds) for s in watchdog.starved + watchdog.stalls],
        )
        assert len(watchdog.stalls) == 1, watchdog.stalls
        blocked = watchdog.stalls[0]
        assert blocked.seconds - blocked.runnable_seconds > 0.15


class TestUnreadableStack:
    @pytest.mark.blocks_event_loop
    async def test_a_stack_that_changes_while_read_still_reports_the_stall(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def changed_under_the_reader(_frame: object) -> list[str]:
            raise AttributeError("'function' object has no attribute 'f_lineno'")

        monkeypatch.setattr("app.loop_watchdog.traceback.format_stack", changed_under_the_reader)
        watchdog = LoopWatchdog.start(threshold_s=0.1)
        try:
            await asyncio.sleep(0.05)
            blocking_call_in_a_handler()
            await asyncio.sleep(0.05)
            blocking_call_in_a_handler()
            await asyncio.sleep(0.1)
        finally:
            watchdog.stop()
        assert len(watchdog.stalls) == 2, "the watchdog stopped watching after the first"
        for stall in watchdog.stalls:
            assert stall.stack == "(the stack changed while it was read: AttributeError)\n"
