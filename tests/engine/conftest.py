"""An engine wired to an in-process simulated tenant, on each database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from starlette.applications import Starlette

from app.db.session import Database, SessionFactory, unit_of_work
from app.domain.machine import PlanState
from app.domain.tenant import TenantSpec
from app.engine.context import EngineContext
from app.engine.tick import tick
from app.graph.factory import GraphClientFactory
from app.services import plans, tenants
from app.services.context import AppContext
from app.services.plans import PlanView
from app.services.secrets import SecretBox
from app.services.tokens import create_token
from app.settings import GraphSettings, Settings
from app.simulator.app import create_simulator_app
from app.simulator.faults import SimLimits
from app.simulator.seed import generate_tenant
from app.simulator.state import SimState
from tests.factories import TEST_JOB_WAIT_SECONDS, FakeClock, app_under_test

SIM_URL = "http://sim.test/v1.0"


async def _no_sleep(_seconds: float) -> None:
    return None


@dataclass
class Rig:
    """Engine + simulated tenant + a tenant row; helpers to drive a plan."""

    ectx: EngineContext
    sim_app: Starlette
    sim_state: SimState
    sim_http: httpx.AsyncClient
    tenant_id: str
    clock: FakeClock
    plans_created: list[str] = field(default_factory=list)

    @property
    def session_factory(self) -> SessionFactory:
        return self.ectx.session_factory

    async def sim(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.sim_http.request(method, path, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def create_plan(self, template: str = "default", **over: Any) -> str:
        with unit_of_work(self.session_factory) as session:
            view = plans.create_plan(
                session,
                tenant_id=self.tenant_id,
                plans_dir=None,
                template=over.pop("template_name", template) if "spec" not in over else None,
                spec_data=over.pop("spec", None),
                name=None,
                binding_overrides=over.pop("bindings", {}),
                actor="tester",
                now=self.clock.now(),
            )
        return view.row.id

    def act(self, plan_id: str, event: str, **kwargs: Any) -> PlanView:
        from app.domain.machine import Event

        with unit_of_work(self.session_factory) as session:
            return plans.perform_action(
                session,
                plan_id=plan_id,
                event=Event(event),
                actor="tester",
                reason=kwargs.get("reason"),
                now=self.clock.now(),
                phase_key=kwargs.get("phase"),
            )

    def view(self, plan_id: str) -> PlanView:
        with self.session_factory() as session:
            return plans.get_plan_view(session, plan_id)

    async def run_until(
        self,
        plan_id: str,
        states: set[str],
        *,
        max_ticks: int = 60,
        advance_gates: bool = False,
        step_seconds: float = 86400,
    ) -> PlanView:
        """Tick (moving the fake clock a day each time) until the plan reaches one of ``states``."""
        for _ in range(max_ticks):
            view = self.view(plan_id)
            if view.row.state in states:
                return view
            if advance_gates and any(p.row.state == "awaiting_gate" for p in view.phases):
                self.act(plan_id, "advance", reason="pilot feedback looks good")
            await tick(self.ectx)
            self.clock.advance(seconds=step_seconds)
        view = self.view(plan_id)
        raise AssertionError(
            f"plan stuck in {view.row.state}: "
            + ", ".join(f"{p.row.key}={p.row.state} ({p.row.status_reason})" for p in view.phases)
        )


def make_rig_parts(
    users: int, admins: int, seed: int, limits: SimLimits | None = None
) -> tuple[SimState, Starlette]:
    state = generate_tenant(users=users, admins=admins, seed=seed)
    app = create_simulator_app(state, limits=limits or SimLimits(min_change_interval_seconds=0))
    return state, app


@pytest.fixture
def sim_size() -> tuple[int, int]:
    return (200, 30)


@pytest.fixture
def graph_settings() -> GraphSettings:
    return GraphSettings(request_timeout_seconds=5, total_deadline_seconds=30)


@asynccontextmanager
async def assemble_rig(
    session_factory: SessionFactory,
    graph_settings: GraphSettings,
    state: SimState,
    sim_app: Starlette,
    clock: FakeClock,
    *,
    worker_id: str = "test-worker",
    tenant_name: str = "Contoso (simulated)",
    min_change_interval_seconds: float = 0,
    write_quota: int = 100_000,
) -> AsyncIterator[Rig]:
    """An engine and a tenant row wired to ``sim_app``; the Graph clients close afterwards."""
    # Real seconds: the simulated tenant throttles on the real clock, so a Retry-After waited
    # out on virtual time would be retried while the tenant still refuses.
    factory = GraphClientFactory(
        graph_settings,
        transport_for=lambda _url: httpx.ASGITransport(app=sim_app),
    )
    box = SecretBox(Fernet.generate_key())
    ectx = EngineContext(
        db=Database(session_factory),
        graph_factory=factory,
        secret_box=box,
        clock=clock,
        worker_id=worker_id,
        sleeper=_no_sleep,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sim_app), base_url="http://sim.test"
    ) as http:
        profile = (await http.get("/_sim/profile")).json()
        spec = TenantSpec.model_validate(
            {
                **profile,
                "name": tenant_name,
                "graph_base_url": SIM_URL,
                "graph_limits": {
                    "min_change_interval_seconds": min_change_interval_seconds,
                    # At Graph's quota (3,000 writes per 150 s) the client would pace a whole
                    # plan's writes in real time, while the in-process tenant throttles on the
                    # fake clock; pacing has tests of its own (tests/graph/test_pacing.py).
                    "write_quota": write_quota,
                },
            }
        )
        with unit_of_work(session_factory) as session:
            tenant = tenants.create_tenant(session, spec=spec, box=box, now=clock.now())
        yield Rig(ectx, sim_app, state, http, tenant.id, clock)
    await factory.aclose_all()


@pytest.fixture
async def rig(
    session_factory: SessionFactory, sim_size: tuple[int, int], graph_settings: GraphSettings
) -> AsyncIterator[Rig]:
    users, admins = sim_size
    state, sim_app = make_rig_parts(users, admins, seed=11)
    async with assemble_rig(
        session_factory, graph_settings, state, sim_app, FakeClock()
    ) as assembled:
        yield assembled


TERMINAL = {
    PlanState.completed.value,
    PlanState.rolled_back.value,
    PlanState.failed.value,
    PlanState.cancelled.value,
}


@dataclass
class Clients:
    """The API in-process on the rig's engine and tenant: as an operator, and signed out."""

    api: httpx.AsyncClient
    anon: httpx.AsyncClient


@pytest.fixture
async def clients(rig: Rig, database_url: str) -> AsyncIterator[Clients]:
    settings = Settings(
        database_url=database_url,
        scheduler={"enabled": False},
        job_wait_seconds=TEST_JOB_WAIT_SECONDS,
    )
    ctx = AppContext(
        settings=settings,
        db=rig.ectx.db,
        secret_box=rig.ectx.secret_box,
        graph_factory=rig.ectx.graph_factory,
        clock=rig.clock,
    )
    with unit_of_work(rig.session_factory) as session:
        token, _ = create_token(session, role="operator", name="ops", now=rig.clock.now())
    transport = httpx.ASGITransport(app=app_under_test(ctx))
    async with (
        httpx.AsyncClient(
            transport=transport,
            base_url="http://api.test",
            headers={"Authorization": f"Bearer {token}"},
        ) as api,
        httpx.AsyncClient(transport=transport, base_url="http://api.test") as anon,
    ):
        yield Clients(api, anon)
