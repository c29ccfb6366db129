"""The UI against an in-process simulated tenant, on each database."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.applications import Starlette

from app.db.session import SessionFactory, unit_of_work
from app.domain.tenant import TenantSpec
from app.graph.factory import GraphClientFactory
from app.main import build_context
from app.services import plans, tenants
from app.services.context import AppContext
from app.services.secrets import SecretBox
from app.services.tokens import create_token
from app.settings import Settings
from app.simulator.app import create_simulator_app
from app.simulator.faults import SimLimits
from app.simulator.seed import generate_tenant
from tests.factories import TEST_JOB_WAIT_SECONDS, FakeClock, app_under_test

SIM_URL = "http://sim.test/v1.0"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        secret_key_file=tmp_path / "unused.key",
        scheduler={"enabled": False},
        graph={"request_timeout_seconds": 5, "total_deadline_seconds": 10},
        job_wait_seconds=TEST_JOB_WAIT_SECONDS,
    )


@pytest.fixture
def sim_app() -> Starlette:
    return create_simulator_app(
        generate_tenant(users=80, admins=16, seed=5),
        limits=SimLimits(min_change_interval_seconds=0),
    )


@pytest.fixture
def ctx(
    settings: Settings, session_factory: SessionFactory, clock: FakeClock, sim_app: Starlette
) -> AppContext:
    return build_context(
        settings,
        session_factory=session_factory,
        clock=clock,
        secret_box=SecretBox(Fernet.generate_key()),
        graph_factory=GraphClientFactory(
            settings.graph, transport_for=lambda _url: httpx.ASGITransport(app=sim_app)
        ),
    )


@pytest.fixture
def app(ctx: AppContext) -> FastAPI:
    return app_under_test(ctx)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as test_client:
        yield test_client


@pytest.fixture
def tokens(ctx: AppContext) -> dict[str, str]:
    """One plaintext API token per role."""
    made = {}
    with unit_of_work(ctx.session_factory) as session:
        for role in ("viewer", "operator", "admin"):
            plaintext, _ = create_token(session, role=role, name=f"{role}-ui", now=ctx.clock.now())
            made[role] = plaintext
    return made


@pytest.fixture
def sim_profile(sim_app: Starlette) -> dict[str, Any]:
    with TestClient(sim_app) as sim:
        return dict(sim.get("/_sim/profile").json())


@pytest.fixture
def tenant_id(ctx: AppContext, sim_profile: dict[str, Any]) -> str:
    """The simulated tenant, as an admin would have added it."""
    spec = TenantSpec.model_validate(
        {
            **sim_profile,
            "name": "Contoso (simulated)",
            "graph_base_url": SIM_URL,
            "graph_limits": {"min_change_interval_seconds": 0},
        }
    )
    with unit_of_work(ctx.session_factory) as session:
        return tenants.create_tenant(session, spec=spec, box=ctx.secret_box, now=ctx.clock.now()).id


@pytest.fixture
def plan_id(ctx: AppContext, tenant_id: str) -> str:
    """A draft plan from the default template."""
    with unit_of_work(ctx.session_factory) as session:
        view = plans.create_plan(
            session,
            tenant_id=tenant_id,
            plans_dir=None,
            template="default",
            spec_data=None,
            name="Rollout",
            binding_overrides={},
            actor="tester",
            now=ctx.clock.now(),
        )
    return view.row.id


@dataclass
class Ui:
    """A browser-like client: signs in, keeps the cookie, posts forms with the CSRF token."""

    client: TestClient

    def sign_in(self, token: str) -> Any:
        self.client.get("/ui/login")
        return self.client.post("/ui/login", data={"token": token, "csrf_token": self.csrf()})

    def csrf(self) -> str:
        page = self.client.get("/ui/login")
        if page.status_code == 303:  # signed in: any page carries the token
            page = self.client.get("/ui/tenants")
        match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert match, page.text
        return match.group(1)

    def post(self, path: str, **data: Any) -> Any:
        return self.client.post(path, data={"csrf_token": self.csrf(), **data})


@pytest.fixture
def ui(client: TestClient) -> Ui:
    return Ui(client)


@pytest.fixture
def as_operator(ui: Ui, tokens: dict[str, str]) -> Ui:
    assert ui.sign_in(tokens["operator"]).status_code == 303
    ui.client.get("/ui/plans")  # shows (and so clears) the "signed in" message
    return ui


@pytest.fixture
def as_viewer(ui: Ui, tokens: dict[str, str]) -> Ui:
    assert ui.sign_in(tokens["viewer"]).status_code == 303
    ui.client.get("/ui/plans")  # shows (and so clears) the "signed in" message
    return ui


@pytest.fixture
def as_admin(ui: Ui, tokens: dict[str, str]) -> Ui:
    assert ui.sign_in(tokens["admin"]).status_code == 303
    ui.client.get("/ui/plans")  # shows (and so clears) the "signed in" message
    return ui


def template_of(response: Any) -> str:
    """The template a TestClient response was rendered from (Starlette's debug extension)."""
    name: str = response.template.name
    return name


def context_of(response: Any) -> dict[str, Any]:
    context: dict[str, Any] = response.context
    return context
