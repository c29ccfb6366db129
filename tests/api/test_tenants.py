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
        **{
            "graph_base_url": "https://graph.microsoft.com/v1.0",
            "auth": {
                "kind": "client_secret",
                "tenant_id": str(uuid.uuid4()),
                "client_id": str(uuid.uuid4()),
                "client_secret": SECRET,
            },
            **over,
        }
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
        assert [e["path"] for e in response.json()["errors"]] == ["auth.client_id"]
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


def _tenant_row(ctx, tenant_id):  # type: ignore[no-untyped-def]
    from app.db.models import Tenant

    with ctx.session_factory() as session:
        return session.get(Tenant, tenant_id)


class TestCredentialsAreCheckedWhenGiven:
    @pytest.mark.parametrize(
        ("auth", "path"),
        [
            ({"client_secret": "  " + SECRET}, "auth.client_secret"),
            ({"client_secret": "0f8fad5b-d9cb-469f-a165-70867728950e"}, "auth.client_secret"),
            ({"client_secret": ""}, "auth.client_secret"),
            ({"tenant_id": "00000000-0000-0000-0000-000000000000"}, "auth.tenant_id"),
            ({"client_id": "contoso.onmicrosoft.com"}, "auth.client_id"),
        ],
    )
    def test_create_refuses_a_bad_secret_block(self, client, tokens, auth, path) -> None:  # type: ignore[no-untyped-def]
        body = _secret_tenant()
        body["auth"].update(auth)
        response = client.post("/api/v1/tenants", json=body, headers=tokens["admin"])
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        assert [e["path"] for e in response.json()["errors"]] == [path]
        assert SECRET not in response.text
        assert client.get("/api/v1/tenants", headers=tokens["viewer"]).json() == []

    def test_create_refuses_a_pem_without_a_key(self, client, tokens) -> None:  # type: ignore[no-untyped-def]
        from tests.factories import certificate_pem

        pem = certificate_pem(include_key=False)
        body = _secret_tenant()
        body["auth"] = {
            "kind": "certificate",
            "tenant_id": body["auth"]["tenant_id"],
            "client_id": body["auth"]["client_id"],
            "certificate_pem": pem,
        }
        response = client.post("/api/v1/tenants", json=body, headers=tokens["admin"])
        assert response.status_code == 422
        (error,) = response.json()["errors"]
        assert error["path"] == "auth.certificate_pem"
        assert "no private key" in error["message"]
        assert pem.splitlines()[1] not in response.text

    def test_a_certificate_with_its_password_is_stored(self, client, tokens, ctx) -> None:  # type: ignore[no-untyped-def]
        from tests.factories import certificate_pem

        pem = certificate_pem(b"pfx-pass")
        body = _secret_tenant()
        body["auth"] = {
            "kind": "certificate",
            "tenant_id": body["auth"]["tenant_id"],
            "client_id": body["auth"]["client_id"],
            "certificate_pem": pem,
            "certificate_password": "pfx-pass",
        }
        response = client.post("/api/v1/tenants", json=body, headers=tokens["admin"])
        assert response.status_code == 201, response.text
        assert "pfx-pass" not in response.text
        row = _tenant_row(ctx, response.json()["id"])
        assert ctx.secret_box.open(row.auth_secret_encrypted)["certificate_password"] == "pfx-pass"

    def test_patch_refuses_a_bad_secret_and_changes_nothing(self, client, tokens, ctx) -> None:  # type: ignore[no-untyped-def]
        tenant_id = client.post(
            "/api/v1/tenants", json=_secret_tenant(), headers=tokens["admin"]
        ).json()["id"]
        auth = {**_secret_tenant()["auth"], "client_secret": "bad secret\n"}
        response = client.patch(
            f"/api/v1/tenants/{tenant_id}", json={"auth": auth}, headers=tokens["admin"]
        )
        assert response.status_code == 422
        assert [e["path"] for e in response.json()["errors"]] == ["auth.client_secret"]
        assert "bad secret" not in response.text
        row = _tenant_row(ctx, tenant_id)
        assert ctx.secret_box.open(row.auth_secret_encrypted) == {"client_secret": SECRET}


