"""The ``/_sim`` control API, the timeline, and generated activation history."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter

from app.domain.tenant import Binding, CommsSettings
from app.simulator.app import create_simulator_app
from app.simulator.catalog import HIGH_IMPACT_ROLES
from app.simulator.clock import FakeClock
from app.simulator.faults import SimLimits
from app.simulator.seed import generate_tenant
from app.simulator.state import SimState
from tests.simulator.conftest import (
    GA,
    RM,
    USER_ADMIN,
    Sim,
    assign_body,
    holder,
    plain_user,
    remove_body,
)


def replay(timeline: list[dict[str, Any]]) -> set[tuple[str, str, str, str]]:
    """Replay the timeline from empty, failing on any change that contradicts what came before."""
    held: set[tuple[str, str, str, str]] = set()
    last_at = ""
    for entry in timeline:
        assert entry["at"] >= last_at, "timeline out of order"
        last_at = entry["at"]
        key = (
            entry["principal_id"],
            entry["role_definition_id"],
            entry["directory_scope_id"],
            entry["kind"],
        )
        if entry["change"] == "added":
            assert key not in held, f"added twice: {entry}"
            held.add(key)
        else:
            assert key in held, f"removed while absent: {entry}"
            held.remove(key)
    return held


def current(state: SimState, now: Any) -> set[tuple[str, str, str, str]]:
    return {
        (s.principal_id, s.role_definition_id, s.directory_scope_id, s.kind)
        for store in (state.actives, state.eligibles)
        for s in store
        if s.effective(now)
    }


class TestProfileAndState:
    async def test_profile_has_the_tenant_body_shape(self, sim: Sim) -> None:
        profile = (await sim.client.get("/_sim/profile")).json()
        assert set(profile) == {"auth", "break_glass_ids", "bindings", "comms"}
        assert profile["auth"] == {"kind": "none"}
        assert len(profile["break_glass_ids"]) == 2
        assert set(profile["bindings"]) == {
            "it_platform_team",
            "security_team",
            "managers",
            "role_owners",
            "helpdesk",
            "security_team_mailbox",
        }
        for binding in profile["bindings"].values():
            TypeAdapter(Binding).validate_python(binding)  # the product's own models accept it
        CommsSettings.model_validate(profile["comms"])
        assert profile["comms"]["helpdesk"]["name"] == "IT Service Desk"

    async def test_state_lists_everything(self, sim: Sim) -> None:
        state = (await sim.client.get("/_sim/state")).json()
        assert state["tenant_id"] == sim.state.tenant_id
        assert state["p2"] is True
        assert len(state["users"]) == len(sim.state.users)
        assert all("member_ids" in g for g in state["groups"])
        assert len(state["active_assignments"]) == len(sim.state.actives)
        first = state["active_assignments"][0]
        assert first["created_outside_pim"] is True
        assert first["kind"] == "active"
        assert first["start"] is None
        assert set(state["policies"][GA]["rules"]) >= {"Expiration_EndUser_Assignment"}
        assert state["eligible_assignments"] == []
        assert state["review_definitions"] == []


class TestTimeline:
    async def test_starts_with_the_seeded_assignments(self, sim: Sim) -> None:
        timeline = await sim.timeline()
        assert len(timeline) == len(sim.state.actives)
        assert {e["cause"] for e in timeline} == {"seed"}
        assert replay(timeline) == current(sim.state, sim.clock.now())

    async def test_every_change_is_recorded_in_order(self, sim: Sim) -> None:
        principal = holder(sim.state, USER_ADMIN)
        await sim.request("eligibility", assign_body(principal, USER_ADMIN))
        await sim.request("assignment", remove_body(principal, USER_ADMIN))
        timeline = await sim.timeline()
        order = [(e["at"], e["seq"]) for e in timeline]
        assert order == sorted(order)
        assert len({e["seq"] for e in timeline}) == len(timeline)
        assert replay(timeline) == current(sim.state, sim.clock.now())
        since = (await sim.client.get(f"/_sim/timeline?since_seq={timeline[-2]['seq']}")).json()
        assert since == timeline[-1:]


class TestKnobsAndInjections:
    async def test_drift_assignment_outside_pim(self, sim: Sim) -> None:
        principal = plain_user(sim.state)
        response = await sim.client.post(
            "/_sim/assignments", json={"principal_id": principal, "role_definition_id": GA}
        )
        assert response.status_code == 201
        assert response.json()["created_outside_pim"] is True
        schedules = (
            await sim.get(f"{RM}/roleAssignmentSchedules?$filter=principalId eq '{principal}'")
        ).json()
        assert schedules["value"][0]["createdUsing"] is None
        names = [a.body["activityDisplayName"] for a in sim.state.audits]
        assert names[-1] == "Add member to role outside of PIM (permanent)"
        again = await sim.client.post(
            "/_sim/assignments", json={"principal_id": principal, "role_definition_id": GA}
        )
        assert again.status_code == 409
        unknown = await sim.client.post(
            "/_sim/assignments", json={"principal_id": "x", "role_definition_id": GA}
        )
        assert unknown.status_code == 404

    async def test_clock_endpoint(self, sim: Sim) -> None:
        before = sim.clock.now()
        response = await sim.client.post("/_sim/clock", json={"seconds": 90})
        assert response.status_code == 200
        assert (sim.clock.now() - before).total_seconds() == 90
        assert (await sim.client.post("/_sim/clock", json={"seconds": -1})).status_code == 422

    async def test_clock_endpoint_needs_a_fake_clock(self, tenant: SimState) -> None:
        app = create_simulator_app(tenant)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://sim"
        ) as client:
            assert (await client.post("/_sim/clock", json={"seconds": 5})).status_code == 409

    async def test_permissions_and_licensing(self, sim: Sim) -> None:
        granted = (
            await sim.client.put("/_sim/permissions", json={"granted": ["Mail.Send"]})
        ).json()
        assert granted == {"granted": ["Mail.Send"]}
        assert (await sim.get(f"{RM}/roleDefinitions")).status_code == 403
        await sim.client.put(
            "/_sim/permissions",
            json={"granted": ["Directory.Read.All", "RoleManagement.Read.Directory"]},
        )
        assert (await sim.client.put("/_sim/licensing", json={"p2": False})).json() == {"p2": False}
        skus = (await sim.get("/v1.0/subscribedSkus")).json()["value"]
        assert all(s["skuPartNumber"] != "AAD_PREMIUM_P2" for s in skus)

    async def test_request_counts(self, sim: Sim) -> None:
        await sim.get("/v1.0/organization")
        await sim.get("/v1.0/users/ghost")
        stats = (await sim.client.get("/_sim/requests")).json()
        assert stats["total"] == 2
        assert {(r["route"], r["status"]) for r in stats["by_route"]} == {
            ("organization", 200),
            ("users/{id}", 404),
        }


async def _eligible_cohort(sim: Sim, age_days: float = 40) -> list[str]:
    """Convert a few admins of User Administrator to eligible, then let ``age_days`` pass."""
    converted = []
    for schedule in list(sim.state.actives.for_role(USER_ADMIN)):
        if schedule.principal_id in sim.state.users and schedule.outside_pim:
            pid = schedule.principal_id
            assert (
                await sim.request("eligibility", assign_body(pid, USER_ADMIN))
            ).status_code == 201
            assert (
                await sim.request("assignment", remove_body(pid, USER_ADMIN))
            ).status_code == 201
            converted.append(pid)
    sim.clock.advance(age_days * 86400)
    return converted


class TestActivity:
    async def test_needs_eligible_users(self, sim: Sim) -> None:
        response = await sim.client.post("/_sim/activity", json={"activations": 5})
        assert response.status_code == 409

    async def test_history_is_consistent_with_requests_audits_and_timeline(self, sim: Sim) -> None:
        cohort = await _eligible_cohort(sim)
        assert cohort
        body = {"activations": 40, "days": 30, "seed": 5, "outside_pim_assignments": 3}
        summary = (await sim.client.post("/_sim/activity", json=body)).json()
        assert summary["requested"] + summary["skipped"] == 40
        requests = [r for r in sim.state.requests.values() if r.action == "selfActivate"]
        assert len(requests) == summary["requested"] == len(summary["request_ids"])
        assert summary["with_ticket"] == sum(1 for r in requests if r.ticket_number)
        assert summary["smelly_justifications"] == sum(
            1
            for r in requests
            if r.justification
            in {"doing my job", "fix", "admin work", "needed", "work", "asdf", ".."}
        )
        deactivations = [r for r in sim.state.requests.values() if r.action == "selfDeactivate"]
        assert summary["deactivated_early"] == len(deactivations)
        window_start = summary["window_start"]
        assert all(
            window_start <= r.created_at.isoformat().replace("+00:00", "Z") for r in requests
        )
        audits = Counter(a.body["activityDisplayName"] for a in sim.state.audits)
        assert audits["Add member to role requested (PIM activation)"] == summary["requested"]
        assert (
            audits["Add member to role outside of PIM (permanent)"]
            == summary["outside_pim_assignments"]
            == 3
        )
        timeline = await sim.timeline()
        assert replay(timeline) == current(sim.state, sim.clock.now())
        activated = [e for e in timeline if e["cause"] == "activation"]
        assert len(activated) == summary["provisioned"]
        assert set(summary["by_role"]) == {USER_ADMIN}

    async def test_fresh_eligibilities_get_running_activations(self, sim: Sim) -> None:
        cohort = await _eligible_cohort(sim, age_days=30 / 86400)
        assert cohort
        body = {"activations": 20, "days": 1, "seed": 3}
        settled = (await sim.client.post("/_sim/activity", json=body)).json()
        assert settled["requested"] == 0  # nothing started ten minutes ago: all are newer
        fresh = (await sim.client.post("/_sim/activity", json={**body, "settle_minutes": 0})).json()
        assert fresh["requested"] + fresh["skipped"] == 20
        assert fresh["requested"] > 0
        assert fresh["still_active"] > 0

    async def test_same_seed_same_history(self) -> None:
        summaries = []
        for _ in range(2):
            state = generate_tenant(users=120, admins=30, seed=7)
            clock = FakeClock(datetime(2025, 1, 6, 9, 0, tzinfo=UTC))
            app = create_simulator_app(state, limits=SimLimits(throttling=False), clock=clock)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://sim") as client:
                sim = Sim(state, clock, client, app)
                await _eligible_cohort(sim)
                response = await sim.client.post(
                    "/_sim/activity", json={"activations": 25, "seed": 9}
                )
                summaries.append(response.json())
        assert summaries[0] == summaries[1]

    async def test_approval_roles_get_approvals_and_denials(self, sim: Sim) -> None:
        cohort = await _eligible_cohort(sim)
        approver = plain_user(sim.state)
        policy_id = sim.state.policy_for_role(USER_ADMIN).id
        rule = {
            "@odata.type": "#microsoft.graph.unifiedRoleManagementPolicyApprovalRule",
            "id": "Approval_EndUser_Assignment",
            "setting": {
                "isApprovalRequired": True,
                "approvalStages": [
                    {
                        "primaryApprovers": [
                            {"@odata.type": "#microsoft.graph.singleUser", "userId": approver}
                        ]
                    }
                ],
            },
        }
        patched = await sim.patch(
            f"/v1.0/policies/roleManagementPolicies/{policy_id}/rules/{rule['id']}", rule
        )
        assert patched.status_code == 200
        assert cohort
        summary = (
            await sim.client.post(
                "/_sim/activity", json={"activations": 30, "seed": 3, "denial_share": 0.5}
            )
        ).json()
        assert summary["approved"] + summary["denied"] == summary["requested"] > 0
        assert summary["denied"] == sum(
            1 for r in sim.state.requests.values() if r.status == "Denied"
        )

    @pytest.mark.parametrize("body", [{"activations": -1}, {"days": 0}, {"colour": "red"}])
    async def test_invalid_options(self, sim: Sim, body: dict[str, Any]) -> None:
        assert (await sim.client.post("/_sim/activity", json=body)).status_code == 422


def test_high_impact_roles_are_the_design_target_list() -> None:
    assert HIGH_IMPACT_ROLES[:4] == (
        GA,
        "7be44c8a-adaf-4e2a-84d6-ab2649e08a13",
        "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3",
        USER_ADMIN,
    )
