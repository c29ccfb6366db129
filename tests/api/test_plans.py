"""The plan lifecycle over HTTP, and every bad input a user can send."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.factories import plan_data, tenant_body

PROBLEM = "application/problem+json"


def _tenant(client: TestClient, tokens: dict[str, dict[str, str]], **over: Any) -> str:
    body = over.pop("body", None) or tenant_body(**over)
    response = client.post("/api/v1/tenants", json=body, headers=tokens["admin"])
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _plan(
    client: TestClient, tokens: dict[str, dict[str, str]], tenant_id: str, **over: Any
) -> dict[str, Any]:
    body = {"tenant_id": tenant_id, "template": "default", **over}
    response = client.post("/api/v1/plans", json=body, headers=tokens["operator"])
    assert response.status_code == 201, response.text
    return dict(response.json())


def _act(
    client: TestClient, tokens: dict[str, dict[str, str]], plan_id: str, action: str, **body: Any
) -> Any:
    # Start runs preflight and takes the baseline: wait for its outcome, however loaded the
    # machine (the default 2 s wait would answer 202 with the job).
    return client.post(
        f"/api/v1/plans/{plan_id}/{action}",
        json=body or None,
        headers={**tokens["operator"], "Prefer": "wait=120"},
    )


def _snapshot(
    client: TestClient, tokens: dict[str, dict[str, str]], plan_id: str
) -> tuple[Any, Any]:
    plan = client.get(f"/api/v1/plans/{plan_id}", headers=tokens["viewer"]).json()
    history = client.get(f"/api/v1/plans/{plan_id}/history", headers=tokens["viewer"]).json()
    return plan, history


class TestLifecycle:
    def test_start_pause_resume_abort(
        self, client: TestClient, tokens: dict[str, dict[str, str]], sim_tenant_body: dict[str, Any]
    ) -> None:
        tenant_id = _tenant(client, tokens, body=sim_tenant_body)
        plan = _plan(client, tokens, tenant_id)
        assert plan["state"] == "draft"
        assert plan["version"] == 1
        assert [p["key"] for p in plan["phases"]] == [
            "pilot",
            "feedback",
            "all-admins",
            "ga-approval",
            "access-reviews",
        ]
        assert all(
            p["progress"]
            == {"done": 0, "failed": 0, "remaining": 0, "skipped": 0, "kept_active": 0, "total": 0}
            for p in plan["phases"]
        )
        assert plan["allowed_events"] == ["start", "abort"]

        started = _act(client, tokens, plan["id"], "start", reason="go", expected_version=1)
        assert started.status_code == 200, started.text
        started_plan = started.json()
        assert started_plan["state"] == "running"
        assert started_plan["version"] == 3
        assert started_plan["phases"][0]["due_at"] is not None
        assert started_plan["phases"][1]["due_at"] > started_plan["phases"][0]["due_at"]

        paused = _act(client, tokens, plan["id"], "pause", reason="hold on")
        assert paused.json()["state"] == "paused"
        resumed = _act(client, tokens, plan["id"], "resume")
        assert resumed.json()["state"] == "running"
        aborted = _act(client, tokens, plan["id"], "abort", reason="changed our minds")
        assert aborted.status_code == 200
        assert aborted.json()["state"] == "rolling_back"

        history = client.get(f"/api/v1/plans/{plan['id']}/history", headers=tokens["viewer"]).json()
        assert [h["event"] for h in history] == [
            "create",
            "preflight",
            "start",
            "tick",
            "pause",
            "resume",
            "abort",
        ]
        assert [h["version"] for h in history] == [1, 1, 2, 3, 4, 5, 6]
        assert history[1]["details"]["passed"] is True
        assert history[2]["actor"] == "operator-bot (operator)"
        assert history[2]["reason"] == "go"
        assert history[3]["actor"] == "scheduler"
        assert history[4]["reason"] == "hold on"
        assert all(h["at"] for h in history)

    def test_draft_abort_cancels(
        self, client: TestClient, tokens: dict[str, dict[str, str]]
    ) -> None:
        plan = _plan(client, tokens, _tenant(client, tokens))
        assert _act(client, tokens, plan["id"], "abort").json()["state"] == "cancelled"

    def test_plan_later_than_now_is_scheduled(
        self, client: TestClient, tokens: dict[str, dict[str, str]], sim_tenant_body: dict[str, Any]
    ) -> None:
        spec = plan_data()
        for phase in spec["phases"]:
            phase["starts_after"] = "P1D"
        tenant_id = _tenant(client, tokens, body=sim_tenant_body)
        plan = _plan(client, tokens, tenant_id, template=None, spec=spec)
        started = _act(client, tokens, plan["id"], "start").json()
        assert started["state"] == "scheduled"
        assert _act(client, tokens, plan["id"], "pause").json()["state"] == "paused"

    def test_list_and_filter(self, client: TestClient, tokens: dict[str, dict[str, str]]) -> None:
        tenant_id = _tenant(client, tokens)
        first = _plan(client, tokens, tenant_id)
        second = _plan(client, tokens, tenant_id, name="second")
        _act(client, tokens, first["id"], "abort")
        listed = client.get(
            "/api/v1/plans", params={"tenant_id": tenant_id}, headers=tokens["viewer"]
        ).json()
        assert {p["id"] for p in listed} == {first["id"], second["id"]}
        drafts = client.get(
            "/api/v1/plans", params={"state": "draft"}, headers=tokens["viewer"]
        ).json()
        assert [p["id"] for p in drafts] == [second["id"]]


class TestRefusalsChangeNothing:
    @pytest.fixture
    def plan(self, client: TestClient, tokens: dict[str, dict[str, str]]) -> dict[str, Any]:
        return _plan(client, tokens, _tenant(client, tokens))

    def _assert_unchanged(self, client, tokens, plan_id, before) -> None:  # type: ignore[no-untyped-def]
        assert _snapshot(client, tokens, plan_id) == before

    def test_wrong_event_for_the_state(self, client, tokens, plan) -> None:  # type: ignore[no-untyped-def]
        before = _snapshot(client, tokens, plan["id"])
        response = _act(client, tokens, plan["id"], "resume")
        assert response.status_code == 409
        assert response.headers["content-type"] == PROBLEM
        problem = response.json()
        assert problem["current_state"] == "draft"
        assert problem["allowed_events"] == ["start", "abort"]
        assert problem["detail"] == "resume does not apply to a draft plan"
        assert problem["status"] == 409
        self._assert_unchanged(client, tokens, plan["id"], before)

    def test_stale_version(self, client, tokens, plan) -> None:  # type: ignore[no-untyped-def]
        before = _snapshot(client, tokens, plan["id"])
        response = _act(client, tokens, plan["id"], "start", expected_version=7)
        assert response.status_code == 409
        assert response.json()["current_version"] == 1
        assert "expected version 7" in response.json()["detail"]
        self._assert_unchanged(client, tokens, plan["id"], before)

    def test_advance_without_a_gate(self, client, tokens, sim_tenant_body) -> None:  # type: ignore[no-untyped-def]
        plan = _plan(client, tokens, _tenant(client, tokens, body=sim_tenant_body))
        assert _act(client, tokens, plan["id"], "start").status_code == 200
        before = _snapshot(client, tokens, plan["id"])
        response = _act(client, tokens, plan["id"], "advance")
        assert response.status_code == 409
        assert response.json()["detail"] == "no phase is waiting at a manual gate"
        assert "advance" not in response.json()["allowed_events"]
        self._assert_unchanged(client, tokens, plan["id"], before)

    def test_malformed_json(self, client, tokens, plan) -> None:  # type: ignore[no-untyped-def]
        before = _snapshot(client, tokens, plan["id"])
        response = client.post(
            f"/api/v1/plans/{plan['id']}/start",
            content=b'{"reason": ',
            headers={**tokens["operator"], "Content-Type": "application/json"},
        )
        assert response.status_code == 400
        assert response.json()["title"] == "Malformed JSON"
        self._assert_unchanged(client, tokens, plan["id"], before)

    def test_unknown_field_names_its_path(self, client, tokens, plan) -> None:  # type: ignore[no-untyped-def]
        response = _act(client, tokens, plan["id"], "start", reasons="typo")
        assert response.status_code == 422
        assert response.json()["errors"] == [{"path": "reasons", "message": "unknown field"}]

    def test_unknown_action(self, client, tokens, plan) -> None:  # type: ignore[no-untyped-def]
        response = _act(client, tokens, plan["id"], "explode")
        assert response.status_code == 422
        assert response.json()["errors"][0]["path"] == "path.action"

    def test_unknown_plan(self, client, tokens) -> None:  # type: ignore[no-untyped-def]
        response = _act(client, tokens, "nope", "start")
        assert response.status_code == 404
        assert response.json()["detail"] == "no plan with id nope"


class TestCreateRefusals:
    def test_unknown_template(self, client, tokens) -> None:  # type: ignore[no-untyped-def]
        tenant_id = _tenant(client, tokens)
        response = client.post(
            "/api/v1/plans",
            json={"tenant_id": tenant_id, "template": "nightly"},
            headers=tokens["operator"],
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["path"] == "template"
        assert (
            "no plan template named 'nightly' (known: default, demo)" in response.json()["detail"]
        )
        assert client.get("/api/v1/plans", headers=tokens["viewer"]).json() == []

    def test_invalid_inline_plan(self, client, tokens) -> None:  # type: ignore[no-untyped-def]
        spec = plan_data()
        spec["phases"][2]["key"] = "pilot"
        response = client.post(
            "/api/v1/plans",
            json={"tenant_id": _tenant(client, tokens), "spec": spec},
            headers=tokens["operator"],
        )
        assert response.status_code == 422
        assert {
            "path": "spec.phases[2].key",
            "message": "duplicate phase key 'pilot' (also phases[0])",
        } in response.json()["errors"]
        assert client.get("/api/v1/plans", headers=tokens["viewer"]).json() == []

    def test_unbound_binding(self, client, tokens) -> None:  # type: ignore[no-untyped-def]
        body = tenant_body()
        del body["bindings"]["security_team"]
        tenant = client.post("/api/v1/tenants", json=body, headers=tokens["admin"]).json()
        response = client.post(
            "/api/v1/plans",
            json={"tenant_id": tenant["id"], "template": "default"},
            headers=tokens["operator"],
        )
        assert response.status_code == 422
        assert response.json()["errors"] == [
            {
                "path": "spec.phases[3].steps[0].rules[0].approvers[0]",
                "message": "binding 'security_team' is not bound for this tenant",
            }
        ]

    def test_alerts_need_a_mailbox_binding(self, client, tokens) -> None:  # type: ignore[no-untyped-def]
        tenant_id = _tenant(client, tokens)
        group = {"kind": "group", "id": "99999999-9999-4999-8999-999999999999"}
        response = client.post(
            "/api/v1/plans",
            json={
                "tenant_id": tenant_id,
                "template": "default",
                "bindings": {"security_team_mailbox": group},
            },
            headers=tokens["operator"],
        )
        assert response.status_code == 422
        reason = "binding 'security_team_mailbox' is a group binding, not a mailbox binding"
        assert response.json()["errors"] == [
            {"path": "spec.phases[0].steps[3].recipients[0]", "message": reason},
            {"path": "spec.phases[2].steps[2].recipients[0]", "message": reason},
        ]

    def test_a_mailbox_is_not_a_cohort(self, client, tokens) -> None:  # type: ignore[no-untyped-def]
        tenant_id = _tenant(client, tokens)
        mailbox = {"kind": "mailbox", "addresses": ["platform@contoso.test"]}
        response = client.post(
            "/api/v1/plans",
            json={
                "tenant_id": tenant_id,
                "template": "default",
                "bindings": {"it_platform_team": mailbox},
            },
            headers=tokens["operator"],
        )
        assert response.status_code == 422
        assert response.json()["errors"] == [
            {
                "path": "spec.phases[0].steps[1].cohort.binding",
                "message": "binding 'it_platform_team' names mailboxes, not directory users or "
                "groups",
            }
        ]

    def test_mailbox_binding_addresses_are_checked(self, client, tokens) -> None:  # type: ignore[no-untyped-def]
        body = tenant_body()
        body["bindings"]["security_team_mailbox"] = {"kind": "mailbox", "addresses": ["secops"]}
        response = client.post("/api/v1/tenants", json=body, headers=tokens["admin"])
        assert response.status_code == 422
        (error,) = response.json()["errors"]
        assert "'secops' is not an e-mail address" in error["message"]

    def test_binding_override_fills_the_gap(self, client, tokens) -> None:  # type: ignore[no-untyped-def]
        body = tenant_body()
        del body["bindings"]["security_team"]
        tenant = client.post("/api/v1/tenants", json=body, headers=tokens["admin"]).json()
        override = {
            "security_team": {"kind": "group", "id": "99999999-9999-4999-8999-999999999999"}
        }
        plan = _plan(client, tokens, tenant["id"], bindings=override)
        assert plan["state"] == "draft"

    def test_bad_binding_override(self, client, tokens) -> None:  # type: ignore[no-untyped-def]
        tenant_id = _tenant(client, tokens)
        response = client.post(
            "/api/v1/plans",
            json={
                "tenant_id": tenant_id,
                "template": "default",
                "bindings": {"managers": {"kind": "group"}},
            },
            headers=tokens["operator"],
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["path"].startswith("bindings.managers")

    def test_unknown_tenant(self, client, tokens) -> None:  # type: ignore[no-untyped-def]
        response = client.post(
            "/api/v1/plans",
            json={"tenant_id": "x", "template": "default"},
            headers=tokens["operator"],
        )
        assert response.status_code == 404


class TestTemplates:
    def test_lists_shipped_templates(self, client, tokens) -> None:  # type: ignore[no-untyped-def]
        templates = client.get("/api/v1/plan-templates", headers=tokens["viewer"]).json()
        assert [t["name"] for t in templates] == ["default", "demo"]
        assert all(t["valid"] for t in templates)
        assert templates[0]["phases"][1] == {
            "key": "feedback",
            "title": "Adjust settings from the pilot's feedback",
            "starts_after": "P7D",
            "gate": "manual",
            "steps": ["apply_role_settings"],
        }
        one = client.get("/api/v1/plan-templates/demo", headers=tokens["viewer"])
        assert one.json()["phases"][1]["starts_after"] == "PT20S"
        assert (
            client.get("/api/v1/plan-templates/nope", headers=tokens["viewer"]).status_code == 404
        )
