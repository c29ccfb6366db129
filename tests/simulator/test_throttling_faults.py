"""Authentication, permissions, throttling, latency and injected faults."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from app.simulator.faults import SimLimits
from app.simulator.seed import generate_tenant
from app.simulator.state import SimState
from app.simulator.throttle import resource_units_per_10s
from tests.simulator.conftest import (
    RM,
    SAMPLES,
    USER_ADMIN,
    Sim,
    SimFactory,
    assign_body,
    holder,
    remove_body,
)


class TestAuthAndRouting:
    async def test_missing_token_is_401(self, sim: Sim) -> None:
        response = await sim.client.get("/v1.0/organization")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "InvalidAuthenticationToken"
        basic = await sim.client.get("/v1.0/organization", headers={"Authorization": "Basic abc"})
        assert basic.status_code == 401

    async def test_request_and_client_request_ids(self, sim: Sim) -> None:
        response = await sim.get("/v1.0/organization", headers={"client-request-id": "abc-123"})
        assert response.headers["client-request-id"] == "abc-123"
        assert response.headers["request-id"]
        error = await sim.get("/v1.0/users/ghost", headers={"client-request-id": "abc-123"})
        inner = error.json()["error"]["innerError"]
        assert inner["client-request-id"] == "abc-123"
        assert inner["request-id"] == error.headers["request-id"]
        assert inner["date"]

    async def test_unknown_segment_and_wrong_method(self, sim: Sim) -> None:
        unknown = await sim.get("/v1.0/roleManagement/directory/roleThings")
        assert unknown.status_code == 400
        assert "segment 'roleThings'" in unknown.json()["error"]["message"]
        wrong = await sim.delete(f"{RM}/roleDefinitions")
        assert wrong.status_code == 405


class TestPermissions:
    async def test_directory_routes_answer_authorization_request_denied(self, sim: Sim) -> None:
        sim.state.granted_permissions = {"Mail.Send"}
        response = await sim.get(f"{RM}/roleAssignments")
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "Authorization_RequestDenied"

    async def test_pim_routes_answer_permission_scope_not_granted(self, sim: Sim) -> None:
        sim.state.granted_permissions = {"RoleEligibilitySchedule.Read.Directory"}
        response = await sim.get(f"{RM}/roleEligibilityScheduleRequests")
        assert response.status_code == 403
        error = response.json()["error"]
        assert error["code"] == "UnknownError"
        detail = json.loads(error["message"])
        assert detail["errorCode"] == "PermissionScopeNotGranted"
        assert "RoleEligibilitySchedule.ReadWrite.Directory" in detail["message"]
        assert (await sim.get(f"{RM}/roleEligibilitySchedules")).status_code == 200

    async def test_remove_only_permission_allows_removals_only(self, sim: Sim) -> None:
        sim.state.granted_permissions = {"RoleAssignmentSchedule.Remove.Directory"}
        principal = holder(sim.state, USER_ADMIN)
        assert (
            await sim.request("assignment", assign_body(principal, USER_ADMIN))
        ).status_code == 403
        assert (
            await sim.request("assignment", remove_body(principal, USER_ADMIN))
        ).status_code == 201

    async def test_validation_only_probe_needs_the_write_permission(self, sim: Sim) -> None:
        sim.state.granted_permissions.discard("RoleEligibilitySchedule.ReadWrite.Directory")
        body = assign_body(holder(sim.state, USER_ADMIN), USER_ADMIN, isValidationOnly=True)
        assert (await sim.request("eligibility", body)).status_code == 403


class TestThrottling:
    async def test_resource_unit_bucket(self, make_sim: SimFactory, tenant: SimState) -> None:
        sim = await make_sim(tenant, SimLimits(ru_per_10s=10))
        for _ in range(10):
            assert (await sim.get("/v1.0/organization")).status_code == 200
        sim.clock.advance(0.3)
        throttled = await sim.get("/v1.0/organization")
        assert throttled.status_code == 429
        retry_after = throttled.headers["Retry-After"]
        assert float(retry_after) == pytest.approx(0.7)
        assert "." in retry_after
        scope = throttled.headers["x-ms-throttle-scope"]
        assert scope == f"Tenant_Application/ReadWrite/{tenant.caller_app_id}/{tenant.tenant_id}"
        assert throttled.headers["x-ms-throttle-information"] == "ResourceUnitLimitExceeded"
        sample = json.loads((SAMPLES / "throttling_429.response.json").read_text())
        body = throttled.json()
        assert body["error"]["code"] == sample["error"]["code"] == "TooManyRequests"
        assert body["error"]["message"] == sample["error"]["message"]
        assert set(sample["error"]["innerError"]) - {"date"} <= set(body["error"]["innerError"])
        sim.clock.advance(float(retry_after))
        assert (await sim.get("/v1.0/organization")).status_code == 200

    async def test_usage_header_from_eighty_percent(
        self, make_sim: SimFactory, tenant: SimState
    ) -> None:
        sim = await make_sim(tenant, SimLimits(ru_per_10s=10))
        headers = [(await sim.get("/v1.0/organization")).headers for _ in range(8)]
        assert "x-ms-throttle-limit-percentage" not in headers[6]
        assert float(headers[7]["x-ms-throttle-limit-percentage"]) == pytest.approx(0.8)

    @pytest.mark.parametrize(
        ("url", "cost"),
        [
            ("/v1.0/organization", "1"),
            ("/v1.0/subscribedSkus", "3"),
            ("/v1.0/subscribedSkus?$select=skuId", "2"),
            (f"{RM}/roleAssignments?$expand=principal", "2"),
            (f"{RM}/roleAssignments?$select=id", "1"),
        ],
    )
    async def test_resource_unit_costs(self, sim: Sim, url: str, cost: str) -> None:
        assert (await sim.get(url)).headers["x-ms-resource-unit"] == cost

    def test_tenant_size_decides_the_bucket(self) -> None:
        assert [resource_units_per_10s(n) for n in (49, 50, 500, 501)] == [3500, 5000, 5000, 8000]

    async def test_write_quota(self, make_sim: SimFactory, tenant: SimState) -> None:
        sim = await make_sim(tenant, SimLimits(write_quota=2, write_window_seconds=1))
        body = {"ids": [next(iter(tenant.users))]}
        for _ in range(2):
            assert (await sim.post("/v1.0/directoryObjects/getByIds", body)).status_code == 200
        throttled = await sim.post("/v1.0/directoryObjects/getByIds", body)
        assert throttled.status_code == 429
        assert throttled.headers["x-ms-throttle-information"] == "WriteLimitExceeded"
        assert "/Write/" in throttled.headers["x-ms-throttle-scope"]
        assert float(throttled.headers["Retry-After"]) == pytest.approx(0.5)
        assert (await sim.get("/v1.0/organization")).status_code == 200

    async def test_a_throttled_write_changes_nothing(
        self, make_sim: SimFactory, tenant: SimState
    ) -> None:
        sim = await make_sim(tenant, SimLimits(write_quota=1, write_window_seconds=10))
        principal = holder(tenant, USER_ADMIN)
        await sim.post("/v1.0/directoryObjects/getByIds", {"ids": []})
        response = await sim.request("eligibility", assign_body(principal, USER_ADMIN))
        assert response.status_code == 429
        assert tenant.eligibles.find(principal, USER_ADMIN, "/") is None


class TestFaults:
    async def test_every_request_faulted_changes_nothing(
        self, make_sim: SimFactory, tenant: SimState
    ) -> None:
        sim = await make_sim(tenant, SimLimits(throttling=False, fault_rate=1.0, seed=2))
        principal = holder(tenant, USER_ADMIN)
        statuses = set()
        for _ in range(12):
            response = await sim.request("eligibility", assign_body(principal, USER_ADMIN))
            statuses.add(response.status_code)
            assert response.json()["error"]["code"]
            if response.status_code == 503:
                assert int(response.headers["Retry-After"]) >= 1
        assert statuses == {500, 503, 504}
        assert tenant.eligibles.find(principal, USER_ADMIN, "/") is None

    @pytest.mark.parametrize("longest", [1, 3])
    async def test_a_503_asks_for_whole_seconds_up_to_the_setting(
        self, make_sim: SimFactory, tenant: SimState, longest: int
    ) -> None:
        limits = SimLimits(
            throttling=False, fault_rate=1.0, seed=3, unavailable_retry_after_max_seconds=longest
        )
        sim = await make_sim(tenant, limits)
        principal = holder(tenant, USER_ADMIN)
        asked: set[str] = set()
        for _ in range(40):
            response = await sim.request("eligibility", assign_body(principal, USER_ADMIN))
            if response.status_code == 503:
                asked.add(response.headers["Retry-After"])
        assert asked == {str(n) for n in range(1, longest + 1)}

    async def _statuses(self, make_sim: SimFactory, seed: int) -> list[int]:
        sim = await make_sim(
            generate_tenant(seed=1), SimLimits(throttling=False, fault_rate=0.4, seed=seed)
        )
        return [(await sim.get("/v1.0/organization")).status_code for _ in range(40)]

    async def test_same_seed_same_faults(self, make_sim: SimFactory) -> None:
        first = await self._statuses(make_sim, 21)
        assert first == await self._statuses(make_sim, 21)
        assert first != await self._statuses(make_sim, 22)
        assert 200 in first
        assert any(s >= 500 for s in first)

    async def test_lost_response_commits_the_write(
        self, make_sim: SimFactory, tenant: SimState
    ) -> None:
        limits = SimLimits(throttling=False, lost_response_rate=1.0, lost_response_hang_seconds=30)
        sim = await make_sim(tenant, limits)
        principal = holder(tenant, USER_ADMIN)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(
                sim.request("eligibility", assign_body(principal, USER_ADMIN)), timeout=0.2
            )
        assert tenant.eligibles.find(principal, USER_ADMIN, "/") is not None
        assert sim.ctx.lost == 1

    async def test_lost_batch_commits_every_item(
        self, make_sim: SimFactory, tenant: SimState
    ) -> None:
        limits = SimLimits(throttling=False, lost_response_rate=1.0, lost_response_hang_seconds=30)
        sim = await make_sim(tenant, limits)
        principal = holder(tenant, USER_ADMIN)
        items = [
            {
                "id": "eligible",
                "method": "POST",
                "url": "/roleManagement/directory/roleEligibilityScheduleRequests",
                "headers": {"Content-Type": "application/json"},
                "body": assign_body(principal, USER_ADMIN),
            },
            {
                "id": "remove",
                "method": "POST",
                "url": "/roleManagement/directory/roleAssignmentScheduleRequests",
                "headers": {"Content-Type": "application/json"},
                "body": remove_body(principal, USER_ADMIN),
                "dependsOn": ["eligible"],
            },
        ]
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(sim.post("/v1.0/$batch", {"requests": items}), timeout=0.2)
        assert tenant.eligibles.find(principal, USER_ADMIN, "/") is not None
        assert tenant.actives.find(principal, USER_ADMIN, "/") is None

    async def test_lost_response_arrives_after_the_hang(
        self, make_sim: SimFactory, tenant: SimState
    ) -> None:
        limits = SimLimits(
            throttling=False, lost_response_rate=1.0, lost_response_hang_seconds=0.05
        )
        sim = await make_sim(tenant, limits)
        started = time.perf_counter()
        response = await sim.get("/v1.0/organization")
        assert response.status_code == 200
        assert time.perf_counter() - started >= 0.05

    async def test_latency_applies_per_request(
        self, make_sim: SimFactory, tenant: SimState
    ) -> None:
        sim = await make_sim(tenant, SimLimits(throttling=False, latency_ms=40))
        started = time.perf_counter()
        await sim.get("/v1.0/organization")
        assert time.perf_counter() - started >= 0.04

    async def test_faults_knobs_can_be_read(self, sim: Sim) -> None:
        knobs = (await sim.client.get("/_sim/faults")).json()
        assert knobs == SimLimits(throttling=False).model_dump()

    async def test_faults_knobs_change_at_run_time(self, sim: Sim) -> None:
        changed = await sim.client.put("/_sim/faults", json={"fault_rate": 1.0})
        assert changed.status_code == 200
        assert changed.json()["fault_rate"] == 1.0
        assert (await sim.get("/v1.0/organization")).status_code >= 500
        await sim.client.put("/_sim/faults", json={"fault_rate": 0})
        assert (await sim.get("/v1.0/organization")).status_code == 200

    @pytest.mark.parametrize(
        "update",
        [
            {"fault_rate": 2},
            {"latency_ms": -1},
            {"policy_patch_status": 201},
            {"unknown": 1},
            {"write_quota": 0},
        ],
    )
    async def test_invalid_knobs_are_422(self, sim: Sim, update: dict[str, object]) -> None:
        assert (await sim.client.put("/_sim/faults", json=update)).status_code == 422
