"""A simulated tenant on a fake clock shared with the engine, for monitoring tests.

The pilot of :func:`monitoring_plan` converts the IT/platform team, sets a 4-hour activation
maximum on the target roles and makes User Administrator activation need approval by the
security team; tests then script activations through Graph exactly as users would make them
(``selfActivate`` with MFA satisfied), at times they choose, and check the reports' numbers.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet
from fastapi import FastAPI
from starlette.applications import Starlette

from app.db.session import Database, SessionFactory, unit_of_work
from app.domain.roles import (
    APPLICATION_ADMINISTRATOR,
    PRIVILEGED_ROLE_ADMINISTRATOR,
    USER_ADMINISTRATOR,
)
from app.domain.tenant import TenantSpec
from app.engine import actions
from app.engine.context import EngineContext
from app.engine.monitoring import collect_now
from app.engine.tick import tick
from app.graph.client import GraphClient
from app.graph.factory import GraphClientFactory
from app.graph.models import ScheduleRequestAction, ScheduleRequestCreate
from app.services import plans, tenants
from app.services.context import AppContext
from app.services.monitoring.collect import CollectionResult
from app.services.secrets import SecretBox
from app.services.tokens import create_token
from app.settings import GraphSettings, MonitoringSettings, Settings
from app.simulator.app import create_simulator_app
from app.simulator.clock import FakeClock
from app.simulator.faults import SimLimits
from app.simulator.seed import generate_tenant
from app.simulator.state import SimState
from tests.db_snapshot import Rows, copy_rows, write_rows
from tests.factories import TEST_JOB_WAIT_SECONDS, VirtualSeconds, app_under_test

SIM_URL = "http://sim.test/v1.0"
REQUESTS = "/v1.0/roleManagement/directory/roleAssignmentScheduleRequests"
HELPDESK_ADMINISTRATOR = "729827e3-9c14-49f7-bb1b-9608f156bbb8"
REPORTS_READER = "4a5d8f65-41da-4de4-8968-e035b65339cf"
T0 = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
"""A Monday: the pilot runs then."""

PILOT_ROLES = [
    APPLICATION_ADMINISTRATOR,
    USER_ADMINISTRATOR,
    PRIVILEGED_ROLE_ADMINISTRATOR,
    HELPDESK_ADMINISTRATOR,
]


def monitoring_plan(health_gates: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "name": "monitoring-test",
        "title": "Pilot, then everyone behind health gates",
        "roles": [{"id": role} for role in PILOT_ROLES],
        "phases": [
            {
                "key": "pilot",
                "title": "Pilot",
                "starts_after": "P0D",
                "steps": [
                    {
                        "kind": "apply_role_settings",
                        "settings": {
                            "activation_max_duration": "PT4H",
                            "require_justification": True,
                            "require_ticket": False,
                            "require_mfa": True,
                        },
                    },
                    {"kind": "convert_cohort", "cohort": {"binding": "it_platform_team"}},
                    {
                        "kind": "require_approval",
                        "rules": [
                            {
                                "roles": [USER_ADMINISTRATOR],
                                "approvers": [{"binding": "security_team"}],
                                "min_approvers": 2,
                            }
                        ],
                    },
                ],
            },
            {
                "key": "all-admins",
                "title": "Everyone else",
                "starts_after": "P28D",
                "health_gates": health_gates or [],
                "steps": [{"kind": "convert_cohort", "cohort": {"remaining": True}}],
            },
        ],
    }


async def _no_sleep(_seconds: float) -> None:
    return None


@dataclass
class MonitoringRig:
    ectx: EngineContext
    clock: FakeClock
    sim_state: SimState
    sim_http: httpx.AsyncClient
    tenant_id: str
    sim_app: Starlette
    settings: MonitoringSettings = field(default_factory=MonitoringSettings)
    plan_id: str = ""
    secret_key: bytes = b""

    @property
    def session_factory(self) -> SessionFactory:
        return self.ectx.session_factory

    async def sim(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.sim_http.request(method, path, **kwargs)
        assert response.status_code < 400, response.text
        return response.json() if response.content else None

    def at(self, when: datetime) -> None:
        self.clock.set(when)

    # -- the tenant's people -------------------------------------------------------------------

    def group_members(self, binding: str) -> list[str]:
        group = self.sim_state.groups[self.sim_state.profile.bindings[binding]["id"]]
        return sorted(group.member_ids)

    def eligible_user(self, role_id: str) -> str:
        """A user who holds ``role_id`` eligibly now (after the pilot)."""
        holders = sorted(
            e.principal_id
            for e in self.sim_state.eligibles
            if e.role_definition_id == role_id and e.principal_id in self.sim_state.users
        )
        assert holders, f"nobody is eligible for {role_id}"
        return holders[0]

    def upn(self, user_id: str) -> str:
        return self.sim_state.users[user_id].user_principal_name

    # -- what users do -------------------------------------------------------------------------

    async def activate(
        self,
        principal_id: str,
        role_id: str,
        *,
        hours: float,
        justification: str,
        ticket: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "action": "selfActivate",
            "principalId": principal_id,
            "roleDefinitionId": role_id,
            "directoryScopeId": "/",
            "justification": justification,
            "scheduleInfo": {
                "startDateTime": self.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
                "expiration": {
                    "type": "afterDuration",
                    "duration": f"PT{int(hours * 60)}M",
                },
            },
        }
        if ticket:
            body["ticketInfo"] = {"ticketNumber": ticket, "ticketSystem": "ServiceNow"}
        created: dict[str, Any] = await self.sim(
            "POST", REQUESTS, json=body, headers={"x-sim-mfa": "satisfied"}
        )
        return created

    async def deactivate(self, principal_id: str, role_id: str) -> None:
        body = {
            "action": "selfDeactivate",
            "principalId": principal_id,
            "roleDefinitionId": role_id,
            "directoryScopeId": "/",
        }
        await self.sim("POST", REQUESTS, json=body, headers={"x-sim-mfa": "satisfied"})

    async def decide(self, request_id: str, *, approve: bool, approver_id: str) -> None:
        await self.sim(
            "POST",
            f"/_sim/approvals/{request_id}",
            json={"decision": "approve" if approve else "deny", "approver_id": approver_id},
        )

    async def assign_outside_pim(
        self, principal_id: str, role_id: str, *, actor_id: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"principal_id": principal_id, "role_definition_id": role_id}
        if actor_id:
            body["actor_id"] = actor_id
        created: dict[str, Any] = await self.sim("POST", "/_sim/assignments", json=body)
        return created

    async def remove_active(self, principal_id: str, role_id: str) -> None:
        """An administrator removes an active assignment (through Graph, as the portal would)."""
        await (await self.graph()).create_assignment_request(
            ScheduleRequestCreate(
                action=ScheduleRequestAction.admin_remove,
                principal_id=principal_id,
                role_definition_id=role_id,
            )
        )

    # -- what the service does -----------------------------------------------------------------

    async def graph(self) -> GraphClient:
        with self.session_factory() as session:
            tenant = tenants.get_tenant(session, self.tenant_id)
        return await self.ectx.client_for(tenant)

    async def collect(self) -> CollectionResult:
        with self.session_factory() as session:
            tenant = tenants.get_tenant(session, self.tenant_id)
        result = await collect_now(self.ectx, tenant, self.settings)
        assert result is not None
        return result

    async def start_plan(self, spec: dict[str, Any]) -> str:
        """Create and start the plan at T0 and tick until its pilot is done."""
        with unit_of_work(self.session_factory) as session:
            plan_id = plans.create_plan(
                session,
                tenant_id=self.tenant_id,
                plans_dir=None,
                template=None,
                spec_data=spec,
                name=None,
                binding_overrides={},
                actor="tester",
                now=self.clock.now(),
            ).row.id
        await actions.start(
            self.ectx, plan_id=plan_id, actor="tester", reason="test", expected_version=None
        )
        for _ in range(10):
            await tick(self.ectx)
            with self.session_factory() as session:
                view = plans.get_plan_view(session, plan_id)
            if view.phases[0].row.state == "completed":
                self.plan_id = plan_id
                return plan_id
        raise AssertionError(f"the pilot did not complete: {view.phases[0].row.status_reason}")

    def phase(self, plan_id: str, key: str) -> tuple[str, str | None]:
        with self.session_factory() as session:
            view = plans.get_plan_view(session, plan_id)
        row = next(p.row for p in view.phases if p.row.key == key)
        return row.state, row.status_reason


@dataclass(frozen=True)
class PilotSnapshot:
    """What a rig's finished pilot left: database rows, the simulated tenant, the clock."""

    rows: Rows
    sim_state: SimState
    clock: FakeClock
    secret_key: bytes
    tenant_id: str
    plan_id: str


