"""The simulated tenant, in-process, with its clock tied to the tests' fake time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from app.domain.tenant import GraphLimits, NoAuth
from app.graph.auth import build_auth
from app.graph.client import GraphClient
from app.settings import GraphSettings
from app.simulator.app import create_simulator_app
from app.simulator.clock import FakeClock
from app.simulator.faults import SimLimits
from app.simulator.seed import generate_tenant
from app.simulator.state import SimState

from .conftest import FakeTime

SIM_ORIGIN = "http://sim.test"
SIM_URL = f"{SIM_ORIGIN}/v1.0"
GLOBAL_ADMIN = "62e90394-69f5-4237-9190-012177145e10"
USER_ADMIN = "fe930be7-5e62-47db-91af-98c3a49a38b1"
REPORTS_READER = "4a5d8f65-41da-4de4-8968-e035b65339cf"


@dataclass
class SimTenant:
    """One simulated tenant: the ASGI app, its state and clock, and its control API."""

    state: SimState
    limits: SimLimits
    fake_time: FakeTime
    clock: FakeClock = field(default_factory=FakeClock)

    def __post_init__(self) -> None:
        self.app = create_simulator_app(self.state, limits=self.limits, clock=self.clock)
        # When the client sleeps (Retry-After, backoff, pacing), simulated time passes too.
        self.fake_time.listeners.append(self.clock.advance)

    def transport(self) -> httpx.ASGITransport:
        return httpx.ASGITransport(app=self.app)

    def control(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self.transport(), base_url=SIM_ORIGIN)

    async def set_faults(self, **knobs: Any) -> None:
        async with self.control() as control:
            response = await control.put("/_sim/faults", json=knobs)
            response.raise_for_status()

    async def get(self, path: str) -> Any:
        async with self.control() as control:
            response = await control.get(path)
            response.raise_for_status()
            return response.json()

    async def post(self, path: str, body: Any) -> httpx.Response:
        async with self.control() as control:
            return await control.post(path, json=body)

    def client(
        self,
        settings: GraphSettings,
        *,
        limits: GraphLimits | None = None,
        auth: httpx.Auth | None = None,
    ) -> GraphClient:
        return GraphClient(
            SIM_URL,
            auth=auth or build_auth(NoAuth(kind="none"), SIM_URL),
            transport=self.transport(),
            settings=settings,
            limits=limits or GraphLimits(),
            sleeper=self.fake_time.sleep,
            clock=self.fake_time.clock,
        )


def make_sim(
    fake_time: FakeTime,
    *,
    users: int = 80,
    admins: int = 12,
    seed: int = 7,
    **limits: Any,
) -> SimTenant:
    knobs: dict[str, Any] = {"min_change_interval_seconds": 0.0, **limits}
    return SimTenant(
        state=generate_tenant(users=users, admins=admins, seed=seed),
        limits=SimLimits(**knobs),
        fake_time=fake_time,
    )
