"""The HTTP commands against the real API, in-process: what they print is what it answers."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.ops.fakes import invoke

Headers = dict[str, dict[str, str]]


class ThroughTestClient(httpx.BaseTransport):
    """Requests go to the running app through its TestClient (its lifespan is up, so jobs
    run). The TestClient is built on another httpx, so answers are copied, not shared."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = self.client.request(
            request.method,
            request.url.raw_path.decode(),
            headers=list(request.headers.multi_items()),
            content=request.read(),
        )
        headers = [
            (name, value)
            for name, value in answer.headers.multi_items()
            if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        return httpx.Response(answer.status_code, headers=headers, content=answer.content)


def token_of(headers: Headers, role: str) -> str:
    return headers[role]["Authorization"].removeprefix("Bearer ")


def nap(_seconds: float) -> None:
    time.sleep(0.05)


class TestAgainstTheApi:
    def test_a_plan_driven_from_the_command_line(
        self,
        app: FastAPI,
        client: TestClient,
        tokens: Headers,
        sim_tenant_body: dict[str, Any],
    ) -> None:
        tenant = client.post("/api/v1/tenants", json=sim_tenant_body, headers=tokens["admin"])
        assert tenant.status_code == 201, tenant.text
        tenant_id = tenant.json()["id"]
        plan = client.post(
            "/api/v1/plans",
            json={"tenant_id": tenant_id, "template": "default"},
            headers=tokens["operator"],
        ).json()
        plan_id = plan["id"]
        transport = ThroughTestClient(client)
        operator = token_of(tokens, "operator")

        def run(*args: str, token: str = operator) -> Any:
            return invoke(transport, *args, token=token, sleep=nap)

        listed = run("tenants", "list", "-o", "json")
        assert listed.exit_code == 0, listed.output
        assert (
            json.loads(listed.stdout)
            == client.get("/api/v1/tenants", headers=tokens["viewer"]).json()
        )
        assert "Contoso (simulated)" in run("tenants", "list").stdout

        got = run("plans", "get", plan_id, "-o", "json")
        assert (
            json.loads(got.stdout)
            == client.get(f"/api/v1/plans/{plan_id}", headers=tokens["viewer"]).json()
        )
        draft = run("plans", "get", plan_id, "--watch")
        assert draft.exit_code == 0, draft.output
        assert "is a draft" in draft.stdout

        preview = run("plans", "preview", plan_id, "--phase", "pilot")
        assert preview.exit_code == 0, preview.output
        assert "convert_cohort" in preview.stdout

        started = run("plans", "start", plan_id, "--reason", "change 1234", "-o", "json")
        assert started.exit_code == 0, started.output
        assert json.loads(started.stdout)["state"] == "running"
        history = client.get(f"/api/v1/plans/{plan_id}/history", headers=tokens["viewer"]).json()
        assert [h["reason"] for h in history if h["event"] == "start"] == ["change 1234"]

        refused = run("plans", "advance", plan_id, "--phase", "ga-approval")
        assert refused.exit_code == 1, refused.output
        assert "POST /api/v1/plans/" in refused.stderr

        viewer = run("plans", "pause", plan_id, token=token_of(tokens, "viewer"))
        assert viewer.exit_code == 5, viewer.output
        assert "403" in viewer.stderr
        assert token_of(tokens, "viewer") not in viewer.output

        paused = run("plans", "pause", plan_id, "--reason", "lunch")
        assert paused.exit_code == 0, paused.output
        watched = run("plans", "get", plan_id, "--watch")
        assert watched.exit_code == 0, watched.output
        assert "is paused" in watched.stdout
        assert run("plans", "resume", plan_id).exit_code == 0

        inventory = run("tenants", "inventory", tenant_id)
        assert inventory.exit_code == 0, inventory.output
        assert "Global Administrator" in inventory.stdout
        latest = run("tenants", "inventory", tenant_id, "--latest", "-o", "json")
        assert json.loads(latest.stdout)["tenant_id"] == tenant_id

        # The plan's start recorded the tenant's posture with its baseline.
        posture = run("tenants", "posture", tenant_id)
        assert posture.exit_code == 0, posture.output
        assert "MS.AAD.7.1" in posture.stdout

        unknown = run("tenants", "get", "no-such-tenant")
        assert unknown.exit_code == 1
        assert "no-such-tenant" in unknown.stderr
