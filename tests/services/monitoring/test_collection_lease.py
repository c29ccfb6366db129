"""The per-tenant collection lease: kept alive while a collection runs, lapsing soon after its
holder dies, so a killed worker cannot hold a health gate shut."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from app.db.models import Lease
from app.engine import monitoring
from app.engine.context import EngineContext
from app.services import tenants
from app.services.monitoring.collect import CollectionResult
from tests.monitoring_rig import MonitoringRig

SHORT_TTL = timedelta(seconds=0.3)


def _worker(rig: MonitoringRig, name: str) -> EngineContext:
    return replace(rig.ectx, worker_id=name, lease_ttl=SHORT_TTL)


async def _collect(rig: MonitoringRig, ectx: EngineContext) -> CollectionResult | None:
    with rig.session_factory() as session:
        tenant = tenants.get_tenant(session, rig.tenant_id)
    return await monitoring.collect_now(ectx, tenant, rig.settings)


def _lease(rig: MonitoringRig) -> Lease | None:
    with rig.session_factory() as session:
        return session.get(Lease, f"monitoring:{rig.tenant_id}")


@pytest.fixture
async def held(
    rig: MonitoringRig, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[asyncio.Task[Any], asyncio.Event]]:
    """Worker A's collection, stopped inside its Graph reads until the event is set."""
    proceed = asyncio.Event()
    reading = asyncio.Event()
    real = monitoring.collect_tenant
    calls = 0

    async def slow_first(**kwargs: Any) -> CollectionResult:
        nonlocal calls
        calls += 1
        if calls == 1:
            reading.set()
            await proceed.wait()
        return await real(**kwargs)

    monkeypatch.setattr(monitoring, "collect_tenant", slow_first)
    task = asyncio.create_task(_collect(rig, _worker(rig, "worker-a")))
    # Inside its reads, not merely holding the lease: a task cancelled between the two would
    # leave the first call, the one that waits, to the next worker.
    async with asyncio.timeout(5):
        await reading.wait()
    assert _lease_holder(rig) == "worker-a"
    yield task, proceed
    proceed.set()
    if not task.done():
        task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def _lease_holder(rig: MonitoringRig) -> str | None:
    lease = _lease(rig)
    if lease is None or lease.expires_at <= rig.clock.now():
        return None
    return lease.holder


async def _until(condition: Callable[[], bool]) -> None:
    """Poll, because the condition is a database row that no event announces."""
    async with asyncio.timeout(5):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


class TestCollectionLease:
    async def test_a_second_worker_skips_a_tenant_being_collected(
        self, rig: MonitoringRig, held: tuple[asyncio.Task[Any], asyncio.Event]
    ) -> None:
        task, proceed = held
        assert await _collect(rig, _worker(rig, "worker-b")) is None
        proceed.set()
        assert await task is not None
        assert _lease_holder(rig) is None, "a finished collection releases its lease"
        rig.clock.advance(1)
        assert await _collect(rig, _worker(rig, "worker-b")) is not None

    async def test_a_long_collection_keeps_its_lease(
        self, rig: MonitoringRig, held: tuple[asyncio.Task[Any], asyncio.Event]
    ) -> None:
        task, proceed = held
        first_expiry = _lease(rig).expires_at  # type: ignore[union-attr]
        rig.clock.advance(10 * SHORT_TTL.total_seconds())
        await _until(lambda: _lease(rig).expires_at > first_expiry)  # type: ignore[union-attr]
        assert await _collect(rig, _worker(rig, "worker-b")) is None
        proceed.set()
        assert await task is not None

    async def test_the_lease_of_a_worker_killed_mid_collection_lapses_within_its_ttl(
        self,
        rig: MonitoringRig,
        held: tuple[asyncio.Task[Any], asyncio.Event],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        task, _proceed = held

        async def killed(*_args: Any) -> None:
            """A process killed with -9 releases nothing and renews nothing from then on."""

        monkeypatch.setattr(monitoring, "release", killed)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert _lease_holder(rig) == "worker-a"
        assert await _collect(rig, _worker(rig, "worker-b")) is None

        rig.clock.advance(SHORT_TTL.total_seconds() + 0.1)
        assert await _collect(rig, _worker(rig, "worker-b")) is not None
