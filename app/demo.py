"""``pim-rollout demo``: the whole rollout on SQLite against an in-process simulated tenant.

The simulated tenant lives in the same process (Graph calls go through an in-process ASGI
transport, no network) and is also mounted under ``/simulated-tenant`` so its state can be
inspected. The demo plan runs every phase in a few minutes; manual gates are advanced by the
demo after a short pause unless ``--manual-gates`` asks the operator to do it.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx
import uvicorn
from cryptography.fernet import Fernet
from rich.console import Console
from starlette.applications import Starlette

from app.db.migrate import upgrade
from app.db.models import Tenant
from app.domain.machine import Event, PlanState
from app.domain.tenant import TenantSpec
from app.engine import actions
from app.engine.context import EngineContext
from app.engine.monitoring import collect_now
from app.graph.factory import GraphClientFactory
from app.main import build_context, create_app
from app.services import plans, tenants
from app.services.context import AppContext
from app.services.monitoring.collect import CollectionError
from app.services.plans import PlanView
from app.services.secrets import SecretBox
from app.services.tokens import create_token
from app.settings import Settings
from app.simulator.app import create_simulator_app
from app.simulator.faults import SimLimits
from app.simulator.seed import generate_tenant

DEMO_GRAPH_URL = "http://demo-tenant.test/v1.0"
FINISHED = {PlanState.completed.value, PlanState.rolled_back.value, PlanState.cancelled.value}


@dataclass(frozen=True)
class DemoOptions:
    port: int = 8000
    manual_gates: bool = False
    users: int = 300
    admins: int = 40
    seed: int = 7
    database: Path = Path("pim-rollout-demo.db")
    gate_pause_seconds: float = 8.0
    exit_when_done: bool = False
    rollback_at_end: bool = False


def _fresh_database(path: Path) -> str:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    upgrade(url)
    return url


async def run_demo(options: DemoOptions, console: Console) -> int:
    url = _fresh_database(options.database)
    settings = Settings(
        database_url=url,
        public_url=f"http://127.0.0.1:{options.port}",
        scheduler={"enabled": True, "tick_seconds": 1.0},
        secret_key_file=options.database.with_suffix(".key"),
    )
    state = generate_tenant(users=options.users, admins=options.admins, seed=options.seed)
    sim = create_simulator_app(
        state, limits=SimLimits(latency_ms=15, min_change_interval_seconds=10)
    )
    graph = GraphClientFactory(
        settings.graph,
        transport_for=lambda base: (
            httpx.ASGITransport(app=sim) if base.startswith("http://demo-tenant.test") else None
        ),
    )
    # A fresh key each run: the demo database is recreated each run too.
    ctx = build_context(settings, graph_factory=graph, secret_box=SecretBox(Fernet.generate_key()))
    app = create_app(settings, context=ctx)
    app.mount("/simulated-tenant", sim)

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sim), base_url="http://sim"
    ) as http:
        profile = (await http.get("/_sim/profile")).json()
    spec = TenantSpec.model_validate(
        {
            **profile,
            "name": "Contoso (simulated)",
            "graph_base_url": DEMO_GRAPH_URL,
            "graph_limits": {"min_change_interval_seconds": 10},
        }
    )
    now = ctx.clock.now()
    with ctx.db.writing() as session:  # before the server and the scheduler start
        token, _ = create_token(session, role="admin", name="demo admin", now=now)
        tenant = tenants.create_tenant(session, spec=spec, box=ctx.secret_box, now=now)
        plan_id = plans.create_plan(
            session,
            tenant_id=tenant.id,
            plans_dir=settings.plans_dir,
            template="demo",
            spec_data=None,
            name="Demo rollout",
            binding_overrides={},
            actor="demo",
            now=now,
        ).row.id

    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=options.port, log_level="warning", access_log=False
        )
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            await serving
            return 1
        await asyncio.sleep(0.05)

    base = settings.public_url
    console.print(f"[bold]PIM Rollout demo[/bold] - admin UI: {base}/ui  (API: {base}/api/v1)")
    console.print(f"Admin token (shown once): [bold]{token}[/bold]")
    console.print(
        f"Simulated tenant: {options.users} users, {options.admins} admins; its state at "
        f"{base}/simulated-tenant/_sim/state"
    )
    console.print(
        "Manual gates: "
        + (
            "advance them in the UI or with POST /api/v1/plans/{id}/advance"
            if options.manual_gates
            else f"advanced by the demo after {options.gate_pause_seconds:g} s"
        )
    )
    ectx = EngineContext.from_app(ctx, worker_id="demo")
    view = await actions.start(
        ectx, plan_id=plan_id, actor="demo", reason="demo run", expected_version=None
    )
    console.print(f"Plan {plan_id} started ({view.row.state}); Ctrl-C stops the server.")
    try:
        await _follow(ctx, plan_id, options, console, _ActivityFeed(sim, ectx, tenant.id, settings))
        if options.exit_when_done:
            server.should_exit = True
        await serving
    finally:
        await ctx.graph_factory.aclose_all()
    final = (await _view(ctx, plan_id)).row.state
    return 0 if final in {PlanState.completed.value, PlanState.rolled_back.value} else 1


async def _view(ctx: AppContext, plan_id: str) -> PlanView:
    return await ctx.db.read(lambda session: plans.get_plan_view(session, plan_id))


class _ActivityFeed:
    """Once a phase's admins are eligible, they start activating: the monitoring page fills."""

    def __init__(
        self, sim: Starlette, ectx: EngineContext, tenant_id: str, settings: Settings
    ) -> None:
        self.sim = sim
        self.ectx = ectx
        self.tenant_id = tenant_id
        self.settings = settings
        self.fed: set[str] = set()

    async def feed(self, phase_key: str, console: Console) -> None:
        if phase_key in self.fed:
            return
        self.fed.add(phase_key)
        body = {"activations": 30, "days": 1, "seed": len(self.fed), "settle_minutes": 0}
        transport = httpx.ASGITransport(app=self.sim)
        async with httpx.AsyncClient(transport=transport, base_url="http://sim") as http:
            response = await http.post("/_sim/activity", json=body)
        if response.status_code != 200:
            return
        summary = response.json()
        tenant = await self.ectx.db.read(lambda session: session.get(Tenant, self.tenant_id))
        if tenant is not None:
            with contextlib.suppress(CollectionError):
                await collect_now(self.ectx, tenant, self.settings.monitoring)
        console.print(
            f"  (simulated: {summary['requested']} activations by the admins converted so far; "
            "see the tenant's monitoring page)"
        )