@asynccontextmanager
async def monitoring_rig(
    session_factory: SessionFactory,
    settings: MonitoringSettings | None = None,
    *,
    restore: PilotSnapshot | None = None,
) -> AsyncIterator[MonitoringRig]:
    if restore is None:
        state = generate_tenant(users=200, admins=30, seed=11)
        clock = FakeClock(T0)
        secret_key = Fernet.generate_key()
    else:
        state, clock = copy.deepcopy((restore.sim_state, restore.clock))
        secret_key = restore.secret_key
    sim_app = create_simulator_app(
        state, limits=SimLimits(min_change_interval_seconds=0), clock=clock
    )
    graph_time = VirtualSeconds()  # the audit-log pacing (2 s a page) takes no wall time
    factory = GraphClientFactory(
        GraphSettings(request_timeout_seconds=5, total_deadline_seconds=30),
        transport_for=lambda _url: httpx.ASGITransport(app=sim_app),
        sleeper=graph_time.sleep,
        clock=graph_time.clock,
    )
    box = SecretBox(secret_key)
    ectx = EngineContext(
        db=Database(session_factory),
        graph_factory=factory,
        secret_box=box,
        clock=clock,
        worker_id="monitoring-test",
        sleeper=_no_sleep,
        lease_ttl=timedelta(seconds=60),
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sim_app),
        base_url="http://sim.test",
        headers={"Authorization": "Bearer a-user-token"},
    ) as http:
        if restore is None:
            tenant_id = await _create_tenant(http, session_factory, box, clock)
        else:
            write_rows(session_factory, restore.rows)
            tenant_id = restore.tenant_id
        yield MonitoringRig(
            ectx,
            clock,
            state,
            http,
            tenant_id,
            sim_app,
            settings or MonitoringSettings(),
            plan_id=restore.plan_id if restore else "",
            secret_key=secret_key,
        )
    await factory.aclose_all()


