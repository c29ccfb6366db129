"""The whole default plan through the API against a 2,000-user tenant, then an exact rollback."""

from __future__ import annotations

import httpx
import pytest

from app.domain.roles import GLOBAL_ADMINISTRATOR, PRIVILEGED_ROLE_ADMINISTRATOR
from app.engine.tick import tick
from tests.engine.conftest import Clients, Rig
from tests.engine.helpers import eligible, no_lockout, permanent_active, rules_of
from tests.factories import plan_data

# At this scale a run takes seconds of CPU; `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow

TARGETS = [r["id"] for r in plan_data()["roles"]]


@pytest.fixture
def sim_size() -> tuple[int, int]:
    return (2000, 150)


@pytest.fixture
def api(clients: Clients) -> httpx.AsyncClient:
    return clients.api


async def _drive(rig: Rig, api: httpx.AsyncClient, plan_id: str, until: set[str]) -> dict:
    for _ in range(80):
        plan = (await api.get(f"/api/v1/plans/{plan_id}")).json()
        if plan["state"] in until:
            return plan
        for phase in plan["phases"]:
            if phase["state"] == "awaiting_gate":
                response = await api.post(
                    f"/api/v1/plans/{plan_id}/advance",
                    json={"reason": f"{phase['key']}: feedback reviewed"},
                )
                assert response.status_code == 200, response.text
        await tick(rig.ectx)
        rig.clock.advance(days=1)
    raise AssertionError(f"plan did not reach {until}: {plan}")


class TestDefaultPlan:
    async def test_runs_to_completion_and_rolls_back_exactly(
        self, rig: Rig, api: httpx.AsyncClient
    ) -> None:
        before = await rig.sim("GET", "/_sim/state")
        baseline_active = permanent_active(before)
        baseline_eligible = eligible(before)
        baseline_rules = {role: rules_of(before, role) for role in TARGETS}
        break_glass = set((await rig.sim("GET", "/_sim/profile"))["break_glass_ids"])

        created = await api.post(
            "/api/v1/plans", json={"tenant_id": rig.tenant_id, "template": "default"}
        )
        assert created.status_code == 201, created.text
        plan_id = created.json()["id"]
        started = await api.post(f"/api/v1/plans/{plan_id}/start", json={"reason": "CHG-1"})
        assert started.status_code == 200, started.text
        assert started.json()["preflight"]["passed"] is True

        plan = await _drive(rig, api, plan_id, {"completed", "failed"})
        assert plan["state"] == "completed", plan
        after = await rig.sim("GET", "/_sim/state")
        types = {a["principal_id"]: a["principal_type"] for a in before["active_assignments"]}
        active_now, eligible_now = permanent_active(after), eligible(after)

        converted = kept = 0
        for principal, role, scope in baseline_active:
            key = (principal, role, scope)
            if role not in TARGETS:
                assert key in active_now, "low-impact roles stay untouched"
                continue
            if principal in break_glass:
                assert key in active_now, "break-glass untouched"
                assert key not in eligible_now, "break-glass untouched"
            elif types.get(principal) == "servicePrincipal":
                assert key in active_now, "service principals stay"
                assert key not in eligible_now, "service principals stay"
            elif key in active_now:
                assert role == PRIVILEGED_ROLE_ADMINISTRATOR
                assert key in eligible_now
                kept += 1
            else:
                assert key in eligible_now, f"{key} lost its role"
                converted += 1
        assert converted > 100
        assert kept <= 1
        ga_rules = rules_of(after, GLOBAL_ADMINISTRATOR)
        assert ga_rules["Expiration_EndUser_Assignment"]["maximumDuration"] == 8 * 3600
        assert ga_rules["Enablement_EndUser_Assignment"]["enabledRules"] == sorted(
            ["MultiFactorAuthentication", "Justification"]
        )
        assert ga_rules["Approval_EndUser_Assignment"]["setting"]["isApprovalRequired"] is True
        reviews = after["review_definitions"]
        assert len(reviews) == len(TARGETS)
        assert all(r["settings"]["defaultDecision"] == "Deny" for r in reviews)
        assert all(r["settings"]["autoApplyDecisionsEnabled"] is True for r in reviews)
        outbox = await rig.sim("GET", "/_sim/outbox")
        assert len(outbox) > 0

        assert plan["allowed_events"] == ["rollback"]
        rolled = await api.post(f"/api/v1/plans/{plan_id}/rollback", json={"reason": "undo it all"})
        assert rolled.status_code == 200, rolled.text
        plan = await _drive(rig, api, plan_id, {"rolled_back", "failed"})
        assert plan["state"] == "rolled_back", plan
        restored = await rig.sim("GET", "/_sim/state")
        assert permanent_active(restored) == baseline_active
        assert eligible(restored) == baseline_eligible
        assert {role: rules_of(restored, role) for role in TARGETS} == baseline_rules
        assert restored["review_definitions"] == []
        assert all(p["state"] == "rolled_back" for p in plan["phases"])
        # The rollback's own comparison with the baseline agrees: no drift, nothing new.
        history = (await api.get(f"/api/v1/plans/{plan_id}/history")).json()
        assert (history[-1]["event"], history[-1]["reason"]) == (
            "rollback_finished",
            "rollback finished",
        )

    async def test_abort_midway_restores_the_baseline(
        self, rig: Rig, api: httpx.AsyncClient
    ) -> None:
        before = await rig.sim("GET", "/_sim/state")
        plan_id = (
            await api.post(
                "/api/v1/plans", json={"tenant_id": rig.tenant_id, "template": "default"}
            )
        ).json()["id"]
        await api.post(f"/api/v1/plans/{plan_id}/start")
        # Run through the approvals phase, then abort before the reviews phase starts.
        for _ in range(40):
            plan = (await api.get(f"/api/v1/plans/{plan_id}")).json()
            if plan["phases"][3]["state"] == "completed":
                break
            for phase in plan["phases"]:
                if phase["state"] == "awaiting_gate":
                    await api.post(f"/api/v1/plans/{plan_id}/advance")
            await tick(rig.ectx)
            rig.clock.advance(days=1)
        assert plan["phases"][3]["state"] == "completed", plan
        aborted = await api.post(f"/api/v1/plans/{plan_id}/abort", json={"reason": "stop"})
        assert aborted.json()["state"] == "rolling_back"
        plan = await _drive(rig, api, plan_id, {"rolled_back", "failed"})
        assert plan["state"] == "rolled_back", plan
        after = await rig.sim("GET", "/_sim/state")
        assert permanent_active(after) == permanent_active(before)
        assert eligible(after) == eligible(before)
        for role in TARGETS:
            assert rules_of(after, role) == rules_of(before, role), role
        assert after["review_definitions"] == []
        timeline = await rig.sim("GET", "/_sim/timeline")
        holders = {(p, r) for p, r, _ in permanent_active(before)}
        assert no_lockout(timeline, holders) == []
        history = (await api.get(f"/api/v1/plans/{plan_id}/history")).json()
        assert (history[-1]["event"], history[-1]["reason"]) == (
            "rollback_finished",
            "rollback finished",
        )