async def _follow(
    ctx: AppContext, plan_id: str, options: DemoOptions, console: Console, feed: _ActivityFeed
) -> None:
    seen: dict[str, tuple[str, int]] = {}
    gate_since: dict[str, float] = {}
    rolled_back = False
    loop = asyncio.get_running_loop()
    while True:
        view = await _view(ctx, plan_id)
        for phase in view.phases:
            key = phase.row.key
            marker = (phase.row.state, phase.progress.done)
            if seen.get(key) != marker:
                seen[key] = marker
                progress = phase.progress
                detail = ""
                if progress.total:
                    detail = f" ({progress.done}/{progress.total} converted"
                    if progress.skipped or progress.kept_active:
                        detail += (
                            f", {progress.skipped} skipped, {progress.kept_active} kept Active"
                        )
                    detail += ")"
                reason = f" - {phase.row.status_reason}" if phase.row.status_reason else ""
                console.print(f"  {key:<16} {phase.row.state:<14}{detail}{reason}")
                if phase.row.state == "completed" and phase.progress.done:
                    await feed.feed(key, console)
            if phase.row.state == "awaiting_gate" and not options.manual_gates:
                since = gate_since.setdefault(key, loop.time())
                if loop.time() - since >= options.gate_pause_seconds:
                    with contextlib.suppress(Exception):
                        await ctx.db.write(
                            partial(
                                plans.perform_action,
                                plan_id=plan_id,
                                event=Event.advance,
                                actor="demo",
                                reason="advanced by the demo",
                                now=ctx.clock.now(),
                                phase_key=key,
                            )
                        )
        if (
            view.row.state == PlanState.completed.value
            and options.rollback_at_end
            and not rolled_back
        ):
            rolled_back = True
            await ctx.db.write(
                partial(
                    plans.perform_action,
                    plan_id=plan_id,
                    event=Event.rollback,
                    actor="demo",
                    reason="the demo shows the rollback too",
                    now=ctx.clock.now(),
                )
            )
            continue
        if view.row.state in FINISHED and not (
            options.rollback_at_end
            and not rolled_back
            and view.row.state == PlanState.completed.value
        ):
            console.print(
                f"[bold]Plan {view.row.state}[/bold] (version {view.row.version}). "
                f"The server keeps running for a look around; Ctrl-C stops it."
            )
            return
        if view.row.state == PlanState.failed.value:
            console.print(f"[red]Plan failed:[/red] {view.row.status_reason or ''}")
        await asyncio.sleep(1.0)
