"""Scheduled collection of PIM activity, one tenant at a time under a lease.

Every replica runs the collection job; a lease per tenant (``monitoring:{tenant_id}``) makes
sure one collects at a time, and a tenant collected recently by anyone is skipped, so several
replicas don't multiply the Graph reads (the audit log allows 5 requests per 10 s).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlmodel import Session

from app import metrics
from app.db.models import Tenant
from app.db.repos.leases import LeaseRepository
from app.db.repos.monitoring import MonitoringRepository
from app.db.repos.plans import PlanRepository
from app.domain.machine import PlanState
from app.engine.context import EngineContext, Lease, release, renewed
from app.graph.errors import GraphCredentialError
from app.logging import get_logger
from app.problems import TenantCredentialError
from app.services.monitoring.collect import CollectionError, CollectionResult, collect_tenant
from app.services.monitoring.reports import CollectionStatus, collection_status
from app.services.tenants import credential_problem
from app.settings import MonitoringSettings

log = get_logger(__name__)

MONITORED_PLAN_STATES = (
    PlanState.scheduled.value,
    PlanState.running.value,
    PlanState.paused.value,
    PlanState.completed.value,
    PlanState.failed.value,
)
"""A tenant is monitored once one of its plans has started, until it is rolled back."""


def _lease_name(tenant_id: str) -> str:
    return f"monitoring:{tenant_id}"


async def collect_now(
    ectx: EngineContext, tenant: Tenant, settings: MonitoringSettings
) -> CollectionResult | None:
    """Collect the tenant's activity now; None when another worker is collecting it.

    Raises :class:`CollectionError` when Graph fails (recorded on the cursors), and
    :class:`~app.problems.TenantCredentialError` when the tenant's credential gets no token.
    """
    name = _lease_name(tenant.id)
    claimed_at = ectx.clock.now()
    token = await ectx.db.write(
        lambda session: LeaseRepository(session).claim(
            name, holder=ectx.worker_id, now=claimed_at, ttl=ectx.lease_ttl
        )
    )
    if token is None:
        metrics.record_collection("skipped")
        return None
    lease = Lease(name, ectx.worker_id, token)
    try:
        async with renewed(ectx, lease):
            with structlog.contextvars.bound_contextvars(tenant_id=tenant.id):
                try:
                    client = await ectx.client_for(tenant)
                    result = await collect_tenant(
                        db=ectx.db,
                        client=client,
                        tenant_id=tenant.id,
                        now=ectx.clock.now(),
                        settings=settings,
                    )
                except CollectionError as exc:
                    metrics.record_collection("failed")
                    log.warning("monitoring.collection_failed", error=str(exc))
                    if isinstance(exc.__cause__, GraphCredentialError):
                        raise credential_problem(tenant, exc.__cause__) from None
                    raise
                except TenantCredentialError as exc:
                    metrics.record_collection("failed")
                    log.warning("monitoring.collection_failed", error=exc.detail)
                    raise
        metrics.record_collection("ok")
        return result
    finally:
        await release(ectx, lease)


def _monitored(session: Session) -> list[Tenant]:
    plans = PlanRepository(session).list_plans(states=MONITORED_PLAN_STATES)
    ids = sorted({p.tenant_id for p in plans if p.started_at is not None})
    tenants = [session.get(Tenant, tenant_id) for tenant_id in ids]
    return [t for t in tenants if t is not None]


async def monitored_tenants(ectx: EngineContext) -> list[Tenant]:
    return await ectx.db.read(_monitored)


async def _collected_recently(
    ectx: EngineContext, tenant_id: str, settings: MonitoringSettings
) -> bool:
    cursors = await ectx.db.read(
        lambda session: MonitoringRepository(session).list_cursors(tenant_id)
    )
    runs = [c.last_run_at for c in cursors if c.last_run_at is not None]
    if not runs:
        return False
    return ectx.clock.now() - max(runs) < timedelta(seconds=settings.collect_seconds / 2)


async def collect_due(ectx: EngineContext, settings: MonitoringSettings) -> None:
    """The scheduled job: collect every monitored tenant not collected in the last half interval."""
    for tenant in await monitored_tenants(ectx):
        if await _collected_recently(ectx, tenant.id, settings):
            continue
        try:
            await collect_now(ectx, tenant, settings)
        except (CollectionError, TenantCredentialError):
            continue  # recorded on the cursor, or the credential's refusal, and logged


@dataclass(frozen=True)
class Freshness:
    ok: bool
    reason: str | None = None


async def ensure_fresh(
    ectx: EngineContext, tenant: Tenant, settings: MonitoringSettings
) -> Freshness:
    """Make sure the tenant's monitoring data is no older than ``max_data_age_seconds``."""
    max_age = timedelta(seconds=settings.max_data_age_seconds)

    async def status() -> CollectionStatus:
        now = ectx.clock.now()
        return await ectx.db.read(
            lambda session: collection_status(session, tenant.id, now=now, max_age=max_age)
        )

    if not (await status()).stale:
        return Freshness(True)
    try:
        result = await collect_now(ectx, tenant, settings)
    except CollectionError as exc:
        return Freshness(False, f"monitoring data could not be collected ({exc})")
    except TenantCredentialError as exc:
        return Freshness(False, f"monitoring data could not be collected: {exc.detail}")
    if result is not None:
        return Freshness(True)
    if (await status()).stale:
        return Freshness(False, "monitoring data is being collected by another worker")
    return Freshness(True)