async def _create_tenant(
    http: httpx.AsyncClient, session_factory: SessionFactory, box: SecretBox, clock: FakeClock
) -> str:
    profile = (await http.get("/_sim/profile")).json()
    spec = TenantSpec.model_validate(
        {
            **profile,
            "name": "Contoso (simulated)",
            "graph_base_url": SIM_URL,
            "graph_limits": {"min_change_interval_seconds": 0},
        }
    )
    with unit_of_work(session_factory) as session:
        return tenants.create_tenant(session, spec=spec, box=box, now=clock.now()).id


_PILOTS: dict[tuple[str, str], PilotSnapshot] = {}
"""Finished pilots of this test process, by database kind and plan."""


@asynccontextmanager
async def piloted_rig(
    session_factory: SessionFactory, spec: dict[str, Any]
) -> AsyncIterator[MonitoringRig]:
    """A rig whose plan ``spec`` was started at T0 and ran its pilot.

    The pilot runs once per test process and database kind; later rigs start from a copy of
    what it left (every database row, the simulated tenant, the clock), the same state a run
    of their own would reach, since the tenant and the engine are deterministic.
    """
    with session_factory() as session:
        dialect = session.get_bind().dialect.name
    key = (dialect, json.dumps(spec, sort_keys=True))
    saved = _PILOTS.get(key)
    async with monitoring_rig(session_factory, restore=saved) as rig:
        if saved is None:
            plan_id = await rig.start_plan(spec)
            _PILOTS[key] = PilotSnapshot(
                rows=copy_rows(session_factory),
                sim_state=copy.deepcopy(rig.sim_state),
                clock=copy.deepcopy(rig.clock),
                secret_key=rig.secret_key,
                tenant_id=rig.tenant_id,
                plan_id=plan_id,
            )
        yield rig


@dataclass(frozen=True)
class Cast:
    """Who does what in :func:`two_weeks_of_activity`."""

    app_admin: str  # A: Application Administrator
    helpdesk: str  # C: Helpdesk Administrator
    user_admin: str  # D: User Administrator (activation needs approval)
    approver: str  # a security team member


def cast_of(rig: MonitoringRig) -> Cast:
    user_admin = rig.eligible_user(USER_ADMINISTRATOR)
    approver = next(m for m in rig.group_members("security_team") if m != user_admin)
    return Cast(
        app_admin=rig.eligible_user(APPLICATION_ADMINISTRATOR),
        helpdesk=rig.eligible_user(HELPDESK_ADMINISTRATOR),
        user_admin=user_admin,
        approver=approver,
    )


