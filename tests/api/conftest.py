from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.applications import Starlette

from app.db.session import SessionFactory, unit_of_work
from app.graph.factory import GraphClientFactory
from app.main import build_context
from app.services.context import AppContext
from app.services.secrets import SecretBox
from app.services.tokens import create_token
from app.settings import Settings
from app.simulator.app import create_simulator_app
from app.simulator.seed import generate_tenant
from tests.factories import TEST_JOB_WAIT_SECONDS, FakeClock, app_under_test


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
    """A small simulated tenant; every Graph URL of these tests is routed to it in-process."""
    return create_simulator_app(generate_tenant(users=80, admins=16, seed=5))


@pytest.fixture
def sim_tenant_body(sim_app: Starlette) -> dict[str, Any]:
    """A tenant body from the simulator's profile, as an operator would build it."""
    with TestClient(sim_app) as sim:
        profile = sim.get("/_sim/profile").json()
    return {**profile, "name": "Contoso (simulated)", "graph_base_url": "http://sim.test/v1.0"}


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
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def tokens(ctx: AppContext) -> dict[str, dict[str, str]]:
    """Authorization headers for one token of each role."""
    headers = {}
    with unit_of_work(ctx.session_factory) as session:
        for role in ("viewer", "operator", "admin"):
            plaintext, _ = create_token(session, role=role, name=f"{role}-bot", now=ctx.clock.now())
            headers[role] = {"Authorization": f"Bearer {plaintext}"}
    return headers