class TestGraphBaseUrlWithARealCredential:
    @pytest.mark.parametrize(
        "url",
        [
            "https://graph.microsoft.us/v1.0",
            "https://dod-graph.microsoft.us/v1.0",
            "https://microsoftgraph.chinacloudapi.cn/v1.0",
        ],
    )
    def test_national_clouds_are_accepted(self, client, tokens, url) -> None:  # type: ignore[no-untyped-def]
        response = client.post(
            "/api/v1/tenants", json=_secret_tenant(graph_base_url=url), headers=tokens["admin"]
        )
        assert response.status_code == 201, response.text
        assert response.json()["graph_base_url"] == url

    @pytest.mark.parametrize(
        "url",
        [
            "https://graph.contoso.com/v1.0",
            "https://graph.microsoft.com.contoso.com/v1.0",
            "https://graph.microsoft.com:444/v1.0",
            "http://127.0.0.1:8765/v1.0",
        ],
    )
    def test_anything_else_is_refused(self, client, tokens, url) -> None:  # type: ignore[no-untyped-def]
        response = client.post(
            "/api/v1/tenants", json=_secret_tenant(graph_base_url=url), headers=tokens["admin"]
        )
        assert response.status_code == 422
        (error,) = response.json()["errors"]
        assert error["path"] == "graph_base_url"
        assert "Microsoft Graph endpoint" in error["message"]

    def test_patch_cannot_point_a_real_credential_elsewhere(self, client, tokens) -> None:  # type: ignore[no-untyped-def]
        tenant_id = client.post(
            "/api/v1/tenants", json=_secret_tenant(), headers=tokens["admin"]
        ).json()["id"]
        response = client.patch(
            f"/api/v1/tenants/{tenant_id}",
            json={"graph_base_url": "https://graph.contoso.com/v1.0"},
            headers=tokens["admin"],
        )
        assert response.status_code == 422
        assert [e["path"] for e in response.json()["errors"]] == ["graph_base_url"]

    def test_patch_cannot_give_a_local_tenant_a_real_credential(self, client, tokens) -> None:  # type: ignore[no-untyped-def]
        tenant_id = client.post(
            "/api/v1/tenants", json=tenant_body(), headers=tokens["admin"]
        ).json()["id"]
        response = client.patch(
            f"/api/v1/tenants/{tenant_id}",
            json={"auth": _secret_tenant()["auth"]},
            headers=tokens["admin"],
        )
        assert response.status_code == 422
        assert [e["path"] for e in response.json()["errors"]] == ["graph_base_url"]
        assert SECRET not in response.text


class TestUpdatesDoNotDependOnTheStoredCredential:
    """A freeze must work even when the stored credential no longer would."""

    def test_freeze_with_a_secret_stored_before_the_checks(self, client, tokens, ctx) -> None:  # type: ignore[no-untyped-def]
        tenant_id = client.post(
            "/api/v1/tenants", json=_secret_tenant(), headers=tokens["admin"]
        ).json()["id"]
        row = _tenant_row(ctx, tenant_id)
        old_secret = "0f8fad5b-d9cb-469f-a165-70867728950e"  # a secret ID, accepted back then
        with ctx.session_factory() as session:
            row.auth_secret_encrypted = ctx.secret_box.seal({"client_secret": old_secret})
            session.add(row)
            session.commit()
        patched = client.patch(
            f"/api/v1/tenants/{tenant_id}",
            json={"automation": {"frozen": True}},
            headers=tokens["admin"],
        )
        assert patched.status_code == 200, patched.text
        assert ctx.secret_box.open(_tenant_row(ctx, tenant_id).auth_secret_encrypted) == {
            "client_secret": old_secret
        }

    def test_freeze_when_the_secret_key_changed(self, client, tokens, ctx) -> None:  # type: ignore[no-untyped-def]
        tenant_id = client.post(
            "/api/v1/tenants", json=_secret_tenant(), headers=tokens["admin"]
        ).json()["id"]
        row = _tenant_row(ctx, tenant_id)
        with ctx.session_factory() as session:
            row.auth_secret_encrypted = "sealed-with-another-key"
            session.add(row)
            session.commit()
        patched = client.patch(
            f"/api/v1/tenants/{tenant_id}",
            json={"automation": {"frozen": True}, "name": "Renamed"},
            headers=tokens["admin"],
        )
        assert patched.status_code == 200, patched.text
        assert _tenant_row(ctx, tenant_id).auth_secret_encrypted == "sealed-with-another-key"
