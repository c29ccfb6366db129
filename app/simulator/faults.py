"""Run-time knobs of the simulated tenant and the seeded fault injector.

Every random decision (5xx faults, lost responses, batch reply order) comes from one
``random.Random(seed)``, so a run with the same seed and the same request sequence replays.
"""

from __future__ import annotations

import random
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SimLimits(BaseModel):
    """Latency, throttling and fault settings; all changeable at run time (PUT /_sim/faults)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    latency_ms: float = Field(default=0.0, ge=0, le=60_000, description="added to each request")
    fault_rate: float = Field(default=0.0, ge=0, le=1, description="share answered 500/503/504")
    lost_response_rate: float = Field(
        default=0.0, ge=0, le=1, description="share committed but never answered in time"
    )
    lost_response_hang_seconds: float = Field(default=60.0, ge=0, le=3600)
    unavailable_retry_after_max_seconds: int = Field(
        default=5, ge=1, le=120, description="a 503's Retry-After: whole seconds, 1 to this"
    )
    seed: int = Field(default=1, description="seeds faults and batch reply order")
    throttling: bool = Field(default=True, description="false turns every token bucket off")
    ru_per_10s: int | None = Field(
        default=None, gt=0, description="resource units per 10 s; None derives S/M/L from users"
    )
    write_quota: int = Field(default=3000, gt=0, description="writes per write window")
    write_window_seconds: float = Field(default=150.0, gt=0)
    reports_per_10s: int = Field(default=5, gt=0, description="directory audit requests per 10 s")
    min_change_interval_seconds: float = Field(
        default=300.0, ge=0, description="an assignment can't be changed again sooner"
    )
    policy_patch_status: Literal[200, 204] = Field(
        default=200, description="PATCH rule answer: 200 with the rule (newest doc) or 204"
    )
    page_size: int = Field(default=100, ge=1, le=999, description="items per page without $top")
    max_page_size: int = Field(
        default=999, ge=1, le=999, description="largest page served, whatever $top asks for"
    )


class FaultInjector:
    """Seeded draws for 5xx faults, lost responses and batch shuffles."""

    FAULT_STATUSES = (500, 503, 504)

    def __init__(self, seed: int) -> None:
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        self._rng = random.Random(f"faults:{seed}")

    def fault(self, rate: float) -> int | None:
        """A 5xx status for this request, or None. Draws nothing when the rate is 0."""
        if rate <= 0:
            return None
        if self._rng.random() < rate:
            return self._rng.choice(self.FAULT_STATUSES)
        return None

    def lost(self, rate: float) -> bool:
        return rate > 0 and self._rng.random() < rate

    def shuffle(self, items: list[str]) -> list[str]:
        shuffled = list(items)
        self._rng.shuffle(shuffled)
        return shuffled

    def retry_after(self, longest: int) -> int:
        """Seconds a 503 asks the caller to wait (Graph sends whole seconds on 503)."""
        return self._rng.randint(1, longest)
