"""A tenant credential that gets no Graph token is the tenant's problem: 424, on every path.

The tenant's Graph requests reach the in-process simulated tenant whatever its URL; azure-
identity's real credentials are built, and only the sign-in endpoint is faked (``FakeEntra``).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import structlog
from fastapi.testclient import TestClient

from app.db.models import Tenant
from tests.graph.fakes import FakeEntra

REVOKED = "Zq8~Revoked.secret-value-0123456789abcdef"
GOOD = "Zq8~Working.secret-value-0123456789abcdef"
CREDENTIAL_PROBLEM = "https://pim-rollout.dev/problems/tenant-credential-failed"


@pytest.fixture
def entra(monkeypatch: pytest.MonkeyPatch) -> FakeEntra:
    fake = FakeEntra().install(monkeypatch)
    fake.refused[REVOKED] = "AADSTS7000215"
    return fake


def secret_auth(secret: str) -> dict[str, Any]:
    return {
        "kind": "client_secret",
        "tenant_id": str(uuid.UUID(int=7)),
        "client_id": str(uuid.UUID(int=8)),
        "client_secret": secret,
    }


def make_tenant(client: TestClient, tokens, body: dict[str, Any], auth: dict[str, Any]) -> str:  # type: ignore[no-untyped-def]
    response = client.post(
        "/api/v1/tenants",
        json={**body, "graph_base_url": "https://graph.microsoft.com/v1.0", "auth": auth},
        headers=tokens["admin"],
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@pytest.fixture
def revoked(client, tokens, sim_tenant_body, entra) -> str:  # type: ignore[no-untyped-def]
    return make_tenant(client, tokens, sim_tenant_body, secret_auth(REVOKED))


def plan_for(client: TestClient, tokens, tenant_id: str) -> str:  # type: ignore[no-untyped-def]
    response = client.post(
        "/api/v1/plans",
        json={"tenant_id": tenant_id, "template": "default"},
        headers=tokens["operator"],
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def assert_credential_problem(response: Any, tenant_id: str, kind: str = "client_secret") -> None:
    assert response.status_code == 424, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == CREDENTIAL_PROBLEM
    assert problem["tenant_id"] == tenant_id
    assert problem["credential_kind"] == kind
    assert problem["cloud"] == "global"
    assert problem["detail"].startswith("tenant 'Contoso (simulated)' (")
    assert "To fix: " in problem["detail"]
    assert REVOKED not in response.text


class TestEveryPathAnswers424:
    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("POST", "/api/v1/tenants/{tenant}/inventory"),
            ("POST", "/api/v1/tenants/{tenant}/reports/collect"),
            ("POST", "/api/v1/plans/{plan}/preflight"),
            ("POST", "/api/v1/plans/{plan}/start"),
            ("POST", "/api/v1/plans/{plan}/preview"),
            ("GET", "/api/v1/plans/{plan}/preview.csv"),
        ],
    )
    def test_inline_answer_and_the_jobs_problem(
        self, client, tokens, revoked, method, path
    ) -> None:  # type: ignore[no-untyped-def]
        plan_id = plan_for(client, tokens, revoked)
        url = path.format(tenant=revoked, plan=plan_id)
        with structlog.testing.capture_logs() as logs:
            response = client.request(
                method, url, headers={**tokens["operator"], "Prefer": "wait=10"}
            )
        assert_credential_problem(response, revoked)
        assert "Entra refused the client secret" in response.json()["detail"]
        assert "not its Secret ID" in response.json()["detail"]
        assert REVOKED not in repr(logs)
        (job,) = client.get(
            "/api/v1/jobs", params={"tenant_id": revoked}, headers=tokens["viewer"]
        ).json()
        assert job["state"] == "failed"
        assert job["problem"]["status"] == 424
        assert job["problem"]["detail"] == response.json()["detail"]
        assert client.get(f"/api/v1/plans/{plan_id}", headers=tokens["viewer"]).json()["state"] == (
            "draft"
        )

    def test_an_async_request_polls_to_the_same_problem(self, client, tokens, revoked) -> None:  # type: ignore[no-untyped-def]
        accepted = client.post(
            f"/api/v1/tenants/{revoked}/inventory",
            headers={**tokens["operator"], "Prefer": "respond-async"},
        )
        assert accepted.status_code == 202
        for _ in range(50):
            job = client.get(accepted.headers["location"], headers=tokens["viewer"]).json()
            if job["state"] != "running":
                break
        assert job["state"] == "failed"
        assert job["problem"]["type"] == CREDENTIAL_PROBLEM
        assert job["problem"]["status"] == 424

    def test_a_missing_managed_identity(self, client, tokens, sim_tenant_body, entra) -> None:  # type: ignore[no-untyped-def]
        tenant_id = make_tenant(client, tokens, sim_tenant_body, {"kind": "managed_identity"})
        response = client.post(f"/api/v1/tenants/{tenant_id}/inventory", headers=tokens["operator"])
        assert_credential_problem(response, tenant_id, "managed_identity")
        assert "no managed identity is available where the service runs" in response.text

    def test_a_stored_secret_that_no_longer_decrypts(self, client, tokens, revoked, ctx) -> None:  # type: ignore[no-untyped-def]
        with ctx.session_factory() as session:
            row = session.get(Tenant, revoked)
            row.auth_secret_encrypted = "sealed-with-another-key"
            session.add(row)
            session.commit()
        response = client.post(f"/api/v1/tenants/{revoked}/inventory", headers=tokens["operator"])
        assert response.status_code == 424
        assert "cannot be decrypted with this server's secret key" in response.json()["detail"]

    def test_a_stored_secret_from_before_the_checks(self, client, tokens, revoked, ctx) -> None:  # type: ignore[no-untyped-def]
        with ctx.session_factory() as session:
            row = session.get(Tenant, revoked)
            row.auth_secret_encrypted = ctx.secret_box.seal({"client_secret": "   "})
            session.add(row)
            session.commit()
        response = client.post(f"/api/v1/tenants/{revoked}/inventory", headers=tokens["operator"])
        assert response.status_code == 424
        assert "auth.client_secret" in response.json()["detail"]

    def test_a_token_never_goes_to_a_host_that_is_not_graph(  # type: ignore[no-untyped-def]
        self, client, tokens, sim_tenant_body, entra, ctx
    ) -> None:
        tenant_id = make_tenant(client, tokens, sim_tenant_body, secret_auth(GOOD))
        with ctx.session_factory() as session:  # a row written before hosts were checked
            row = session.get(Tenant, tenant_id)
            row.graph_base_url = "https://graph.contoso.example/v1.0"
            session.add(row)
            session.commit()
        response = client.post(f"/api/v1/tenants/{tenant_id}/inventory", headers=tokens["operator"])
        assert response.status_code == 424
        assert "graph_base_url" in response.json()["detail"]
        assert entra.asked == []

    def test_the_sign_in_endpoint_out_of_reach_is_not_the_tenants_problem(  # type: ignore[no-untyped-def]
        self, client, tokens, sim_tenant_body, monkeypatch
    ) -> None:
        from azure.core.exceptions import ServiceRequestError
        from azure.identity.aio import ClientSecretCredential

        async def unreachable(*args: Any, **kwargs: Any) -> Any:
            raise ServiceRequestError("Cannot connect to host login.microsoftonline.com:443")

        monkeypatch.setattr(ClientSecretCredential, "get_token", unreachable)
        tenant_id = make_tenant(client, tokens, sim_tenant_body, secret_auth(GOOD))
        response = client.post(f"/api/v1/tenants/{tenant_id}/inventory", headers=tokens["operator"])
        assert response.status_code == 503
        assert response.json()["status"] == 503


class TestCheck:
    def test_the_simulated_tenant(self, client, tokens, sim_tenant_body) -> None:  # type: ignore[no-untyped-def]
        tenant_id = client.post(
            "/api/v1/tenants", json=sim_tenant_body, headers=tokens["admin"]
        ).json()["id"]
        response = client.post(f"/api/v1/tenants/{tenant_id}/check", headers=tokens["operator"])
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["ok"] is True
        assert (body["credential_kind"], body["cloud"]) == ("none", "simulated")
        assert body["graph_base_url"] == "http://sim.test/v1.0"
        assert "Global Administrator" in body["detail"]
        assert body["problem"] is None
        assert body["checked_at"]

    def test_a_working_secret(self, client, tokens, sim_tenant_body, entra) -> None:  # type: ignore[no-untyped-def]
        tenant_id = make_tenant(client, tokens, sim_tenant_body, secret_auth(GOOD))
        body = client.post(f"/api/v1/tenants/{tenant_id}/check", headers=tokens["operator"]).json()
        assert (body["ok"], body["credential_kind"], body["cloud"]) == (
            True,
            "client_secret",
            "global",
        )
        assert entra.asked == [("client_secret", ("https://graph.microsoft.com/.default",))]

    def test_a_refused_secret_is_200_with_the_problem(self, client, tokens, revoked) -> None:  # type: ignore[no-untyped-def]
        response = client.post(f"/api/v1/tenants/{revoked}/check", headers=tokens["operator"])
        assert response.status_code == 200
        body = response.json()
        assert body["ok"] is False
        assert body["problem"]["status"] == 424
        assert body["problem"]["type"] == CREDENTIAL_PROBLEM
        assert body["detail"] == body["problem"]["detail"]
        assert "AADSTS7000215" in body["detail"]
        assert REVOKED not in response.text

    def test_it_asks_afresh_and_sees_the_fix(self, client, tokens, revoked, entra) -> None:  # type: ignore[no-untyped-def]
        assert client.post(
            f"/api/v1/tenants/{revoked}/inventory", headers=tokens["operator"]
        ).status_code == (424)
        entra.refused.clear()  # say, admin consent was granted meanwhile
        body = client.post(f"/api/v1/tenants/{revoked}/check", headers=tokens["operator"]).json()
        assert body["ok"] is True
        assert len(entra.asked) == 2

    def test_a_failing_token_provider(self, client, tokens, sim_tenant_body, monkeypatch) -> None:  # type: ignore[no-untyped-def]
        from app.graph.auth import StaticTokenCredential

        async def refuse(*args: Any, **kwargs: Any) -> Any:
            raise ValueError("no token for you")

        monkeypatch.setattr(StaticTokenCredential, "get_token", refuse)
        tenant_id = client.post(
            "/api/v1/tenants", json=sim_tenant_body, headers=tokens["admin"]
        ).json()["id"]
        body = client.post(f"/api/v1/tenants/{tenant_id}/check", headers=tokens["operator"]).json()
        assert body["ok"] is False
        assert body["credential_kind"] == "none"
        assert body["problem"]["credential_kind"] == "none"

    def test_viewers_cannot_and_unknown_tenants_are_404(self, client, tokens, revoked) -> None:  # type: ignore[no-untyped-def]
        assert (
            client.post(f"/api/v1/tenants/{revoked}/check", headers=tokens["viewer"]).status_code
            == 403
        )
        assert (
            client.post("/api/v1/tenants/nope/check", headers=tokens["operator"]).status_code == 404
        )
