"""Client-side pacing so the product stays inside Graph's quotas instead of hammering them.

Graph's identity write quota is 3,000 writes per 150 s per app and tenant, the reports bucket
(``directoryAudits``) 5 requests per 10 s (reference §2.3). :class:`Pacer` is a token bucket
implemented as a virtual schedule (GCRA): each ``acquire`` reserves the next free slot and then
sleeps until it, so a caller sleeps once, concurrent callers are served in arrival order without a
lock, and a fake clock/sleeper pair replays exactly in tests.

A pacer also carries the "everybody back off" signal: :meth:`Pacer.hold` after a 429 makes every
caller wait out the ``Retry-After``, and :meth:`Pacer.observe_limit_percentage` slows the rate
when Graph reports (``x-ms-throttle-limit-percentage``) that the app is near its limit.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

from app.domain.tenant import GraphLimits

REPORTS_REQUESTS = 5
REPORTS_WINDOW_SECONDS = 10.0
NEAR_LIMIT = 0.8
"""Graph sends ``x-ms-throttle-limit-percentage`` once usage reaches 0.8 of a limit."""
SLOW_DOWN_SECONDS = 10.0
"""How long one near-limit signal slows the pacer: Graph's resource-unit window is 10 s, and the
header is simply absent (never "0.3") once usage drops, so the slow-down has to expire."""


class Pacer:
    """Async token bucket: ``rate_per_second`` sustained, up to ``burst`` at once.

    ``rate_per_second=math.inf`` gives a pacer that never delays except during a :meth:`hold`.
    ``acquire(n)`` with ``n`` larger than ``burst`` is allowed: the request goes when a slot is
    free and the debt delays whoever comes next, so the average rate still holds.
    """

    def __init__(
        self,
        rate_per_second: float,
        burst: int,
        *,
        clock: Callable[[], float],
        sleeper: Callable[[float], Awaitable[None]],
    ) -> None:
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self._rate = rate_per_second
        self._burst = burst
        self._clock = clock
        self._sleeper = sleeper
        self._factor = 1.0
        self._slow_until = -math.inf
        self._next_free = -math.inf  # theoretical arrival time of the next request
        self._held_until = -math.inf
        self._hold_generation = 0

    def _current_factor(self) -> float:
        return self._factor if self._clock() < self._slow_until else 1.0

    @property
    def rate_per_second(self) -> float:
        """The current effective rate (after any slow-down)."""
        return self._rate * self._current_factor()

    def _interval(self) -> float:
        return 0.0 if math.isinf(self._rate) else 1.0 / (self._rate * self._current_factor())

    def _reserve(self, cost: int) -> float:
        """Book a slot for ``cost`` tokens and return the clock time at which it starts."""
        now = self._clock()
        interval = self._interval()
        start = max(now, self._held_until)
        allowed_at = max(start, self._next_free - (self._burst - 1) * interval)
        self._next_free = max(self._next_free, allowed_at) + cost * interval
        return allowed_at

    async def acquire(self, n: int = 1) -> None:
        """Wait until ``n`` tokens may be spent, then spend them."""
        if n < 1:
            return
        while True:
            generation = self._hold_generation
            allowed_at = self._reserve(n)
            wait = allowed_at - self._clock()
            if wait > 0:
                await self._sleeper(wait)
            # A hold that started while we slept and lasts past our slot wins over the slot.
            if self._hold_generation == generation or self._held_until <= allowed_at:
                return

    def hold(self, seconds: float) -> None:
        """Nobody acquires for ``seconds`` from now (extends, never shortens, a current hold)."""
        until = self._clock() + max(0.0, seconds)
        if until > self._held_until:
            self._held_until = until
            self._hold_generation += 1

    def observe_limit_percentage(self, percentage: float) -> None:
        """Slow down near Graph's limit for :data:`SLOW_DOWN_SECONDS`: half rate from 0.8, a
        quarter from 0.95; a value below 0.8 ends the slow-down at once."""
        if percentage < NEAR_LIMIT:
            self._slow_until = -math.inf
            return
        self._factor = 0.25 if percentage >= 0.95 else 0.5
        self._slow_until = self._clock() + SLOW_DOWN_SECONDS


def write_pacer_for(
    limits: GraphLimits,
    *,
    clock: Callable[[], float],
    sleeper: Callable[[float], Awaitable[None]],
) -> Pacer:
    """The tenant's write pacer: ``write_quota / write_window_seconds * pacing_share`` per second.

    A window sees at most ``burst + rate * window`` writes, so the burst (one second's worth) is
    bounded by the headroom the pacing share leaves in the quota, and is at least 1.
    """
    rate = limits.write_quota / limits.write_window_seconds * limits.pacing_share
    headroom = limits.write_quota - rate * limits.write_window_seconds
    return Pacer(rate, max(1, min(int(rate), int(headroom))), clock=clock, sleeper=sleeper)


def reports_pacer_for(
    limits: GraphLimits,
    *,
    clock: Callable[[], float],
    sleeper: Callable[[float], Awaitable[None]],
) -> Pacer:
    """The reports bucket (audit logs): 5 requests per 10 s per app and tenant, one at a time."""
    rate = REPORTS_REQUESTS / REPORTS_WINDOW_SECONDS * limits.pacing_share
    return Pacer(rate, 1, clock=clock, sleeper=sleeper)
