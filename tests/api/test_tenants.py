"""Tenants: created by admins, secrets write-only (never returned, never logged)."""

from __future__ import annotations

import uuid

import pytest
import structlog
from fastapi.testclient import TestClient

from tests.factories import tenant_body

SECRET = "s3cr3t-value-that-must-not-leak"


def _secret_tenant(**over):  # type: ignore[no-untyped-def]
    return tenant_body(
        graph_base_url="https://graph.microsoft.com/v1.0",
        auth={
            "kind": "client_secret",
            "tenant_id": str(uuid.uuid4()),
            "client_id": str(uuid.uuid4()),
            "client_secret": SECRET,
        },
        **over,
    )


class TestTenants:
    def test_create_and_read(self, client: TestClient, tokens) -> None:  # type: ignore[no-untyped-def]
        with structlog.testing.capture_logs() as logs:
            created = client.post("/api/v1/tenants", json=_secret_tenant(), headers=tokens["admin"])
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["auth"]["kind"] == "client_secret"
        assert body["auth"]["has_secret"] is True
        assert SECRET not in created.text
        fetched = client.get(f"/api/v1/tenants/{body['id']}", headers=tokens["viewer"])
        assert SECRET not in fetched.text
        assert fetched.json()["bindings"]["security_team"]["kind"] == "group"
        assert SECRET not in repr(logs)

    def test_secret_is_encrypted_at_rest(self, client, tokens, ctx) -> None:  # type: ignore[no-untyped-def]
        from app.db.models import Tenant

        tenant_id = client.post(
            "/api/v1/tenants", json=_secret_tenant(), headers=tokens["admin"]
        ).json()["id"]
        with ctx.session_factory() as session:
            row = session.get(Tenant, tenant_id)
        assert SECRET not in repr(row.auth_public)
        assert SECRET not in (row.auth_secret_encrypted or "")
        assert ctx.secret_box.open(row.auth_secret_encrypted) == {"client_secret": SECRET}

    def test_validation_errors_name_the_field_and_hide_the_secret(self, client, tokens) -> None:  # type: ignore[no-untyped-def]
        body = _secret_tenant()
        body["auth"]["client_id"] = "not-a-guid"
        response = client.post("/api/v1/tenants", json=body, headers=tokens["admin"])
        assert response.status_code == 422
        assert any(
            e["path"].startswith("auth.client_secret.client_id") for e in response.json()["errors"]
        )
        assert SECRET not in response.text

    def test_no_auth_only_for_local_tenants(self, client, tokens) -> None:  # type: ignore[no-untyped-def]
        body = tenant_body(graph_base_url="https://graph.microsoft.com/v1.0")
        response = client.post("/api/v1/tenants", json=body, headers=tokens["admin"])
        assert response.status_code == 422
        assert "only for a simulated tenant" in response.text

    def test_plain_http_to_a_remote_host_refused(self, client, tokens) -> None:  # type: ignore[no-untyped-def]
        response = client.post(
            "/api/v1/tenants",
            json=tenant_body(graph_base_url="http://graph.example.com/v1.0"),
            headers=tokens["admin"],
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["path"] == "graph_base_url"

    def test_duplicate_name(self, client, tokens) -> None:  # type: ignore[no-untyped-def]
        assert (
            client.post("/api/v1/tenants", json=tenant_body(), headers=tokens["admin"]).status_code
            == 201
        )
        again = client.post("/api/v1/tenants", json=tenant_body(), headers=tokens["admin"])
        assert again.status_code == 409
        assert len(client.get("/api/v1/tenants", headers=tokens["viewer"]).json()) == 1

    def test_bad_break_glass_and_timezone(self, client, tokens) -> None:  # type: ignore[no-untyped-def]
        ids = tenant_body()["break_glass_ids"]
        body = tenant_body(
            break_glass_ids=[ids[0], ids[0]], automation={"timezone": "Mars/Olympus"}
        )
        errors = client.post("/api/v1/tenants", json=body, headers=tokens["admin"]).json()["errors"]
        paths = {e["path"] for e in errors}
        assert {"break_glass_ids", "automation.timezone"} <= paths

    def test_patch_freezes_and_keeps_the_secret(self, client, tokens, ctx) -> None:  # type: ignore[no-untyped-def]
        tenant_id = client.post(
            "/api/v1/tenants", json=_secret_tenant(), headers=tokens["admin"]
        ).json()["id"]
        patched = client.patch(
            f"/api/v1/tenants/{tenant_id}",
            json={"automation": {"frozen": True}},
            headers=tokens["admin"],
        )
        assert patched.status_code == 200, patched.text
        assert patched.json()["automation"]["frozen"] is True
        assert patched.json()["auth"]["has_secret"] is True
        from app.db.models import Tenant

        with ctx.session_factory() as session:
            row = session.get(Tenant, tenant_id)
        assert ctx.secret_box.open(row.auth_secret_encrypted) == {"client_secret": SECRET}

    @pytest.mark.parametrize(
        ("comms", "path"),
        [
            (
                {"helpdesk": {"name": "Service desk", "url": "javascript:alert(1)"}},
                "comms.helpdesk.url",
            ),
            ({"activation_url": "data:text/html,hello"}, "comms.activation_url"),
        ],
    )
    def test_links_in_the_comms_must_be_web_addresses(self, client, tokens, comms, path) -> None:  # type: ignore[no-untyped-def]
        response = client.post(
            "/api/v1/tenants", json=tenant_body(comms=comms), headers=tokens["admin"]
        )
        assert response.status_code == 422
        (error,) = response.json()["errors"]
        assert error["path"] == path
        assert "must be an http(s) address" in error["message"]
        assert client.get("/api/v1/tenants", headers=tokens["viewer"]).json() == []

    def test_patch_rejects_bad_values_and_changes_nothing(self, client, tokens) -> None:  # type: ignore[no-untyped-def]
        tenant_id = client.post(
            "/api/v1/tenants", json=tenant_body(), headers=tokens["admin"]
        ).json()["id"]
        before = client.get(f"/api/v1/tenants/{tenant_id}", headers=tokens["viewer"]).json()
        response = client.patch(
            f"/api/v1/tenants/{tenant_id}",
            json={"graph_base_url": "https://graph.microsoft.com/v1.0"},
            headers=tokens["admin"],
        )
        assert response.status_code == 422
        assert client.get(f"/api/v1/tenants/{tenant_id}", headers=tokens["viewer"]).json() == before
