"""Fixtures for the simulator tests: a seeded tenant, a fake clock, an in-process client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from app.simulator.app import create_simulator_app
from app.simulator.clock import FakeClock
from app.simulator.dispatch import SimContext
from app.simulator.faults import SimLimits
from app.simulator.seed import generate_tenant
from app.simulator.state import SimState
from tests.fixtures import GRAPH_SAMPLES

SAMPLES = GRAPH_SAMPLES
AUTH = {"Authorization": "Bearer simulated-token"}
GA = "62e90394-69f5-4237-9190-012177145e10"
PRA = "e8611ab8-c189-46e8-94e1-60213ab1f814"
USER_ADMIN = "fe930be7-5e62-47db-91af-98c3a49a38b1"
HELPDESK_ADMIN = "729827e3-9c14-49f7-bb1b-9608f156bbb8"
APP_ADMIN = "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3"
REPORTS_READER = "4a5d8f65-41da-4de4-8968-e035b65339cf"
RM = "/v1.0/roleManagement/directory"


class Sim:
    """An in-process simulator with its state, clock and an httpx client that speaks to it."""

    def __init__(self, state: SimState, clock: FakeClock, client: httpx.AsyncClient, app: Any):
        self.state = state
        self.clock = clock
        self.client = client
        self.app = app

    @property
    def ctx(self) -> SimContext:
        context: SimContext = self.app.state.sim
        return context

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.client.get(url, headers={**AUTH, **kwargs.pop("headers", {})}, **kwargs)

    async def post(self, url: str, json: Any = None, **kwargs: Any) -> httpx.Response:
        headers = {**AUTH, **kwargs.pop("headers", {})}
        return await self.client.post(url, json=json, headers=headers, **kwargs)

    async def patch(self, url: str, json: Any = None, **kwargs: Any) -> httpx.Response:
        headers = {**AUTH, **kwargs.pop("headers", {})}
        return await self.client.patch(url, json=json, headers=headers, **kwargs)

    async def put(self, url: str, json: Any = None, **kwargs: Any) -> httpx.Response:
        headers = {**AUTH, **kwargs.pop("headers", {})}
        return await self.client.put(url, json=json, headers=headers, **kwargs)

    async def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.client.delete(
            url, headers={**AUTH, **kwargs.pop("headers", {})}, **kwargs
        )

    async def get_all(self, url: str) -> list[dict[str, Any]]:
        """Follow @odata.nextLink verbatim until the collection ends."""
        items: list[dict[str, Any]] = []
        next_url: str | None = url
        while next_url:
            response = await self.get(next_url)
            assert response.status_code == 200, response.text
            body = response.json()
            items.extend(body["value"])
            next_url = body.get("@odata.nextLink")
        return items

    async def timeline(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = (await self.client.get("/_sim/timeline")).json()
        return entries

    async def request(self, kind: str, body: dict[str, Any], **headers: str) -> httpx.Response:
        collection = (
            "roleAssignmentScheduleRequests"
            if kind == "assignment"
            else ("roleEligibilityScheduleRequests")
        )
        return await self.post(f"{RM}/{collection}", json=body, headers=headers)


SimFactory = Callable[..., Any]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2025, 1, 6, 9, 0, tzinfo=UTC))


@pytest.fixture
def tenant() -> SimState:
    return generate_tenant(users=120, admins=30, seed=7)


@pytest.fixture
async def make_sim(clock: FakeClock) -> AsyncIterator[SimFactory]:
    clients: list[httpx.AsyncClient] = []

    async def factory(state: SimState, limits: SimLimits | None = None) -> Sim:
        limits = limits or SimLimits(throttling=False)
        app = create_simulator_app(state, limits=limits, clock=clock)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim")
        clients.append(client)
        return Sim(state, clock, client, app)

    yield factory
    for client in clients:
        await client.aclose()


@pytest.fixture
async def sim(make_sim: SimFactory, tenant: SimState) -> Sim:
    result: Sim = await make_sim(tenant)
    return result


def holder(
    state: SimState, role_id: str, *, kind: str = "user", skip: set[str] | None = None
) -> str:
    """A principal of ``kind`` with a permanent outside-PIM active assignment of ``role_id``."""
    skip = (skip or set()) | set(state.profile.break_glass_ids)
    for schedule in state.actives.for_role(role_id):
        pid = schedule.principal_id
        is_kind = {
            "user": pid in state.users,
            "group": pid in state.groups,
            "servicePrincipal": pid in state.service_principals,
        }[kind]
        if is_kind and pid not in skip and schedule.outside_pim:
            return pid
    raise LookupError(f"no {kind} holds {role_id}")


def plain_user(state: SimState) -> str:
    """A member user with no role at all."""
    for user in state.users.values():
        if (
            user.user_type == "Member"
            and not state.actives.for_principal(user.id)
            and not state.eligibles.for_principal(user.id)
            and user.id not in state.profile.break_glass_ids
        ):
            return user.id
    raise LookupError("no plain user")


def assign_body(principal: str, role: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "action": "adminAssign",
        "principalId": principal,
        "roleDefinitionId": role,
        "directoryScopeId": "/",
        "justification": "Rollout conversion",
        "scheduleInfo": {"expiration": {"type": "noExpiration"}},
    }
    body.update(extra)
    return body


def remove_body(principal: str, role: str) -> dict[str, Any]:
    return {
        "action": "adminRemove",
        "principalId": principal,
        "roleDefinitionId": role,
        "directoryScopeId": "/",
    }