def day(days: int, hour: int = 9, minute: int = 0) -> datetime:
    """``days`` after T0's Monday, at hour:minute."""
    return T0.replace(hour=hour, minute=minute) + timedelta(days=days)


async def two_weeks_of_activity(rig: MonitoringRig) -> Cast:
    """Nine activation requests over the weeks of Jan 13 and Jan 20, 2025 (4-hour maximum).

    Week of Jan 13: A takes the full 4 h with a ticket and comes back 10 minutes after it ends
    for 2 h ("doing my job"); C asks 1 h ("oops") and deactivates after 20 minutes; D's 4 h with
    a ticket is approved half an hour later, D's 3 h ("admin work") is denied.
    Week of Jan 20: D asks four times (1 h "needed", 2 h, 4 h "doing my job!", 4 h) and is
    denied each time: a spike of failed approvals.
    """
    cast = cast_of(rig)
    a, c, d = cast.app_admin, cast.helpdesk, cast.user_admin
    rig.at(day(7, 10))
    await rig.activate(
        a,
        APPLICATION_ADMINISTRATOR,
        hours=4,
        justification="Rotating the HR connector secret",
        ticket="INC100001",
    )
    rig.at(day(7, 14, 10))
    await rig.activate(a, APPLICATION_ADMINISTRATOR, hours=2, justification="doing my job")
    rig.at(day(8))
    await rig.activate(c, HELPDESK_ADMINISTRATOR, hours=1, justification="oops")
    rig.at(day(8, 9, 20))
    await rig.deactivate(c, HELPDESK_ADMINISTRATOR)
    rig.at(day(9))
    approved = await rig.activate(
        d,
        USER_ADMINISTRATOR,
        hours=4,
        justification="Investigating incident INC100002 sign-in failures",
        ticket="INC100002",
    )
    rig.at(day(9, 9, 30))
    await rig.decide(approved["id"], approve=True, approver_id=cast.approver)
    rig.at(day(10))
    denied = await rig.activate(d, USER_ADMINISTRATOR, hours=3, justification="admin work")
    rig.at(day(10, 9, 10))
    await rig.decide(denied["id"], approve=False, approver_id=cast.approver)
    week_three = [
        (1, "needed"),
        (2, "Monthly access clean-up for departed staff"),
        (4, "doing my job!"),
        (4, "Reviewing mailbox permissions requested by Legal"),
    ]
    for offset, (hours, justification) in enumerate(week_three):
        rig.at(day(14 + offset))
        request = await rig.activate(
            d, USER_ADMINISTRATOR, hours=hours, justification=justification
        )
        rig.at(day(14 + offset, 9, 5))
        await rig.decide(request["id"], approve=False, approver_id=cast.approver)
    return cast


@dataclass
class Api:
    """The service's HTTP API over a :class:`MonitoringRig`, with a viewer and an operator."""

    rig: MonitoringRig
    http: httpx.AsyncClient
    headers: dict[str, dict[str, str]]
    app: FastAPI

    def url(self, report: str, tenant_id: str | None = None) -> str:
        return f"/api/v1/tenants/{tenant_id or self.rig.tenant_id}/reports/{report}"


@asynccontextmanager
async def monitoring_api(
    rig: MonitoringRig, database_url: str, tmp_path: Path
) -> AsyncIterator[Api]:
    settings = Settings(
        database_url=database_url,
        secret_key_file=tmp_path / "unused.key",
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
    headers = {}
    with unit_of_work(rig.session_factory) as session:
        for role in ("viewer", "operator"):
            token, _ = create_token(session, role=role, name=role, now=rig.clock.now())
            headers[role] = {"Authorization": f"Bearer {token}"}
    app = app_under_test(ctx)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
        yield Api(rig, http, headers, app)


@asynccontextmanager
async def started_monitoring_api(
    session_factory: SessionFactory, database_url: str, tmp_path: Path
) -> AsyncIterator[Api]:
    """A rig whose pilot ran, behind the service's HTTP API."""
    async with (
        piloted_rig(session_factory, monitoring_plan()) as rig,
        monitoring_api(rig, database_url, tmp_path) as api,
    ):
        yield api
