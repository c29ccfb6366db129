"""The MS.AAD.7 posture report over HTTP: taken as a job, read by viewers, JSON or CSV."""

from __future__ import annotations

import csv
import io
from typing import Any

from fastapi.testclient import TestClient

Headers = dict[str, dict[str, str]]
WAIT = {"Prefer": "wait=60"}
POLICY_IDS = [f"MS.AAD.7.{n}" for n in range(1, 10)]


def _tenant(client: TestClient, tokens: Headers, body: dict[str, Any]) -> str:
    response = client.post("/api/v1/tenants", json=body, headers=tokens["admin"])
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


class TestTenantPosture:
    def test_taken_by_an_operator_read_by_a_viewer(
        self, client: TestClient, tokens: Headers, sim_tenant_body: dict[str, Any]
    ) -> None:
        tenant_id = _tenant(client, tokens, sim_tenant_body)
        url = f"/api/v1/tenants/{tenant_id}/reports/posture"
        missing = client.get(url, headers=tokens["viewer"])
        assert missing.status_code == 404
        assert "POST to take one" in missing.json()["detail"]
        assert client.post(url, headers=tokens["viewer"]).status_code == 403

        taken = client.post(url, headers={**tokens["operator"], **WAIT})
        assert taken.status_code == 201, taken.text
        report = taken.json()
        assert report["scope"] == "cisa"
        assert report["trigger"] == "on_demand"
        assert [p["policy_id"] for p in report["policies"]] == POLICY_IDS
        assert {r["name"] for r in report["roles"]} == {
            "Global Administrator",
            "Privileged Role Administrator",
            "User Administrator",
            "SharePoint Administrator",
            "Exchange Administrator",
            "Hybrid Identity Administrator",
            "Application Administrator",
            "Cloud Application Administrator",
        }
        assert report["roles_not_in_tenant"] == []
        assert (
            report["mailboxes"] == sim_tenant_body["bindings"]["security_team_mailbox"]["addresses"]
        )
        results = {p["policy_id"]: p["result"] for p in report["policies"]}
        assert results["MS.AAD.7.4"] == results["MS.AAD.7.7"] == "fail"
        assert sum(report["summary"].values()) == 9
        permanent = next(p for p in report["policies"] if p["policy_id"] == "MS.AAD.7.4")
        assert permanent["items"]
        assert all(item["name"] and item["detail"] for item in permanent["items"])
        assert permanent["plan"] is None  # no plan for this tenant yet

        read = client.get(url, headers=tokens["viewer"])
        assert read.status_code == 200
        assert read.json() == report

    def test_csv_when_asked(
        self, client: TestClient, tokens: Headers, sim_tenant_body: dict[str, Any]
    ) -> None:
        tenant_id = _tenant(client, tokens, sim_tenant_body)
        url = f"/api/v1/tenants/{tenant_id}/reports/posture"
        client.post(
            "/api/v1/plans",
            json={"tenant_id": tenant_id, "template": "default"},
            headers=tokens["operator"],
        )
        assert client.post(url, headers={**tokens["operator"], **WAIT}).status_code == 201
        response = client.get(url, headers={**tokens["viewer"], "Accept": "text/csv"})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        assert "attachment" in response.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert [r["policy_id"] for r in rows] == POLICY_IDS
        assert set(rows[0]) == {"policy_id", "policy", "result", "detail", "failing", "plan"}
        alerts = next(r for r in rows if r["policy_id"] == "MS.AAD.7.8")
        assert alerts["result"] == "fail"
        assert alerts["failing"].startswith("Global Administrator (does not mail")
        # The tenant's plan says what it does about it.
        assert alerts["plan"] == "pilot: set_notification_rules for Global Administrator"

    def test_unknown_tenant(self, client: TestClient, tokens: Headers) -> None:
        url = "/api/v1/tenants/nope/reports/posture"
        assert client.get(url, headers=tokens["viewer"]).status_code == 404


class TestPlanPosture:
    def test_before_is_taken_at_start_and_now_on_demand(
        self, client: TestClient, tokens: Headers, sim_tenant_body: dict[str, Any]
    ) -> None:
        tenant_id = _tenant(client, tokens, sim_tenant_body)
        plan = client.post(
            "/api/v1/plans",
            json={"tenant_id": tenant_id, "template": "default"},
            headers=tokens["operator"],
        ).json()
        url = f"/api/v1/plans/{plan['id']}/posture"
        empty = client.get(url, headers=tokens["viewer"]).json()
        assert empty["before"] is None
        assert empty["now"] is None
        assert [p["phase"] for p in empty["phases"]] == [p["key"] for p in plan["phases"]]

        started = client.post(
            f"/api/v1/plans/{plan['id']}/start", headers={**tokens["operator"], **WAIT}
        )
        assert started.status_code == 200, started.text
        view = client.get(url, headers=tokens["viewer"]).json()
        before = view["before"]
        assert before["scope"] == "plan"
        assert before["trigger"] == "baseline"
        assert len(before["roles"]) == 11  # the plan's target roles
        assert view["now"] == before
        assert all(p["report"] is None for p in view["phases"])
        comparison = {p["policy_id"]: p for p in view["policies"]}
        assert comparison["MS.AAD.7.6"]["before"] == "fail"
        assert comparison["MS.AAD.7.6"]["plan"] == "ga-approval: approval by security_team"
        # The tenant's CISA-scope report came from the same reading.
        tenant_report = client.get(
            f"/api/v1/tenants/{tenant_id}/reports/posture", headers=tokens["viewer"]
        ).json()
        assert tenant_report["trigger"] == "baseline"
        assert tenant_report["plan_id"] == plan["id"]

        assert client.post(url, headers=tokens["viewer"]).status_code == 403
        again = client.post(url, headers={**tokens["operator"], **WAIT})
        assert again.status_code == 201, again.text
        assert again.json()["before"] == before
        assert again.json()["now"]["trigger"] == "on_demand"
        assert again.json()["now"]["id"] != before["id"]
