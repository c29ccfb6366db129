"""POST /api/v1/plans/{id}/preview: per phase exactly what would change, and nothing changes."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.applications import Starlette

from tests.factories import GA, PRA, plan_data

TARGETS = {r["id"]: r["name"] for r in plan_data()["roles"]}
PAA = "7be44c8a-adaf-4e2a-84d6-ab2649e08a13"
CSV_HEADER = ["phase", "step", "kind", "role", "subject", "before", "after", "note"]
Headers = dict[str, dict[str, str]]


@pytest.fixture
def sim(sim_app: Starlette) -> Iterator[TestClient]:
    with TestClient(sim_app) as client:
        yield client


@pytest.fixture
def plan_id(client: TestClient, tokens: Headers, sim_tenant_body: dict[str, Any]) -> str:
    tenant = client.post("/api/v1/tenants", json=sim_tenant_body, headers=tokens["admin"])
    assert tenant.status_code == 201, tenant.text
    plan = client.post(
        "/api/v1/plans",
        json={"tenant_id": tenant.json()["id"], "template": "default"},
        headers=tokens["operator"],
    )
    assert plan.status_code == 201, plan.text
    return str(plan.json()["id"])


def subject_names(state: dict[str, Any]) -> dict[str, str]:
    """How the preview names a principal: a user by UPN, anything else by display name."""
    names = {u["id"]: u["user_principal_name"] for u in state["users"]}
    names |= {g["id"]: g["display_name"] for g in state["groups"]}
    names |= {sp["id"]: sp["display_name"] for sp in state["service_principals"]}
    return names


def changes_of(body: dict[str, Any], phase: str, kind: str) -> list[dict[str, Any]]:
    (found,) = [p for p in body["phases"] if p["phase"] == phase]
    return [c for c in found["changes"] if c["kind"] == kind]


def snapshot(client: TestClient, sim: TestClient, plan_id: str, headers: dict[str, str]) -> Any:
    return {
        "state": sim.get("/_sim/state").json(),
        "timeline": sim.get("/_sim/timeline").json(),
        "outbox": sim.get("/_sim/outbox").json(),
        "plan": client.get(f"/api/v1/plans/{plan_id}", headers=headers).json(),
        "history": client.get(f"/api/v1/plans/{plan_id}/history", headers=headers).json(),
        "operations": client.get(f"/api/v1/plans/{plan_id}/operations", headers=headers).json(),
    }


class TestPreview:
    def test_lists_every_change_per_phase_against_the_tenant(
        self, client: TestClient, tokens: Headers, sim: TestClient, plan_id: str
    ) -> None:
        state = sim.get("/_sim/state").json()
        profile = sim.get("/_sim/profile").json()
        response = client.post(f"/api/v1/plans/{plan_id}/preview", headers=tokens["operator"])
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["plan_id"] == plan_id
        assert [p["phase"] for p in body["phases"]] == [
            "pilot",
            "feedback",
            "all-admins",
            "ga-approval",
            "access-reviews",
        ]
        for phase in body["phases"]:
            counts: dict[str, int] = {}
            for change in phase["changes"]:
                counts[change["kind"]] = counts.get(change["kind"], 0) + 1
            assert phase["summary"] == counts

        # Conversions: every permanent Active holder of a target role, exactly once.
        names = subject_names(state)
        break_glass = set(profile["break_glass_ids"])
        holders = {
            (TARGETS[a["role_definition_id"]], names[a["principal_id"]]): a
            for a in state["active_assignments"]
            if a["role_definition_id"] in TARGETS
            and a["assignment_type"] == "Assigned"
            and a["end"] is None
        }
        team_id = profile["bindings"]["it_platform_team"]["id"]
        team = next(set(g["member_ids"]) for g in state["groups"] if g["id"] == team_id)
        pilot = changes_of(body, "pilot", "convert_cohort")
        rest = changes_of(body, "all-admins", "convert_cohort")
        listed = [(c["role"], c["subject"]) for c in pilot + rest]
        assert len(listed) == len(set(listed))
        assert set(listed) == set(holders)
        assert {(c["role"], c["subject"]) for c in pilot} == {
            key for key, a in holders.items() if a["principal_id"] in team
        }
        converting = {
            (c["role"], c["subject"])
            for c in pilot + rest
            if c["after"] in {"Eligible (permanent)", "Active + Eligible"}
        }
        assert converting == {
            key
            for key, a in holders.items()
            if a["principal_id"] not in break_glass and a["principal_type"] != "servicePrincipal"
        }
        assert len(converting) >= 15
        for change in pilot + rest:
            holder = holders[(change["role"], change["subject"])]
            assert change["before"] == "Active (permanent)"
            if holder["principal_id"] in break_glass:
                assert change["after"] == "unchanged"
                assert change["note"].startswith("break-glass account")
            elif holder["principal_type"] == "servicePrincipal":
                assert change["after"] == "unchanged"
                assert change["note"] == "service principals cannot be eligible for directory roles"
        kept = [c for c in rest if c["after"] == "Active + Eligible"]
        assert [c["role"] for c in kept] == [TARGETS[PRA]]
        assert all("last active holder" in c["note"] for c in kept)

        comms = changes_of(body, "pilot", "send_comms") + changes_of(
            body, "all-admins", "send_comms"
        )
        converted_users = [
            {
                holders[(c["role"], c["subject"])]["principal_id"]
                for c in changes
                if c["after"] == "Eligible (permanent)"
                and holders[(c["role"], c["subject"])]["principal_type"] == "user"
            }
            for changes in (pilot, rest)
        ]
        assert [c["subject"] for c in comms] == [f"{len(u)} recipient(s)" for u in converted_users]

        # Rules, before -> after; the feedback phase starts from what the pilot set.
        policies = state["policies"]
        expected_pilot = set()
        for role_id, role in TARGETS.items():
            rules = policies[role_id]["rules"]
            if rules["Expiration_EndUser_Assignment"]["maximumDuration"] != "PT4H":
                expected_pilot.add((role, "Expiration_EndUser_Assignment"))
            enabled = set(rules["Enablement_EndUser_Assignment"]["enabledRules"])
            if enabled != {"MultiFactorAuthentication", "Justification"}:
                expected_pilot.add((role, "Enablement_EndUser_Assignment"))
        settings = changes_of(body, "pilot", "apply_role_settings")
        assert {(c["role"], c["subject"]) for c in settings} == expected_pilot
        assert len(settings) >= len(TARGETS)
        by_name = {name: role_id for role_id, name in TARGETS.items()}
        for change in settings:
            rule = policies[by_name[change["role"]]]["rules"][change["subject"]]
            if change["subject"] == "Expiration_EndUser_Assignment":
                assert change["before"] == (
                    f"required={rule['isExpirationRequired']} max={rule['maximumDuration']}"
                )
                assert change["after"] == "required=True max=PT4H"
        feedback = changes_of(body, "feedback", "apply_role_settings")
        assert {(c["role"], c["subject"], c["before"], c["after"]) for c in feedback} == {
            (
                role,
                "Expiration_EndUser_Assignment",
                "required=True max=PT4H",
                "required=True max=PT8H",
            )
            for role in TARGETS.values()
        }

        security = profile["bindings"]["security_team"]["id"]
        managers = profile["bindings"]["managers"]["id"]
        approvals = changes_of(body, "ga-approval", "require_approval")
        assert {(c["role"], c["subject"], c["after"]) for c in approvals} == {
            (TARGETS[GA], "Approval_EndUser_Assignment", f"approval by groupMembers:{security}"),
            (TARGETS[PAA], "Approval_EndUser_Assignment", f"approval by groupMembers:{managers}"),
            (TARGETS[PRA], "Approval_EndUser_Assignment", f"approval by groupMembers:{managers}"),
        }
        for change in approvals:
            setting = policies[by_name[change["role"]]]["rules"][change["subject"]]["setting"]
            assert setting["isApprovalRequired"] is False
            assert change["before"] == "no approval"

        # Alerts: GA in the pilot, every other target role with the rest of the admins.
        mailbox = profile["bindings"]["security_team_mailbox"]["addresses"][0]
        alert_rules = {
            "Notification_Admin_Admin_Assignment",
            "Notification_Admin_Admin_Eligibility",
            "Notification_Admin_EndUser_Assignment",
        }
        for phase, roles in (
            ("pilot", {TARGETS[GA]}),
            ("all-admins", set(TARGETS.values()) - {TARGETS[GA]}),
        ):
            alerts = changes_of(body, phase, "set_notification_rules")
            assert {(c["role"], c["subject"]) for c in alerts} == {
                (role, rule) for role in roles for rule in alert_rules
            }
            for change in alerts:
                assert change["before"] == "All to no extra recipients; default recipients on"
                assert change["after"] == f"All to {mailbox}; default recipients on"

        owners = profile["bindings"]["role_owners"]["owners"]
        reviews = changes_of(body, "access-reviews", "create_access_reviews")
        assert state["review_definitions"] == []
        assert sorted(c["role"] for c in reviews) == sorted(TARGETS.values())
        for change in reviews:
            assert change["before"] == "none"
            assert change["after"] == "every 3 months, default Deny, auto-apply on"
            assert change["note"] == f"reviewer {owners[by_name[change['role']]]}"
            assert change["subject"].startswith(f"Quarterly review - {change['role']} [")

    def test_changes_nothing(
        self, client: TestClient, tokens: Headers, sim: TestClient, plan_id: str
    ) -> None:
        headers = tokens["operator"]
        before = snapshot(client, sim, plan_id, headers)
        requests_before = sim.get("/_sim/requests").json()["total"]
        assert client.post(f"/api/v1/plans/{plan_id}/preview", headers=headers).status_code == 200
        assert (
            client.get(f"/api/v1/plans/{plan_id}/preview.csv", headers=headers).status_code == 200
        )
        after = snapshot(client, sim, plan_id, headers)
        assert after == before
        assert after["operations"] == []
        assert after["plan"]["state"] == "draft"
        stats = sim.get("/_sim/requests").json()
        assert stats["total"] > requests_before, "the preview reads the live tenant"
        assert {r["method"] for r in stats["by_route"]} == {"GET"}

    @pytest.mark.parametrize("how", ["download", "query", "accept"])
    def test_csv_matches_the_json(
        self, client: TestClient, tokens: Headers, plan_id: str, how: str
    ) -> None:
        headers = tokens["operator"]
        body = client.post(f"/api/v1/plans/{plan_id}/preview", headers=headers).json()
        if how == "download":
            response = client.get(f"/api/v1/plans/{plan_id}/preview.csv", headers=headers)
        elif how == "accept":
            response = client.post(
                f"/api/v1/plans/{plan_id}/preview", headers={**headers, "Accept": "text/csv"}
            )
        else:
            response = client.post(
                f"/api/v1/plans/{plan_id}/preview", params={"format": "csv"}, headers=headers
            )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/csv")
        assert response.headers["content-disposition"] == (
            f'attachment; filename="plan-{plan_id}-preview.csv"'
        )
        rows = list(csv.reader(io.StringIO(response.text)))
        assert rows[0] == CSV_HEADER
        expected = [
            [
                phase["phase"],
                str(change["step"]),
                change["kind"],
                *(change[field] or "" for field in CSV_HEADER[3:]),
            ]
            for phase in body["phases"]
            for change in phase["changes"]
        ]
        assert rows[1:] == expected
        assert len(expected) > 40

    def test_unknown_plan_is_404(self, client: TestClient, tokens: Headers) -> None:
        response = client.post("/api/v1/plans/no-such-plan/preview", headers=tokens["operator"])
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        assert "no-such-plan" in response.json()["detail"]

    def test_bad_format_names_the_field(
        self, client: TestClient, tokens: Headers, plan_id: str
    ) -> None:
        response = client.post(
            f"/api/v1/plans/{plan_id}/preview", params={"format": "xml"}, headers=tokens["operator"]
        )
        assert response.status_code == 422
        assert [e["path"] for e in response.json()["errors"]] == ["query.format"]


class TestPreviewAccess:
    # The dry run reads the whole live tenant (Graph quota): operators and up, like the UI's
    # preview tab. The contract grants viewers only reads of stored resources.
    @pytest.mark.parametrize(("method", "suffix"), [("post", "preview"), ("get", "preview.csv")])
    def test_viewer_is_refused(
        self, client: TestClient, tokens: Headers, plan_id: str, method: str, suffix: str
    ) -> None:
        response = client.request(
            method, f"/api/v1/plans/{plan_id}/{suffix}", headers=tokens["viewer"]
        )
        assert response.status_code == 403
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["required_role"] == "operator"

    @pytest.mark.parametrize(("method", "suffix"), [("post", "preview"), ("get", "preview.csv")])
    def test_unauthenticated_is_401(
        self, client: TestClient, plan_id: str, method: str, suffix: str
    ) -> None:
        response = client.request(method, f"/api/v1/plans/{plan_id}/{suffix}")
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"] == "Bearer"

    def test_admin_may_preview(self, client: TestClient, tokens: Headers, plan_id: str) -> None:
        response = client.post(f"/api/v1/plans/{plan_id}/preview", headers=tokens["admin"])
        assert response.status_code == 200
        assert len(response.json()["phases"]) == 5
