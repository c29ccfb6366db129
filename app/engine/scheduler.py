"""APScheduler 3.x wakes the tick; the database decides what is due (see ``tick``)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from app.engine.context import EngineContext
from app.engine.gates import GateEvaluator
from app.engine.monitoring import collect_due
from app.engine.tick import tick
from app.logging import get_logger
from app.settings import MonitoringSettings

log = get_logger(__name__)


async def run_tick(ectx: EngineContext, gates: GateEvaluator) -> None:
    """Module-level job target (APScheduler 3.x wants an importable function)."""
    with ectx.shutdown.running():
        try:
            await tick(ectx, gates=gates)
        except asyncio.CancelledError:
            # Only shutdown cancels a tick, past its grace period; APScheduler would log this
            # as a failed job with a traceback. The job ends here, so nothing awaits the error.
            log.warning("engine.tick_cancelled_at_shutdown")
        except Exception as exc:  # APScheduler would only log it; say which tick failed
            log.error("engine.tick_failed", error=type(exc).__name__, detail=str(exc), exc_info=exc)


async def run_collection(ectx: EngineContext, settings: MonitoringSettings) -> None:
    """Module-level job target: collect PIM activity of the monitored tenants."""
    with ectx.shutdown.running():
        try:
            await collect_due(ectx, settings)
        except asyncio.CancelledError:
            log.warning("monitoring.collection_cancelled_at_shutdown")
        except Exception as exc:  # keep the job alive; the next run tries again
            log.error(
                "monitoring.collection_job_failed",
                error=type(exc).__name__,
                detail=str(exc),
                exc_info=exc,
            )


def start_scheduler(
    ectx: EngineContext,
    gates: GateEvaluator,
    *,
    seconds: float,
    monitoring: MonitoringSettings | None = None,
) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.add_job(
        run_tick,
        "interval",
        seconds=seconds,
        args=[ectx, gates],
        id="tick",
        coalesce=True,
        max_instances=1,
        next_run_time=datetime.now(UTC),
    )
    if monitoring is not None and monitoring.enabled:
        scheduler.add_job(
            run_collection,
            "interval",
            seconds=monitoring.collect_seconds,
            args=[ectx, monitoring],
            id="collect",
            coalesce=True,
            max_instances=1,
            next_run_time=datetime.now(UTC),
        )
    scheduler.start()
    log.info("engine.scheduler_started", every_seconds=seconds, worker=ectx.worker_id)
    return scheduler
