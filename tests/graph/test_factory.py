"""GraphClientFactory: one client per tenant, rebuilt on configuration change."""

from __future__ import annotations

import uuid

import httpx
import pytest
from pydantic import SecretStr

from app.domain.tenant import ClientSecretAuth, GraphLimits, NoAuth, TenantAuth
from app.graph.auth import GraphTokenAuth
from app.graph.factory import GraphClientFactory
from app.settings import GraphSettings

from .fakes import FakeCredential

SIM_URL = "http://sim.test/v1.0"
TENANT = uuid.UUID("11111111-2222-3333-4444-555555555555")


def secret_auth(secret: str) -> ClientSecretAuth:
    return ClientSecretAuth(
        kind="client_secret", tenant_id=TENANT, client_id=TENANT, client_secret=SecretStr(secret)
    )


class Builders:
    def __init__(self) -> None:
        self.credentials: list[FakeCredential] = []
        self.transports: list[str] = []

    def auth(self, auth: TenantAuth, base_url: str) -> GraphTokenAuth:
        credential = FakeCredential(f"token-{len(self.credentials)}")
        self.credentials.append(credential)
        return GraphTokenAuth(credential)

    def transport(self, base_url: str) -> httpx.AsyncBaseTransport | None:
        self.transports.append(base_url)

        def answer(request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, json={"id": "u", "seen": request.headers["Authorization"]})

        return httpx.MockTransport(answer)


@pytest.fixture
def builders() -> Builders:
    return Builders()


@pytest.fixture
def factory(builders: Builders) -> GraphClientFactory:
    return GraphClientFactory(
        GraphSettings(), transport_for=builders.transport, auth_builder=builders.auth
    )


class TestFactory:
    async def test_reuses_the_client_while_nothing_changes(
        self, factory: GraphClientFactory, builders: Builders
    ) -> None:
        first = await factory.get("t1", SIM_URL, NoAuth(kind="none"), GraphLimits())
        again = await factory.get("t1", SIM_URL, NoAuth(kind="none"), GraphLimits())
        assert first is again
        assert builders.transports == [SIM_URL]
        await factory.aclose_all()

    async def test_tenants_get_their_own_clients(self, factory: GraphClientFactory) -> None:
        one = await factory.get("t1", SIM_URL, NoAuth(kind="none"), GraphLimits())
        two = await factory.get("t2", SIM_URL, NoAuth(kind="none"), GraphLimits())
        assert one is not two
        await factory.aclose_all()

    @pytest.mark.parametrize(
        "change",
        [
            {"base_url": "http://other.test/v1.0"},
            {"auth": secret_auth("rotated")},
            {"limits": GraphLimits(max_concurrency=2)},
        ],
    )
    async def test_rebuilds_on_change_and_closes_the_old_one(
        self, factory: GraphClientFactory, builders: Builders, change: dict[str, object]
    ) -> None:
        current: dict[str, object] = {
            "base_url": SIM_URL,
            "auth": secret_auth("original"),
            "limits": GraphLimits(),
        }
        old = await factory.get("t1", **current)  # type: ignore[arg-type]
        current.update(change)
        new = await factory.get("t1", **current)  # type: ignore[arg-type]
        assert new is not old
        assert (await new.get_user("u")).id == "u"
        await factory.aclose_all()
        assert all(credential.closed for credential in builders.credentials)

    async def test_same_secret_value_is_no_change(self, factory: GraphClientFactory) -> None:
        one = await factory.get("t1", SIM_URL, secret_auth("same"), GraphLimits())
        two = await factory.get("t1", SIM_URL, secret_auth("same"), GraphLimits())
        assert one is two
        await factory.aclose_all()

    async def test_client_uses_the_tenant_auth_and_transport(
        self, factory: GraphClientFactory
    ) -> None:
        client = await factory.get("t1", SIM_URL, NoAuth(kind="none"), GraphLimits())
        user = await client.get_user("u")
        assert user.model_extra == {"seen": "Bearer token-0"}
        await factory.aclose_all()

    async def test_default_builders_use_the_no_auth_placeholder(self) -> None:
        seen: list[str] = []

        def transport_for(base_url: str) -> httpx.AsyncBaseTransport:
            def answer(request: httpx.Request) -> httpx.Response:
                seen.append(request.headers["Authorization"])
                return httpx.Response(200, json={"id": "u"})

            return httpx.MockTransport(answer)

        factory = GraphClientFactory(GraphSettings(), transport_for=transport_for)
        client = await factory.get("t1", SIM_URL, NoAuth(kind="none"), GraphLimits())
        await client.get_user("u")
        await factory.aclose_all()
        assert seen == ["Bearer simulated-tenant"]

    async def test_closed_clients_are_forgotten(self, factory: GraphClientFactory) -> None:
        one = await factory.get("t1", SIM_URL, NoAuth(kind="none"), GraphLimits())
        await factory.aclose_all()
        two = await factory.get("t1", SIM_URL, NoAuth(kind="none"), GraphLimits())
        assert one is not two
        await factory.aclose_all()
