from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.db.session import SessionFactory, unit_of_work
from app.main import build_context, create_app
from app.services.context import AppContext
from app.services.secrets import SecretBox
from app.services.tokens import create_token
from app.settings import Settings
from tests.factories import PLANS_DIR, FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        plans_dir=PLANS_DIR,
        secret_key_file=tmp_path / "unused.key",
    )


@pytest.fixture
def ctx(settings: Settings, session_factory: SessionFactory, clock: FakeClock) -> AppContext:
    return build_context(
        settings,
        session_factory=session_factory,
        clock=clock,
        secret_box=SecretBox(Fernet.generate_key()),
    )


@pytest.fixture
def app(ctx: AppContext) -> FastAPI:
    return create_app(ctx.settings, context=ctx)


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
