"""Bearer tokens: 401 without or with a bad token, 403 below the needed role; /healthz is open."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.factories import tenant_body


class TestAuth:
    def test_healthz_is_open(self, client: TestClient) -> None:
        response = client.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}

    @pytest.mark.parametrize(
        "header", [None, "Bearer", "Basic abc", "Bearer pimr_not-a-real-token"]
    )
    def test_missing_or_bad_token(self, client: TestClient, header: str | None) -> None:
        headers = {"Authorization": header} if header else {}
        response = client.get("/api/v1/plans", headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"] == "Bearer"

    @pytest.mark.parametrize(
        ("method", "path", "role", "needed"),
        [
            ("post", "/api/v1/tenants", "operator", "admin"),
            ("post", "/api/v1/tokens", "operator", "admin"),
            ("post", "/api/v1/plans", "viewer", "operator"),
            ("post", "/api/v1/plans/x/start", "viewer", "operator"),
            ("get", "/api/v1/tokens", "operator", "admin"),
        ],
    )
    def test_role_too_low(self, client, tokens, method, path, role, needed) -> None:  # type: ignore[no-untyped-def]
        response = client.request(method, path, json={}, headers=tokens[role])
        assert response.status_code == 403
        assert response.json()["required_role"] == needed

    def test_viewer_reads(self, client, tokens) -> None:  # type: ignore[no-untyped-def]
        assert client.get("/api/v1/tenants", headers=tokens["viewer"]).status_code == 200

    def test_revoked_token_is_refused(self, client, tokens) -> None:  # type: ignore[no-untyped-def]
        created = client.post(
            "/api/v1/tokens", json={"name": "temp", "role": "viewer"}, headers=tokens["admin"]
        ).json()
        assert created["token"].startswith("pimr_")
        temp = {"Authorization": f"Bearer {created['token']}"}
        assert client.get("/api/v1/tenants", headers=temp).status_code == 200
        assert (
            client.delete(f"/api/v1/tokens/{created['id']}", headers=tokens["admin"]).status_code
            == 200
        )
        assert client.get("/api/v1/tenants", headers=temp).status_code == 401
        listed = client.get("/api/v1/tokens", headers=tokens["admin"]).json()
        assert all("token" not in t and "token_hash" not in t for t in listed)

    def test_tokens_are_stored_hashed(self, client, tokens, ctx) -> None:  # type: ignore[no-untyped-def]
        from sqlmodel import select

        from app.db.models import ApiToken

        plaintexts = {h["Authorization"].split()[1] for h in tokens.values()}
        with ctx.session_factory() as session:
            rows = session.exec(select(ApiToken)).all()
        stored = {r.token_hash for r in rows} | {r.prefix for r in rows}
        assert not plaintexts & stored
        assert all(len(r.token_hash) == 64 for r in rows)

    def test_forbidden_write_changes_nothing(self, client, tokens) -> None:  # type: ignore[no-untyped-def]
        client.post("/api/v1/tenants", json=tenant_body(), headers=tokens["operator"])
        assert client.get("/api/v1/tenants", headers=tokens["viewer"]).json() == []
