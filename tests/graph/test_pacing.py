"""Pacer timing with a fake clock and sleeper."""

from __future__ import annotations

import asyncio
import math

import pytest

from app.domain.tenant import GraphLimits
from app.graph.pacing import Pacer, reports_pacer_for, write_pacer_for

from .conftest import FakeTime


def pacer(fake_time: FakeTime, rate: float, burst: int) -> Pacer:
    return Pacer(rate, burst, clock=fake_time.clock, sleeper=fake_time.sleep)


async def times_of(fake_time: FakeTime, p: Pacer, count: int, n: int = 1) -> list[float]:
    stamps = []
    for _ in range(count):
        await p.acquire(n)
        stamps.append(fake_time.now - 1000.0)
    return stamps


class TestPacer:
    async def test_burst_then_steady_rate(self, fake_time: FakeTime) -> None:
        p = pacer(fake_time, rate=2.0, burst=3)
        stamps = await times_of(fake_time, p, 6)
        assert stamps == pytest.approx([0.0, 0.0, 0.0, 0.5, 1.0, 1.5])

    async def test_never_more_than_burst_plus_rate_times_window(self, fake_time: FakeTime) -> None:
        p = pacer(fake_time, rate=5.0, burst=5)
        stamps = await times_of(fake_time, p, 200)
        for start in stamps:
            in_window = [s for s in stamps if start <= s < start + 10.0]
            assert len(in_window) <= 5 + 5 * 10

    async def test_idle_time_refills_the_burst(self, fake_time: FakeTime) -> None:
        p = pacer(fake_time, rate=1.0, burst=2)
        await times_of(fake_time, p, 4)
        fake_time.advance(100.0)
        before = fake_time.sleeps.copy()
        await times_of(fake_time, p, 2)
        assert fake_time.sleeps == before

    async def test_large_acquire_goes_then_delays_the_next(self, fake_time: FakeTime) -> None:
        p = pacer(fake_time, rate=10.0, burst=2)
        await p.acquire(20)
        assert fake_time.now == 1000.0
        await p.acquire(1)
        assert fake_time.now - 1000.0 == pytest.approx(1.9)

    async def test_zero_tokens_never_waits(self, fake_time: FakeTime) -> None:
        p = pacer(fake_time, rate=0.1, burst=1)
        await p.acquire(1)
        await p.acquire(0)
        assert fake_time.sleeps == []

    async def test_concurrent_acquirers_get_successive_slots(self) -> None:
        # A clock that stands still while everybody sleeps: each caller sleeps exactly once,
        # until its own slot, whatever the sleeper does.
        sleeps: list[float] = []

        async def record(seconds: float) -> None:
            sleeps.append(seconds)
            await asyncio.sleep(0)

        p = Pacer(4.0, 1, clock=lambda: 0.0, sleeper=record)
        await asyncio.gather(*(p.acquire() for _ in range(4)))
        assert sorted(sleeps) == pytest.approx([0.25, 0.5, 0.75])

    async def test_hold_makes_everyone_wait(self, fake_time: FakeTime) -> None:
        p = pacer(fake_time, rate=math.inf, burst=1)
        p.hold(2.5)
        await p.acquire()
        assert fake_time.now - 1000.0 == pytest.approx(2.5)
        await p.acquire()
        assert fake_time.now - 1000.0 == pytest.approx(2.5)

    async def test_hold_never_shortens(self, fake_time: FakeTime) -> None:
        p = pacer(fake_time, rate=math.inf, burst=1)
        p.hold(5.0)
        p.hold(1.0)
        await p.acquire()
        assert fake_time.now - 1000.0 == pytest.approx(5.0)

    async def test_hold_started_while_sleeping_is_respected(self, fake_time: FakeTime) -> None:
        p = pacer(fake_time, rate=1.0, burst=1)
        await p.acquire()
        sleeping = asyncio.create_task(p.acquire())
        await asyncio.sleep(0)
        p.hold(10.0)  # someone got a 429 meanwhile
        await sleeping
        assert fake_time.now - 1000.0 >= 10.0

    async def test_near_limit_slows_down_and_recovers(self, fake_time: FakeTime) -> None:
        p = pacer(fake_time, rate=10.0, burst=1)
        p.observe_limit_percentage(0.85)
        assert p.rate_per_second == 5.0
        p.observe_limit_percentage(0.97)
        assert p.rate_per_second == 2.5
        p.observe_limit_percentage(0.2)
        assert p.rate_per_second == 10.0

    async def test_slow_down_expires(self, fake_time: FakeTime) -> None:
        p = pacer(fake_time, rate=10.0, burst=1)
        p.observe_limit_percentage(0.9)
        fake_time.advance(9.9)
        assert p.rate_per_second == 5.0
        fake_time.advance(0.2)
        assert p.rate_per_second == 10.0

    @pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0)])
    def test_rejects_nonsense(self, fake_time: FakeTime, rate: float, burst: int) -> None:
        with pytest.raises(ValueError):
            pacer(fake_time, rate=rate, burst=burst)


class TestPacersFromLimits:
    def test_write_pacer_uses_the_share_of_the_quota(self, fake_time: FakeTime) -> None:
        p = write_pacer_for(GraphLimits(), clock=fake_time.clock, sleeper=fake_time.sleep)
        assert p.rate_per_second == pytest.approx(3000 / 150 * 0.95)

    async def test_write_pacer_stays_inside_the_quota_window(self, fake_time: FakeTime) -> None:
        limits = GraphLimits(write_quota=30, write_window_seconds=10.0, pacing_share=0.9)
        p = write_pacer_for(limits, clock=fake_time.clock, sleeper=fake_time.sleep)
        stamps = await times_of(fake_time, p, 120)
        for start in stamps:
            assert len([s for s in stamps if start <= s < start + 10.0]) <= 30

    async def test_reports_pacer_allows_five_per_ten_seconds(self, fake_time: FakeTime) -> None:
        p = reports_pacer_for(GraphLimits(), clock=fake_time.clock, sleeper=fake_time.sleep)
        stamps = await times_of(fake_time, p, 30)
        for start in stamps:
            assert len([s for s in stamps if start <= s < start + 10.0]) <= 5
