"""The one wiring point: ``create_app(settings, ...)`` builds the FastAPI app and its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio.to_thread
from fastapi import FastAPI

from app.api.docs import prepare_routes, serve_description
from app.api.middleware import RefuseNulCharacters, RequestContextMiddleware
from app.api.problem_docs import describe_problems
from app.api.routes import (
    comms,
    health,
    jobs,
    metrics,
    plans,
    reports,
    templates,
    tenants,
    tokens,
)
from app.db.session import Database, SessionFactory
from app.domain.clock import Clock
from app.engine.context import EngineContext
from app.engine.jobs import JobRunner
from app.logging import configure_logging
from app.problems import install_problem_handlers
from app.services.context import AppContext, SystemClock
from app.services.secrets import SecretBox
from app.settings import Settings
from app.ui.app import bind_ui_context, mount_ui

if TYPE_CHECKING:
    from app.engine.gates import GateEvaluator
    from app.graph.factory import GraphClientFactory


def build_context(
    settings: Settings,
    *,
    session_factory: SessionFactory | None = None,
    graph_factory: GraphClientFactory | None = None,
    clock: Clock | None = None,
    secret_box: SecretBox | None = None,
) -> AppContext:
    from app.graph.factory import GraphClientFactory

    db = (
        Database(session_factory)
        if session_factory is not None
        else Database.from_url(settings.database_url, threads=settings.database_threads)
    )
    return AppContext(
        settings=settings,
        db=db,
        secret_box=secret_box
        or SecretBox.from_settings(settings.secret_key, settings.secret_key_file),
        graph_factory=graph_factory or GraphClientFactory(settings.graph),
        clock=clock or SystemClock(),
    )


def create_app(
    settings: Settings,
    *,
    context: AppContext | None = None,
    gates: GateEvaluator | None = None,
) -> FastAPI:
    """Build the app; tests pass a ready ``context`` (ASGITransport runs no lifespan)."""
    ctx = context or build_context(settings)
    _observe_graph()
    app = FastAPI(
        title="PIM Rollout",
        version="0.1.0",
        description="Phased rollout of Entra ID PIM, with exact rollback.",
        lifespan=_lifespan,
        openapi_url=None,  # served by serve_description, off the loop
    )
    install_problem_handlers(app)
    for router in (
        health.router,
        tenants.router,
        templates.router,
        plans.router,
        tokens.router,
        comms.router,
        reports.router,
        jobs.router,
        metrics.router,
    ):
        app.include_router(router)
    describe_problems(app)
    serve_description(app)
    app.add_middleware(RefuseNulCharacters)
    app.add_middleware(RequestContextMiddleware)  # the outer one: it logs the refusals too
    app.state.ui = mount_ui(app, ctx)
    bind_context(app, ctx, gates=gates)
    prepare_routes(app)
    return app


def bind_context(app: FastAPI, ctx: AppContext, *, gates: GateEvaluator | None = None) -> None:
    """Serve ``app`` (built by :func:`create_app`) and its UI with ``ctx`` from its next start.

    Everything the app serves with is here, in ``app.state``: the context (and its settings),
    the job runner and the health gates, which the lifespan reads when the app starts.
    """
    if gates is None:
        from app.engine.health_gates import MonitoringGates

        gates = MonitoringGates(ctx.settings.monitoring)
    app.state.ctx = ctx
    app.state.jobs = JobRunner(
        EngineContext.from_app(ctx), wait_seconds=ctx.settings.job_wait_seconds
    )
    app.state.gates = gates
    bind_ui_context(app.state.ui, ctx)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    ctx: AppContext = app.state.ctx
    settings = ctx.settings
    # Sync handlers and database work share these threads; the pool is sized to match.
    anyio.to_thread.current_default_thread_limiter().total_tokens = settings.database_threads
    watchdog = None
    if settings.loop_watchdog_ms > 0:
        from app.loop_watchdog import LoopWatchdog

        watchdog = LoopWatchdog.start(threshold_s=settings.loop_watchdog_ms / 1000)
    scheduler = None
    engine = EngineContext.from_app(ctx)
    if settings.scheduler.enabled:
        from app.engine.scheduler import start_scheduler

        scheduler = start_scheduler(
            engine,
            app.state.gates,
            seconds=settings.scheduler.tick_seconds,
            monitoring=settings.monitoring,
        )
    try:
        yield
    finally:
        if scheduler is not None:
            scheduler.shutdown(wait=False)
            await engine.shutdown.drain(settings.scheduler.shutdown_grace_seconds)
        await app.state.jobs.aclose()
        await ctx.graph_factory.aclose_all()
        if watchdog is not None:
            watchdog.stop()


def _observe_graph() -> None:
    """Graph requests feed the process's Prometheus metrics (idempotent)."""
    from app.graph.requester import set_request_observer
    from app.metrics import GraphMetrics

    set_request_observer(GraphMetrics())


def create_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory app.main:create_app_from_env``."""
    from app.settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_level.value, settings.log_format.value)
    return create_app(settings)
