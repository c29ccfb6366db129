"""Token-bucket throttling after Graph's identity and access limits (reference §2.3).

* Resource units per app+tenant per 10 s: S (<50 users) 3,500, M (50-500) 5,000, L (>500) 8,000.
  A GET costs 1 RU (``subscribedSkus`` 3), a write 1 RU; ``$select`` -1, ``$expand`` +1, never
  below 1.
* Write quota: ``write_quota`` writes per ``write_window_seconds`` (Graph: 3,000 per 150 s).
* Directory audits (identity and access reports): 5 requests per 10 s per app per tenant, in a
  bucket of their own; they cost no resource units.
* Mail goes to Exchange, which has its own limits; the simulator charges it nothing.

A request that can't pay is refused whole (no bucket is debited) with a fractional
``Retry-After``: the seconds until every bucket it needs holds enough tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.simulator.faults import SimLimits

WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})


def resource_units_per_10s(user_count: int) -> int:
    if user_count < 50:
        return 3500
    if user_count <= 500:
        return 5000
    return 8000


class TokenBucket:
    def __init__(self, capacity: float, refill_per_second: float, now: float) -> None:
        self.capacity = capacity
        self.rate = refill_per_second
        self.tokens = capacity
        self.updated = now

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def wait_for(self, cost: float, now: float) -> float:
        """Seconds until ``cost`` tokens are available (0 when they already are)."""
        self._refill(now)
        if self.tokens >= cost:
            return 0.0
        return (min(cost, self.capacity) - self.tokens) / self.rate

    def take(self, cost: float, now: float) -> None:
        self._refill(now)
        self.tokens -= cost

    def usage(self) -> float:
        return (self.capacity - self.tokens) / self.capacity


@dataclass(frozen=True)
class Charge:
    resource_units: int
    writes: int
    reports: int


@dataclass(frozen=True)
class Verdict:
    """Outcome of asking the buckets: ``retry_after`` set means throttled."""

    charge: Charge
    retry_after: float | None = None
    scope: str = ""
    information: str = ""
    usage: float = 0.0


def charge_for(method: str, path: str, params: dict[str, str]) -> Charge:
    lowered = path.lower().strip("/")
    if lowered.startswith("auditlogs/"):
        return Charge(0, 0, 1)
    if "/sendmail" in lowered or "/microsoft.graph.sendmail" in lowered:
        return Charge(0, 0, 0)
    cost = 3 if method == "GET" and lowered.startswith("subscribedskus") else 1
    if "$select" in params:
        cost -= 1
    if "$expand" in params:
        cost += 1
    return Charge(max(cost, 1), 1 if method in WRITE_METHODS else 0, 0)


class Throttler:
    """The three buckets of one app+tenant pair."""

    def __init__(self, limits: SimLimits, user_count: int, app_id: str, tenant_id: str) -> None:
        self.app_id = app_id
        self.tenant_id = tenant_id
        self.configure(limits, user_count, now=0.0)

    def configure(self, limits: SimLimits, user_count: int, *, now: float) -> None:
        self.enabled = limits.throttling
        ru = limits.ru_per_10s or resource_units_per_10s(user_count)
        self.ru = TokenBucket(ru, ru / 10.0, now)
        self.writes = TokenBucket(
            limits.write_quota, limits.write_quota / limits.write_window_seconds, now
        )
        self.reports = TokenBucket(limits.reports_per_10s, limits.reports_per_10s / 10.0, now)

    def ask(self, charge: Charge, now: float) -> Verdict:
        if not self.enabled:
            return Verdict(charge)
        needs = [
            (self.ru, charge.resource_units, "ReadWrite", "ResourceUnitLimitExceeded"),
            (self.writes, charge.writes, "Write", "WriteLimitExceeded"),
            (self.reports, charge.reports, "Read", "ReportRequestLimitExceeded"),
        ]
        waits = [
            (bucket.wait_for(cost, now), limit, info) for bucket, cost, limit, info in needs if cost
        ]
        worst = max(waits, default=(0.0, "", ""))
        if worst[0] > 0:
            scope = f"Tenant_Application/{worst[1]}/{self.app_id}/{self.tenant_id}"
            return Verdict(charge, max(worst[0], 0.001), scope, worst[2], 1.0)
        usage = 0.0
        for bucket, cost, _, _ in needs:
            if cost:
                bucket.take(cost, now)
                usage = max(usage, bucket.usage())
        return Verdict(charge, usage=usage)
