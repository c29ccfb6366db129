"""Time for the simulated tenant.

Everything in the simulator reads time through a :class:`Clock`, so tests can step past the
five-minute rule or an activation's end without sleeping (``FakeClock.advance``).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Current UTC-aware wall time."""
        ...

    def monotonic(self) -> float:
        """Seconds on a monotonic scale (token buckets refill against it)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock that only moves when told to; wall time and monotonic time move together."""

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware start")
        self._now = start.astimezone(UTC)
        self._monotonic = 1000.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._now += timedelta(seconds=seconds)
        self._monotonic += seconds

    def set(self, when: datetime) -> None:
        """Jump to ``when`` (not earlier than now)."""
        when = when.astimezone(UTC)
        if when < self._now:
            raise ValueError("time only moves forward")
        self.advance((when - self._now).total_seconds())
